"""Transfers by real Celery workers: throughput (memory: bench_memory.py).

Each measurement starts workers (solo pool: one process each), warms them
up with a few tiny transfers, stops them consuming (``cancel_consumer``),
saves the files (each save queues its message on Redis), and starts the
clock when the workers resume consuming (``add_consumer``); it stops when
the ledger holds every file as REMOTE. The baseline sends the same source
files to the same S3 server with boto3 from this process.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.test import override_settings

from benchmarks import env
from benchmarks.celery_app import app
from benchmarks.context import Context
from benchmarks.report import Row, Section
from storage_hooks import ledger
from storage_hooks.status import Status
from storage_hooks.storage import QueuedStorage

MiB = 2**20
QUEUE = settings.QUEUE
BOTO3_THREADS = 10  # boto3's default connection pool size
#: Worker processes, and files each transfers at once, for many small files.
SMALL_WORKERS = 2
SMALL_THREADS = 8
#: Files per batch message (the BATCH_SIZE default).
BATCH_SIZE = 50


def make_sources(directory: Path, count: int, size: int) -> list[Path]:
    """``count`` files of ``size`` bytes with distinct contents."""
    directory.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, MiB))
    paths = []
    for i in range(count):
        path = directory / f"{i:05d}.bin"
        with open(path, "wb") as fh:
            fh.write(i.to_bytes(8, "big"))
            left = size - 8
            while left > 0:
                fh.write(block[: min(left, len(block))])
                left -= len(block)
        paths.append(path)
    return paths


def worker_specs(
    ctx: Context, count: int, tag: str, threads: int = 0, extra_env: dict[str, str] | None = None
) -> list[dict[str, object]]:
    return [
        {
            "threads": threads,
            "python": sys.executable,
            "app": "benchmarks.celery_app",
            "name": f"{tag}{i}@bench-{os.getpid()}",
            "queues": [QUEUE],
            "env": {
                **ctx.env,
                "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
                **(extra_env or {}),
            },
        }
        for i in range(count)
    ]


def wait_remote(storage: QueuedStorage, prefix: str, count: int, timeout: float) -> None:
    def done() -> bool:
        rows = ledger.rows(storage.key).filter(name__startswith=prefix)
        failed = rows.filter(status=Status.FAILED).values_list("name", "last_error")[:3]
        if failed:
            raise RuntimeError(f"transfers failed: {list(failed)}")
        return rows.filter(status=Status.REMOTE).count() >= count

    # Each look is two queries of this process: every 25 ms costs ours a few
    # per cent of a core on a two-core machine, and the end is seen at most
    # 25 ms late (about 1% of the shortest run).
    env.poll_until(done, timeout=timeout, interval=0.025, what=f"{count} transfers")


def save_all(storage: QueuedStorage, prefix: str, sources: list[Path]) -> None:
    """Save each source through the storage; the messages go out per batch,
    when its transaction commits."""
    for start in range(0, len(sources), 200):
        with transaction.atomic():
            for path in sources[start : start + 200]:
                with open(path, "rb") as fh:
                    storage.save(f"{prefix}/{path.name}", File(fh))


def warm_up(storage: QueuedStorage, workers: list[env.Worker], tag: str) -> None:
    for i in range(2 * len(workers)):
        storage.save(f"warm-{tag}/{i}.bin", ContentFile(b"w" * 1024))
    wait_remote(storage, f"warm-{tag}/", 2 * len(workers), timeout=60)
    destination = [w.name for w in workers]
    replies = app.control.cancel_consumer(QUEUE, destination=destination, reply=True)
    if len(replies) != len(workers):
        raise RuntimeError(f"not every worker stopped consuming: {replies}")


def resume(workers: list[env.Worker]) -> float:
    """Let the workers consume again; the time they were told to."""
    start = time.perf_counter()
    app.control.add_consumer(QUEUE, destination=[w.name for w in workers], reply=False)
    return start


def transfer_run(
    ctx: Context,
    alias: str,
    sources: list[Path],
    workers: int,
    tag: str,
    threads: int = 0,
    extra_env: dict[str, str] | None = None,
    batch_size: int | None = None,
) -> tuple[float, dict[str, int]]:
    """Seconds for ``workers`` to transfer ``sources``; also the first
    worker's idle and peak RSS during the run. ``batch_size``: the saving
    side's BATCH_SIZE instead of the default."""
    storage = storages[alias]
    assert isinstance(storage, QueuedStorage)
    with env.workers(*worker_specs(ctx, workers, tag, threads, extra_env)) as started:
        warm_up(storage, started, tag)
        hooks = {**settings.STORAGE_HOOKS, **({"BATCH_SIZE": batch_size} if batch_size else {})}
        with override_settings(STORAGE_HOOKS=hooks):
            save_all(storage, tag, sources)
        pid = started[0].pid
        idle = env.read_status(pid)["VmRSS"]
        env.reset_peak(pid)
        start = resume(started)
        wait_remote(storage, f"{tag}/", len(sources), timeout=900)
        elapsed = time.perf_counter() - start
        peak = env.read_status(pid)["VmHWM"]
        problems = [line for w in started for line in w.errors()]
        if problems:
            raise RuntimeError("worker errors:\n" + "\n".join(problems[:20]))
    env.empty_prefix(ctx.endpoint, ctx.bucket, f"{tag}/")
    return elapsed, {"idle": idle, "peak": peak}


def boto3_big(ctx: Context, sources: list[Path], prefix: str) -> float:
    client = env.s3_client(ctx.endpoint)
    client.put_object(Bucket=ctx.bucket, Key=f"{prefix}/warm", Body=b"w")
    start = time.perf_counter()
    for path in sources:
        with open(path, "rb") as fh:
            client.upload_fileobj(fh, ctx.bucket, f"{prefix}/{path.name}")
    elapsed = time.perf_counter() - start
    env.empty_prefix(ctx.endpoint, ctx.bucket, f"{prefix}/")
    return elapsed


def boto3_small(ctx: Context, sources: list[Path], prefix: str, threads: int) -> float:
    client = env.s3_client(ctx.endpoint, pool=threads)

    def put(path: Path) -> None:
        with open(path, "rb") as fh:
            client.put_object(Bucket=ctx.bucket, Key=f"{prefix}/{path.name}", Body=fh)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, sources[:threads]))  # warm the connections
        start = time.perf_counter()
        list(pool.map(put, sources))
    elapsed = time.perf_counter() - start
    env.empty_prefix(ctx.endpoint, ctx.bucket, f"{prefix}/")
    return elapsed


def run(ctx: Context) -> list[Section]:
    sections = [big_files(ctx), small_files(ctx)]
    return sections


def big_files(ctx: Context) -> Section:
    size, count = 24 * MiB, ctx.size(12, 4)
    sources = make_sources(ctx.scratch / "src-big", count, size)
    before = boto3_big(ctx, sources, "boto3-big")
    ours, _ = transfer_run(ctx, "queued", sources, 1, "big")
    base = (before + boto3_big(ctx, sources, "boto3-big")) / 2  # the machine's drift, evened
    total = size * count
    ctx.measures["big"] = {"count": count, "size": size, "seconds": ours}
    return Section(
        f"Transfer throughput, {count} files of {size // MiB} MiB, one worker",
        [
            Row(
                "throughput, ours / boto3 upload_fileobj",
                f"{total / MiB / ours:.0f} MiB/s",
                f"{total / MiB / base:.0f} MiB/s",
                base / ours,
                (">=", 0.9),
                note="ours: SHA-256 verified, size checked, ledger updated; one Celery "
                "worker, default TransferConfig; baseline: the mean of a run before ours and "
                "one after",
            )
        ],
    )


def small_files(ctx: Context) -> Section:
    """Many small files saved in transactions of 200 (an import): they travel
    in batch messages of BATCH_SIZE files, and each worker process (solo
    pool) transfers BATCH_THREADS files of a message at once. boto3 gets the
    same total concurrency."""
    size, count = 16 * 1024, ctx.size(10_000, 1_000)
    sources = make_sources(ctx.scratch / "src-small", count, size)
    threads = SMALL_WORKERS * SMALL_THREADS
    before = boto3_small(ctx, sources, "boto3-small", threads)
    extra = {"BENCH_BATCH_THREADS": str(SMALL_THREADS)}
    ours, _ = transfer_run(ctx, "queued", sources, SMALL_WORKERS, "small", extra_env=extra)
    base = (before + boto3_small(ctx, sources, "boto3-small", threads)) / 2  # drift, evened
    some = sources[: ctx.size(2_000, 1_000)]  # the slower contrast: a part of the files
    single, _ = transfer_run(
        ctx,
        "queued",
        some,
        SMALL_WORKERS,
        "small-single",
        threads=SMALL_THREADS,
        extra_env=extra,
        batch_size=1,
    )
    ctx.measures["small"] = {"count": count, "seconds": ours, "seconds_single": single}
    return Section(
        f"Transfer throughput, {count:,} files of 16 KiB, {SMALL_WORKERS} worker processes",
        [
            Row(
                f"throughput, ours / boto3 put_object ({threads} threads)",
                f"{count / ours:.0f} files/s",
                f"{count / base:.0f} files/s",
                base / ours,
                (">=", 0.7),
                note=f"ours: batches of {BATCH_SIZE} files per message, {SMALL_THREADS} at a "
                "time per worker, claimed 8 per statement and recorded in groups; per file: one "
                "conditional PUT with the proof; baseline: one PUT, the mean of a run before "
                "ours and one after",
            ),
            Row(
                f"the same with one message per file (BATCH_SIZE=1, --pool threads -c "
                f"{SMALL_THREADS})",
                f"{len(some) / single:.0f} files/s",
                f"{count / base:.0f} files/s",
                (len(some) / single) / (count / base),
                None,
                note=f"for contrast, {len(some):,} of the files: round 1's way of sending them",
            ),
        ],
    )
