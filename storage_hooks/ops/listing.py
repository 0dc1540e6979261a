"""Listing a storage and the ledger in one order, for streaming merges.

Both sides come sorted by code point (Python's ``str`` order, which is the
byte order of UTF-8 and the order S3's ListObjectsV2 returns), so ``verify``
and ``sync --remote`` walk them side by side: one request per thousand
objects on S3, and memory that does not grow with the number of files.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from typing import Any

from django.core.files.storage import Storage
from django.db.models import F
from django.db.models.functions import Collate

from .. import s3
from ..status import Status
from .common import is_postgresql, objects

#: Ledger rows fetched per round trip while streaming.
FETCH = 2000


def walk(storage: Storage, top: str = "") -> Iterator[str]:
    """Every file name under ``top`` through ``listdir``, in code-point
    order of the whole name (a directory ``a`` is visited where ``a/``
    sorts among its siblings).

    On a file system, directories reached through a symlink that leads
    outside the storage's root, or back to a directory seen before, are
    not entered.
    """
    root = getattr(storage, "location", None)
    base = os.path.realpath(root) if root else ""
    seen: set[str] = set()

    def inside(directory: str) -> bool:
        if not root:
            return True
        real = os.path.realpath(os.path.join(root, directory))
        if real in seen or not (real == base or real.startswith(base + os.sep)):
            return False
        seen.add(real)
        return True

    def visit(directory: str) -> Iterator[str]:
        if not inside(directory):
            return
        try:
            dirs, files = storage.listdir(directory)
        except FileNotFoundError:
            return
        entries = [(name, False) for name in files] + [(name + "/", True) for name in dirs]
        for entry, is_dir in sorted(entries):
            path = posixpath.join(directory, entry) if directory else entry
            if is_dir:
                yield from visit(path.rstrip("/"))
            else:
                yield path

    yield from visit(top)


def sized_listing(storage: Storage) -> Iterator[tuple[str, int | None]]:
    """``(name, size)`` of every file, sorted; the size is None where the
    listing does not tell it. An S3 bucket is listed flat, with sizes, one
    ListObjectsV2 request per thousand objects."""
    remote_s3 = s3.as_s3(storage)
    if remote_s3 is None:
        for name in walk(storage):
            yield name, None
        return
    # S3Storage.location is a documented option (django-storages 1.14.6);
    # the names it lists are relative to it, as listdir()'s are.
    location = str(remote_s3.location or "").strip("/")
    prefix = f"{location}/" if location else ""
    paginator = s3.client(remote_s3).get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=remote_s3.bucket_name, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    ):
        for entry in page.get("Contents", ()):
            key = entry["Key"]
            if not key.endswith("/"):
                yield key[len(prefix) :], int(entry["Size"])


def ledger_in_order(key: str, status: Status = Status.REMOTE) -> Iterator[Any]:
    """The rows of ``key`` in ``status`` sorted by name in code-point order,
    streamed (a server-side cursor on PostgreSQL), with only the fields the
    operations read."""
    order = Collate(F("name"), "C") if is_postgresql() else F("name")
    query = (
        objects()
        .filter(storage_key=key, status=status)
        .only("pk", "storage_key", "name", "size", "checksum", "status", "host", "remote_etag")
        .order_by(order)
    )
    return query.iterator(chunk_size=FETCH)
