"""verify and sync at scale: by listing the bucket, not by asking per file.

A bucket prefix gets N small objects (100,000; 10,000 with ``--quick``).
``verify`` checks N REMOTE rows of the ledger against it; ``sync --remote``
adopts the N objects into an empty ledger. Each is set beside a raw
``ListObjectsV2`` pagination of the same prefix with boto3 (the least any
tool that looks at every object must do): time, S3 requests (counted with a
botocore event hook), and the growth of this process's peak RSS.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage

from benchmarks import env
from benchmarks.context import Context
from benchmarks.report import Row, Section, mib
from storage_hooks import ledger, s3
from storage_hooks.ops.sync import sync_storage
from storage_hooks.ops.verify import verify_remote
from storage_hooks.status import Status
from storage_hooks.storage import QueuedStorage

PREFIX = "ops"
HOW = {
    "verify": "the ledger's rows streamed in name order and merged with the listing",
    "sync --remote": "the listing's names looked up and recorded in chunks of rows",
}
BODY = b"o" * 100


def fill_bucket(ctx: Context, count: int) -> list[str]:
    """``count`` objects under PREFIX/, put by 16 threads; their names."""
    client = env.s3_client(ctx.endpoint, pool=16)
    names = [f"d{i % 100:02d}/f{i:06d}.bin" for i in range(count)]

    def put(name: str) -> None:
        client.put_object(Bucket=ctx.bucket, Key=f"{PREFIX}/{name}", Body=BODY)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))
    return names


def storage_of(ctx: Context, key: str) -> QueuedStorage:
    from storages.backends.s3 import S3Storage

    local = ctx.scratch / f"{key}-local"
    local.mkdir(parents=True, exist_ok=True)
    remote = S3Storage(**settings.S3, location=PREFIX)
    return QueuedStorage(local=FileSystemStorage(location=local), remote=remote, key=key)


@contextmanager
def counted(client: Any) -> Iterator[list[str]]:
    """The S3 operations ``client`` sends while the block runs."""
    sent: list[str] = []

    def count(model: Any, **kwargs: Any) -> None:
        sent.append(model.name)

    client.meta.events.register("before-call.s3", count)
    try:
        yield sent
    finally:
        client.meta.events.unregister("before-call.s3", count)


def measured(job: Callable[[], Any], client: Any) -> tuple[float, int, int]:
    """Seconds, S3 requests and peak-RSS growth (bytes) of ``job``."""
    pid = os.getpid()
    before = env.read_status(pid)["VmRSS"]
    env.reset_peak(pid)
    with counted(client) as sent:
        start = time.perf_counter()
        job()
        elapsed = time.perf_counter() - start
    return elapsed, len(sent), env.read_status(pid)["VmHWM"] - before


def raw_listing(ctx: Context) -> tuple[float, int]:
    client = env.s3_client(ctx.endpoint)
    pages = 0

    def walk() -> None:
        nonlocal pages
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=ctx.bucket, Prefix=f"{PREFIX}/", PaginationConfig={"PageSize": 1000}
        ):
            pages += 1
            for _entry in page.get("Contents", ()):
                pass

    start = time.perf_counter()
    walk()
    return time.perf_counter() - start, pages


def run(ctx: Context) -> Section:
    count = ctx.size(100_000, 10_000)
    started = time.perf_counter()
    names = fill_bucket(ctx, count)
    filled = time.perf_counter() - started
    section = Section(f"verify and sync of {count:,} remote files, by listing")

    verifying = storage_of(ctx, "bench-ops-verify")
    model = ledger.model()
    model.objects.bulk_create(
        (
            model(
                storage_key=verifying.key,
                name=name,
                status=Status.REMOTE,
                size=len(BODY),
                checksum="0" * 64,
            )
            for name in names
        ),
        batch_size=5000,
    )
    base, pages = raw_listing(ctx)
    client = s3.client(verifying.remote)
    reports: list[Any] = []
    seconds, requests, rss = measured(
        lambda: reports.append(verify_remote([verifying.key])), client
    )
    report = reports[0]
    if report.checked != count or report.problems:
        raise RuntimeError(f"verify checked {report.checked}: {report.problems[:3]}")
    section.rows += rows("verify", seconds, base, requests, pages, rss)

    adopting = storage_of(ctx, "bench-ops-sync")
    client = s3.client(adopting.remote)
    seconds, requests, rss = measured(
        lambda: reports.append(sync_storage(adopting, remote=True)), client
    )
    if len(reports[-1].recorded_remote) != count:
        raise RuntimeError(f"sync recorded {len(reports[-1].recorded_remote)} of {count}")
    section.rows += rows("sync --remote", seconds, base, requests, pages, rss)
    section.rows[0].note += f"; bucket filled in {filled:.0f}s"
    return section


def rows(what: str, seconds: float, base: float, requests: int, pages: int, rss: int) -> list[Row]:
    return [
        Row(
            f"{what}: time, ours / raw ListObjectsV2 pagination",
            f"{seconds:.2f} s",
            f"{base:.2f} s",
            seconds / base,
            ("<=", 1.5),
            note=f"{HOW[what]}; the raw listing took {pages} pages",
        ),
        Row(
            f"{what}: S3 requests",
            str(requests),
            f"{pages} pages",
            float(requests),
            ("<=", 110.0),
            note="ratio column: requests sent by ours",
            unit="",
        ),
        Row(
            f"{what}: peak RSS growth",
            mib(rss),
            "",
            rss / 2**20,
            ("<=", 64.0),
            note="ratio column: MiB over the RSS before",
            unit=" MiB",
        ),
    ]
