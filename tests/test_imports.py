"""Imports run one way: every module imports first in a fresh interpreter,
and the package's module-level imports form no circle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "storage_hooks"


def modules() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": os.getcwd()}

    def load(module: str) -> tuple[str, str]:
        code = f"import django; django.setup(); import {module}"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
        )
        return module, done.stderr.strip().splitlines()[-1] if done.returncode else ""

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = {module: error for module, error in pool.map(load, modules()) if error}
    assert failures == {}


def _module_level_imports(module: str) -> set[str]:
    """The package modules ``module`` imports when it is imported (not in
    functions, not under TYPE_CHECKING)."""
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node]:
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.startswith("storage_hooks"):
                    found.add(base)
                    for alias in child.names:
                        candidate = f"{base}.{alias.name}"
                        if candidate in ALL:
                            found.add(candidate)
            elif isinstance(child, ast.Import):
                found |= {a.name for a in child.names if a.name.startswith("storage_hooks")}
    found.discard(module)
    return {name for name in found if name in ALL}


ALL = set(modules())


def test_module_level_imports_form_no_circle() -> None:
    graph = {module: _module_level_imports(module) for module in ALL}
    # A package's __init__ imports its submodules; a submodule importing its
    # own package is the usual circle, so it counts.
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        seen[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if seen.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in seen:
                visit(target)
        stack.pop()
        seen[module] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module)
