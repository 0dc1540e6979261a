"""storage_hooks against django-queued-storage 0.8, the package it replaces.

Its side runs as a subprocess in its own Python 3.8 environment (made here
when missing) on the same S3 server and the same source files, with a
PostgreSQL database and Redis databases of its own; see ``legacy/``.
The ratios compare its numbers with ours from the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from benchmarks import env
from benchmarks.bench_transfer import SMALL_THREADS
from benchmarks.context import Context
from benchmarks.legacy import CLAIM
from benchmarks.report import Row, Section, ms, not_measured

HERE = Path(__file__).resolve().parent
VENV = HERE / ".envs" / "dqs"
PYTHON = VENV / "bin" / "python"
MARKER = VENV / ".installed"
REQUIREMENTS = [
    "django-queued-storage==0.8",
    "Django>=3.2,<3.3",
    "celery[redis]>=4.4,<4.5",
    "redis>=3.5,<4",
    "django-redis>=5,<5.3",
    "django-storages[s3]>=1.14,<1.15",
    "boto3",
    "psycopg2-binary",
]


def ensure_env() -> str | None:
    """Create the Python 3.8 environment if missing; the reason when that fails."""
    if MARKER.exists():
        return None
    shutil.rmtree(VENV, ignore_errors=True)
    steps = [
        (["python3.8", "-m", "venv", str(VENV)], {**os.environ, "PYENV_VERSION": "3.8.18"}),
        ([str(PYTHON), "-m", "pip", "install", "-q", *REQUIREMENTS], os.environ),
    ]
    for cmd, environ in steps:
        try:
            done = subprocess.run(cmd, env=dict(environ), capture_output=True, text=True)
        except FileNotFoundError as exc:
            return f"cannot run {cmd[0]} ({exc}); pyenv with Python 3.8.18 is needed"
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"'{' '.join(cmd[:4])} ...' failed: {' | '.join(tail)}"
    MARKER.touch()
    return None


def claim(numbers: list[int]) -> None:
    """Mark the Redis databases just taken as this run's, so that no other
    run takes one of them (and flushes it) while it is in use."""
    import redis

    for number in numbers:
        client = redis.Redis(env.REDIS_HOST, env.REDIS_PORT, db=number)
        try:
            if not client.set(CLAIM, "django-queued-storage", nx=True) or client.dbsize() != 1:
                raise RuntimeError(f"another run took Redis database {number} at the same time")
        finally:
            client.close()


def run(ctx: Context) -> Section:
    section = Section("storage_hooks vs django-queued-storage 0.8 (same S3 server, same files)")
    reason = ensure_env()
    if reason:
        section.rows.append(not_measured("django-queued-storage", reason))
        return section
    with (
        env.postgres_database(f"bench_dqs_{os.getpid()}") as db,
        env.redis_databases(2, avoid=ctx.redis_dbs) as (broker_db, cache_db),
    ):
        claim([broker_db, cache_db])
        env.s3_client(ctx.endpoint).create_bucket(Bucket="bench-dqs")
        out = ctx.scratch / "dqs.json"
        cmd = [str(PYTHON), str(HERE / "legacy" / "dqs_bench.py"), "--out", str(out)]
        cmd += ["--requests", str(ctx.size(600, 200)), "--passes", str(ctx.size(5, 3))]
        for option, sub in (("--small", "src-small"), ("--big", "src-big")):
            if (ctx.scratch / sub).is_dir() and option.strip("-") in ctx.measures:
                cmd += [option, str(ctx.scratch / sub)]
        # Its transfers are CPU-bound (a new boto3 session per file): a sample
        # of the small files; the row says how long all of them would take.
        cmd += ["--small-count", str(ctx.size(1_000, 200))]
        cmd += ["--threads", str(SMALL_THREADS)]  # as many at a time as ours
        environ = {
            **os.environ,
            "BENCH_DIR": str(ctx.scratch / "dqs"),
            "BENCH_DB": db,
            "BENCH_S3": ctx.endpoint,
            "BENCH_BUCKET": "bench-dqs",
            "BENCH_REDIS_BROKER": str(broker_db),
            "BENCH_REDIS_CACHE": str(cache_db),
        }
        environ.pop("DJANGO_SETTINGS_MODULE", None)
        done = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-4000:])
        section.rows.append(
            not_measured(
                "django-queued-storage", f"its run failed: {done.stderr.strip().splitlines()[-1:]}"
            )
        )
        return section
    return rows(ctx, json.loads(out.read_text()), section)


def rows(ctx: Context, theirs: dict, section: Section) -> Section:
    ours = ctx.measures
    req = theirs["request"]
    if "request" in ours:
        note = (
            f"{theirs['versions']}; plain FileSystemStorage request there: {ms(req['plain'])}, "
            f"here: {ms(ours['request.plain'])}"
        )
        if req["field_error"]:
            note += f"; its storage fails as a FileField storage ({req['field_error']}), so "
            note += "the view calls storage.save() and stores the name"
        section.rows.append(
            Row(
                "request time, ours / django-queued-storage",
                ms(ours["request"]),
                ms(req["queued"]),
                ours["request"] / req["queued"],
                ("<=", 1.0),
                note=note,
            )
        )
    if "url" in ours and "url" in theirs:
        url = dict(theirs["url"])
        scale = 1000 / url["page"]  # its page may be smaller: per 1,000 files
        for k in ("warm", "cold", "base"):
            url[k] *= scale
        section.rows.append(
            Row(
                "url() page of 1,000, warm: ours / django-queued-storage",
                ms(ours["url"]["warm"]),
                ms(url["warm"]),
                ours["url"]["warm"] / url["warm"],
                ("<=", 1.0),
                note="signed S3 URLs, Redis cache on both sides",
            )
        )
        section.rows.append(
            Row(
                "url() page of 1,000, cache flushed: ours / django-queued-storage",
                ms(ours["url"]["cold"]),
                ms(url["cold"]),
                ours["url"]["cold"] / url["cold"],
                ("<=", 1.0),
                note=f"django-queued-storage sent {url['cold_remote_calls']} requests to S3 "
                f"for a page of {url['page']} (an exists() per file; times scaled to 1,000); "
                "ours sends none",
            )
        )
    for kind, label in (("big", "big files, one worker"), ("small", "16 KiB files, 2 workers")):
        if kind in ours and kind in theirs:
            mine = ours[kind]["count"] / ours[kind]["seconds"]
            other = theirs[kind]["count"] / theirs[kind]["seconds"]
            section.rows.append(
                Row(
                    f"transfer throughput ({label}): ours / django-queued-storage",
                    f"{mine:.2f} files/s",
                    f"{other:.2f} files/s",
                    mine / other,
                    (">=", 1.0),
                    note=transfer_note(theirs[kind]),
                )
            )
    return section


def transfer_note(theirs: dict) -> str:
    threads = theirs["threads"]
    shape = f"{threads} transfers at a time in each, Celery's threads pool" if threads else "solo"
    note = f"same files, S3 server and workers ({shape}); theirs neither verifies nor records"
    count, total = theirs["count"], theirs.get("of", theirs["count"])
    if count < total:
        minutes = total * theirs["seconds"] / count / 60
        note += (
            f"; theirs on the first {count:,} of the {total:,} files: its task builds a new "
            "S3 storage, so a boto3 session that parses botocore's JSON models again, for "
            f"every file; at this rate all {total:,} would take {minutes:.0f} min"
        )
    return note
