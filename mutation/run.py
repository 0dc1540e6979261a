"""Run mutmut over the modules that guard data, one module (or all) at a time.

    python mutation/run.py                  # every module in [tool.mutmut] only_mutate
    python mutation/run.py proof ledger     # storage_hooks/proof.py and ledger.py only
    python mutation/run.py hooks.delete_local ops.retry
    python mutation/run.py --report proof   # only print the score of the last run

mutmut keeps its results in ``mutants/``: a second run re-tests only the
functions whose code changed (delete ``mutants/`` to start afresh). At the end
the score per module is printed, not counting the mutants listed in
``mutation/equivalent.txt`` (each with the reason it cannot be told apart).
Two workers by default (``MUTMUT_CHILDREN`` changes that): the machine is shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-m", "mutmut"]
KILLED = {"killed", "timeout", "segfault", "suspicious"}


def equivalent() -> set[str]:
    """Mutant names listed as equivalent (first word of each line)."""
    path = ROOT / "mutation" / "equivalent.txt"
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split()[0])
    return names


def results() -> dict[str, str]:
    """``{mutant name: status}`` from ``mutmut results --all true``."""
    out = subprocess.run(
        [*MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    found = {}
    for line in out.splitlines():  # "    storage_hooks.proof.x_mode__mutmut_1: killed"
        name, _, status = line.strip().partition(":")
        if status:
            found[name.strip()] = status.strip()
    return found


def module_of(mutant: str) -> str:
    return mutant.split(".x_")[0].split(".xǁ")[0]


def main(args: list[str]) -> int:
    report_only = "--report" in args
    modules = [a for a in args if a != "--report"]
    returncode = 0
    if not report_only:
        patterns = [f"storage_hooks.{m}.*" for m in modules]
        children = os.environ.get("MUTMUT_CHILDREN", "2")
        run = [*MUTMUT, "run", "--max-children", children, *patterns]
        returncode = subprocess.run(run, cwd=ROOT).returncode
    skip = equivalent()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in results().items():
        if modules and not any(name.startswith(f"storage_hooks.{m}.") for m in modules):
            continue
        if name in skip:
            counts[module_of(name)]["equivalent"] += 1
        elif status in KILLED:
            counts[module_of(name)]["killed"] += 1
        elif status in ("survived", "no tests"):
            counts[module_of(name)]["survived"] += 1
            print(f"survived: {name}")
    print(f"\n{'module':40} killed survived equivalent score")
    for module, c in sorted(counts.items()):
        tested = c["killed"] + c["survived"]
        score = 100 * c["killed"] / tested if tested else 100.0
        print(f"{module:40} {c['killed']:6} {c['survived']:8} {c['equivalent']:10} {score:5.1f}%")
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
