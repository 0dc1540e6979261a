"""Run every benchmark and print the ratios, side by side, with their goals.

    .venv/bin/python benchmarks/run.py            # the full run (15-30 min)
    .venv/bin/python benchmarks/run.py --quick    # smaller counts (a few min)
    .venv/bin/python benchmarks/run.py --only request,url

Starts moto's S3 server on loopback, creates a PostgreSQL database of its
own and takes empty Redis databases, and removes all of them at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import env  # noqa: E402
from benchmarks.report import Row, Section, not_measured, table  # noqa: E402

NAMES = ("request", "transfer", "memory", "ops", "url", "signals", "legacy", "fallback", "ledger")
#: Run only when asked (--only ledger): it builds a ledger of millions of rows.
OPT_IN = ("ledger",)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts and sizes")
    parser.add_argument(
        "--only",
        default=",".join(n for n in NAMES if n not in OPT_IN),
        help=f"comma-separated subset of {', '.join(NAMES)} (ledger only when named)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    return args


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import django

    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"Django {django.get_version()}"
    )


def setup_django(ctx_env: dict[str, str]) -> None:
    os.environ.update(ctx_env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    import django
    from django.core.management import call_command

    # As in a project's __init__.py: the web process sends with this app.
    import benchmarks.celery_app  # noqa: F401

    django.setup()
    call_command("migrate", run_syncdb=True, verbosity=0)


def fallback_section(quick: bool) -> Section:
    """Another engineer's benchmark of FallbackStorage, run as it is."""
    script = ROOT / "benchmarks" / "bench_fallback_url.py"
    section = Section("FallbackStorage url memory (benchmarks/bench_fallback_url.py)")
    if not script.exists():
        section.rows.append(not_measured("FallbackStorage", f"{script.name} does not exist yet"))
        return section
    done = subprocess.run(
        [sys.executable, str(script), *(["--quick"] if quick else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout)
    if done.returncode:
        print(done.stderr[-3000:])
        section.rows.append(not_measured("FallbackStorage", f"exited with {done.returncode}"))
        return section
    # Its line "median per page view (ms)  <naive>  <memory>  <ratio>x".
    for line in done.stdout.splitlines():
        if line.strip().startswith("median per page view"):
            naive, memory = (float(v) for v in line.split()[-3:-1])
            section.rows.append(
                Row(
                    "page view time, url memory / none (100 images, 80 on S3)",
                    f"{memory:.2f} ms",
                    f"{naive:.2f} ms",
                    memory / naive,
                    None,
                    note="the memory sends no S3 HEAD request after the first view",
                )
            )
            break
    else:
        section.rows.append(not_measured("FallbackStorage", "its output has no median line"))
    return section


def ledger_section(quick: bool) -> Section:
    """benchmarks/bench_ledger.py: operations on a ledger of 10M rows (1M
    with --quick) against 100k rows, run in a process of its own."""
    section = Section("Ledger at scale (benchmarks/bench_ledger.py)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ledger.json"
        rows = ["--rows", "1000000"] if quick else []
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bench_ledger.py"),
                *rows,
                "--json",
                str(out),
            ],
            cwd=ROOT,
            text=True,
            timeout=3600,
        )
        if done.returncode or not out.exists():
            section.rows.append(not_measured("ledger", f"exited with {done.returncode}"))
            return section
        doc = json.loads(out.read_text())
    small, big = doc["times"][str(doc["small"])], doc["times"][str(doc["big"])]
    for label, goal in doc["goals"].items():
        a, b = small[label], big[label]
        section.rows.append(
            Row(
                f"{label} ({doc['big']:,} / {doc['small']:,} rows)",
                f"{b:.1f} ms",
                f"{a:.1f} ms",
                b / a if a else None,
                ("<=", doc["flat"]),
                note=f"and <= {goal:g} ms",
                extra_pass=b <= goal,
            )
        )
    return section


def main() -> int:
    args = parse()
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="storage_hooks_bench_"))
    sections: list[Section] = []
    try:
        with (
            env.moto_server() as endpoint,
            env.postgres_database(f"bench_storage_hooks_{os.getpid()}") as db,
            env.redis_databases(2) as (broker_db, cache_db),
        ):
            bucket = "bench"
            env.s3_client(endpoint).create_bucket(Bucket=bucket)
            bench_env = {
                "BENCH_DIR": str(scratch),
                "BENCH_DB": db,
                "BENCH_S3": endpoint,
                "BENCH_BUCKET": bucket,
                "BENCH_REDIS_BROKER": str(broker_db),
                "BENCH_REDIS_CACHE": str(cache_db),
                "PYTHONPATH": str(ROOT),
            }
            setup_django(bench_env)
            from benchmarks.context import Context

            ctx = Context(args.quick, endpoint, bucket, scratch, bench_env, (broker_db, cache_db))
            print(f"Machine: {machine()}")
            print(f"Run: {'--quick' if args.quick else 'full'}, services ready\n")
            runners: dict[str, Callable[[], list[Section]]] = {}
            for name in NAMES:
                if name in ("fallback", *OPT_IN) or name not in args.only:
                    continue
                module = __import__(f"benchmarks.bench_{name}", fromlist=["run"])
                runners[name] = lambda module=module: _as_list(module.run(ctx))
            for name, runner in runners.items():
                t0 = time.monotonic()
                print(f"-- {name} ...", flush=True)
                try:
                    sections += runner()
                except Exception as exc:  # one broken benchmark doesn't hide the others
                    import traceback

                    traceback.print_exc()
                    sections.append(Section(name, [not_measured(name, repr(exc))]))
                print(f"   {name} took {time.monotonic() - t0:.0f}s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if "fallback" in args.only:
        sections.append(fallback_section(args.quick))
    if "ledger" in args.only:
        sections.append(ledger_section(args.quick))
    print(table(sections))
    print(f"\nMachine: {machine()}; total {time.monotonic() - started:.0f}s")
    if args.json:
        payload = {s.title: [r.as_dict() for r in s.rows] for s in sections}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


def _as_list(result: Section | list[Section]) -> list[Section]:
    return result if isinstance(result, list) else [result]


if __name__ == "__main__":
    sys.exit(main())
