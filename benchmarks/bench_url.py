"""``url()`` of transferred files: a page of 1,000 images.

Ours (``QueuedStorage.url``: a cache lookup, then the remote's own url)
against the remote storage's ``url()`` on the same names, warm and with the
cache just flushed, for two S3 set-ups: signed URLs (django-storages'
default, which signs through botocore) and a ``custom_domain`` (plain
string formatting, the harder comparison). The cache is Redis, as a site
with separate web and worker processes needs.

Also counted: requests sent to the S3 server while rendering (must be
zero), and queries of the bulk path ``storage.statuses(names)`` for pages
of different sizes (must not grow with the page).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.db import connection
from django.test import override_settings
from storages.backends.s3 import S3Storage

from benchmarks.context import Context
from benchmarks.report import Row, Section, median, ms
from storage_hooks import ledger
from storage_hooks.status import Status
from storage_hooks.storage import QueuedStorage

PAGE = 1000
KEY = "queued"  # the storage of settings.STORAGES; its files may exist already


def page_names(storage: QueuedStorage) -> list[str]:
    """1,000 names transferred by ``storage``: those of earlier benchmarks of
    this run, topped up with new 1 KiB files (transferred in this process)."""
    names = list(
        ledger.rows(KEY).filter(status=Status.REMOTE).values_list("name", flat=True)[:PAGE]
    )
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate"}):
        for i in range(PAGE - len(names)):
            names.append(storage.save(f"page/{i}.jpg", ContentFile(b"x" * 1024)))
    assert all(storage.status(n) == Status.REMOTE for n in names[:10])
    return names


class Queries:
    """Counts queries on the default database (without Django's debug
    cursor, which would slow every query down)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self) -> Queries:
        self._wrapping = connection.execute_wrapper(self)
        self._wrapping.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._wrapping.__exit__(*exc)


class RemoteCalls:
    """Counts requests a boto3 client sends."""

    def __init__(self, remote: Storage) -> None:
        self.count = 0
        client = remote.connection.meta.client  # type: ignore[attr-defined]
        client.meta.events.register("before-send.s3", self._sent)

    def _sent(self, **kwargs: object) -> None:
        self.count += 1


def page_time(render: Callable[[str], str], names: list[str]) -> float:
    start = time.perf_counter()
    for name in names:
        render(name)
    return time.perf_counter() - start


def flush(cache: Any) -> None:
    """The cache flushed, as a process that starts after the flush sees it:
    without its own memory of files on the remote either."""
    cache.clear()
    ledger.clear_memory()


def compare(
    label: str, storage: QueuedStorage, names: list[str], passes: int
) -> tuple[list[Row], dict[str, float]]:
    cache = caches["default"]
    remote = storage.remote
    calls = RemoteCalls(remote)
    for name in names[:50]:  # warm the clients
        storage.url(name)
        remote.url(name)
    warm, cold, bulk_warm, bulk_cold, base = [], [], [], [], []
    queries = 0
    for _ in range(passes):
        storage.statuses(names)
        warm.append(page_time(storage.url, names))
        base.append(page_time(remote.url, names))
        start = time.perf_counter()
        storage.urls(names)
        bulk_warm.append(time.perf_counter() - start)
        flush(cache)
        with Queries() as counted:
            cold.append(page_time(storage.url, names))
        queries = max(queries, counted.count)
        flush(cache)
        start = time.perf_counter()
        storage.urls(names)
        bulk_cold.append(time.perf_counter() - start)
    remote_calls = calls.count
    m_warm, m_cold, m_base = median(warm), median(cold), median(base)
    m_bulk_warm, m_bulk_cold = median(bulk_warm), median(bulk_cold)
    no_calls = f"{remote_calls} requests to the S3 server during all passes (goal: 0)"
    rows = [
        Row(
            f"url() per file, warm, page of {len(names)} [{label}]",
            ms(m_warm),
            ms(m_base),
            m_warm / m_base,
            ("<=", 2),
            note=f"median page time of {passes} passes; baseline: the remote's own url()",
        ),
        Row(
            f"url() per file, cache just flushed [{label}]",
            ms(m_cold),
            ms(m_base),
            m_cold / m_base,
            ("<=", 5),
            note=f"{no_calls}; {queries} queries for the page (one per name)",
            extra_pass=remote_calls == 0,
        ),
        Row(
            f"urls(names) for the page, warm [{label}]",
            ms(m_bulk_warm),
            ms(m_base),
            m_bulk_warm / m_base,
            ("<=", 2),
            note="the bulk path: one cache round trip for the page",
        ),
        Row(
            f"urls(names) for the page, cache just flushed [{label}]",
            ms(m_bulk_cold),
            ms(m_base),
            m_bulk_cold / m_base,
            ("<=", 5),
            note=f"{no_calls}; one query, then one cache write for the page",
            extra_pass=remote_calls == 0,
        ),
    ]
    measured = {"warm": m_warm, "cold": m_cold, "bulk": m_bulk_warm, "base": m_base}
    return rows, measured


def bulk_queries(storage: QueuedStorage, names: list[str]) -> Row:
    cache = caches["default"]
    counts = {}
    for size in (10, 100, len(names)):
        flush(cache)
        with Queries() as counted:
            storage.statuses(names[:size])
        counts[size] = counted.count
    small, big = counts[10], counts[len(names)]
    return Row(
        f"queries of statuses(names), cache flushed: N={len(names)} / N=10",
        f"{big} queries",
        f"{small} queries",
        big / max(small, 1),
        ("<=", 1),
        note="O(1) queries: " + ", ".join(f"N={n}: {q}" for n, q in counts.items()),
        extra_pass=big <= 1,
    )


def run(ctx: Context) -> Section:
    signed = storages["queued"]
    assert isinstance(signed, QueuedStorage)
    names = page_names(signed)
    passes = ctx.size(3, 2)
    domain = QueuedStorage(
        local=signed.local,
        remote=S3Storage(
            **{
                **dict(_s3_options()),
                "custom_domain": "cdn.example.test",
                "querystring_auth": False,
            }
        ),
        key=KEY,
    )
    section = Section("url() of transferred files (a page of 1,000 images), Redis cache")
    rows, measured = compare("signed S3 URLs", signed, names, passes)
    ctx.measures["url"] = measured
    section.rows += rows
    section.rows += compare("S3 custom_domain", domain, names, passes)[0]
    section.rows.append(bulk_queries(signed, names))
    return section


def _s3_options() -> dict[str, object]:
    from django.conf import settings

    return dict(settings.S3)
