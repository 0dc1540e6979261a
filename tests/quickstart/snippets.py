"""The quick start as the documentation shows it: its files and commands.

``docs/getting-started.rst`` includes the files of ``docs/quickstart/``
(``literalinclude``) and names its console blocks ``quickstart-*``; this
module reads both, so the test runs exactly what a reader sees.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGE = DOCS / "getting-started.rst"
FILES = DOCS / "quickstart"

#: Where each file of docs/quickstart/ goes in the new project, relative to
#: the directory that ``startproject`` made; "append" adds it to the end.
DESTINATIONS = {
    "settings.py": ("proj/settings.py", "append"),
    "celery.py": ("proj/celery.py", "write"),
    "__init__.py": ("proj/__init__.py", "write"),
    "models.py": ("uploads/models.py", "write"),
}
#: Files run in ``manage.py shell``.
SHELL_SCRIPTS = ("create_bucket.py", "try_it.py")

_BLOCK = re.compile(r"^\.\. code-block:: console\n(?:   :\w+:.*\n)*", re.MULTILINE)


def console_blocks() -> dict[str, list[list[str]]]:
    """The commands of each named console block: ``{name: [argv, ...]}``."""
    text = PAGE.read_text()
    blocks: dict[str, list[list[str]]] = {}
    for match in _BLOCK.finditer(text):
        name = re.search(r":name: (\S+)", match.group(0))
        if not name:
            continue
        commands = []
        for line in text[match.end() :].splitlines():
            if line and not line.startswith("   "):
                break
            line = line.strip()
            if line.startswith("$ "):
                commands.append(shlex.split(line[2:]))
        blocks[name.group(1)] = commands
    return blocks


def included_files() -> list[str]:
    """The files of docs/quickstart/ the page includes, in page order."""
    return re.findall(r"^\.\. literalinclude:: quickstart/(\S+)$", PAGE.read_text(), re.MULTILINE)


def snippet(name: str) -> str:
    return (FILES / name).read_text()
