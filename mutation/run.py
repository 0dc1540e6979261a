"""Run mutmut over the modules that guard data: a sample of their mutants, or all.

    python mutation/run.py                  # a 1-in-10 sample of every module in only_mutate
    python mutation/run.py proof ledger     # storage_hooks/proof.py and ledger.py only
    python mutation/run.py --sample 1 hooks.delete_local   # every mutant of one module
    python mutation/run.py --report proof   # only print the score of the last run

The sample is stratified and repeatable: mutmut numbers the mutants of each
function 1, 2, 3, ...; a 1-in-10 sample takes the numbers ending in 1 (1, 11,
21, ...), so every mutated function is represented by its first mutant and
every tenth after it. ``--sample`` takes 10 (the default), 5, 2 or 1 (all).

mutmut keeps its results in ``mutants/``: a second run re-tests only the
functions whose code changed (delete ``mutants/`` to start afresh). At the end
the score per module is printed for the mutants of the sample, not counting
those listed in ``mutation/equivalent/*.txt`` (each with the reason it cannot
be told apart). Two workers by default (``MUTMUT_CHILDREN`` changes that).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-m", "mutmut"]
KILLED = {"killed", "timeout", "segfault", "suspicious"}
SURVIVED = {"survived", "no tests"}
# The last digits of the mutant numbers each sample takes.
SAMPLES = {10: "1", 5: "16", 2: "13579", 1: "0123456789"}


def equivalent() -> dict[str, str]:
    """``{mutant name: reason}`` from ``mutation/equivalent/*.txt``."""
    names = {}
    for path in sorted((ROOT / "mutation" / "equivalent").glob("*.txt")):
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                names[name] = reason.strip()
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


def patterns(modules: list[str], sample: int) -> list[str]:
    """fnmatch patterns (mutmut's filter syntax) for the sample of ``modules``."""
    digits = SAMPLES[sample]
    tail = "*" if sample == 1 else f"*__mutmut_*[{digits}]"
    return [f"storage_hooks.{m}.{tail}" for m in modules] or [f"storage_hooks.{tail}"]


def score(modules: list[str], sample: int) -> dict[str, Counter[str]]:
    """Count, per module, the sample's mutants by outcome; print the survivors."""
    wanted = patterns(modules, sample)
    skip = equivalent()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in sorted(results().items()):
        if not any(fnmatch.fnmatchcase(name, p) for p in wanted):
            continue
        c = counts[module_of(name)]
        if name in skip:
            c["equivalent"] += 1
        elif status in KILLED:
            c["killed"] += 1
        elif status in SURVIVED:
            c["survived"] += 1
            print(f"{status}: {name}")
        else:
            c["not checked"] += 1
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="dotted below storage_hooks, e.g. ops.retry")
    parser.add_argument("--sample", type=int, choices=sorted(SAMPLES), default=10)
    parser.add_argument("--report", action="store_true", help="print the last run's score only")
    args = parser.parse_args(argv)
    returncode = 0
    if not args.report:
        children = os.environ.get("MUTMUT_CHILDREN", "2")
        run = [*MUTMUT, "run", "--max-children", children, *patterns(args.modules, args.sample)]
        returncode = subprocess.run(run, cwd=ROOT).returncode
    counts = score(args.modules, args.sample)
    print(f"\nsample: 1 in {args.sample}")
    print(f"{'module':36} killed survived equivalent unchecked  score")
    for module, c in sorted(counts.items()):
        tested = c["killed"] + c["survived"]
        pct = 100 * c["killed"] / tested if tested else 100.0
        print(
            f"{module:36} {c['killed']:6} {c['survived']:8} {c['equivalent']:10}"
            f" {c['not checked']:9} {pct:5.1f}%"
        )
    return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
