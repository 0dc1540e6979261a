"""Listing a storage for ``verify`` and ``sync``: symlinks, empty buckets,
and the ledger's rows streamed with the fields the operations read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status
from storage_hooks.models import StoredFile
from storage_hooks.ops.listing import ledger_in_order, walk
from storage_hooks.ops.sync import sync_storage
from storage_hooks.ops.verify import verify_remote

from ..conftest import unique_key
from ..test_ops_verify import s3_storage

pytestmark = pytest.mark.django_db(transaction=True)


def test_walk_does_not_follow_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "media", tmp_path / "elsewhere"
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "cat.jpg").write_bytes(b"c")
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_bytes(b"s")
    os.symlink(elsewhere, root / "outside")
    os.symlink(root / "photos", root / "inside")  # the same folder twice

    names = list(walk(FileSystemStorage(location=root)))

    assert names == ["inside/cat.jpg"]  # listed once, where it is first reached


def test_walk_does_not_loop_through_a_symlink_to_a_parent(tmp_path: Path) -> None:
    root = tmp_path / "media"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.txt").write_bytes(b"f")
    os.symlink(root, root / "a" / "up")

    assert list(walk(FileSystemStorage(location=root))) == ["a/f.txt"]


def test_an_empty_bucket_lists_nothing(s3_endpoint: str, s3_bucket: str, local_dir: Path) -> None:
    storage, _ = s3_storage(s3_endpoint, s3_bucket, local_dir, location="empty")
    assert sync_storage(storage, remote=True).seen_remote == 0
    assert verify_remote([storage.key]).ok


def test_the_ledger_streams_its_rows_with_the_fields_read_in_one_query(
    django_assert_num_queries,  # type: ignore[no-untyped-def]
) -> None:
    key = unique_key("stream")
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=key, name=f"f{i}", status=Status.REMOTE, size=i, host="web-1")
        for i in range(5)
    )
    fields = ("pk", "storage_key", "name", "size", "checksum", "status", "host", "remote_etag")
    with django_assert_num_queries(1):
        rows = [tuple(getattr(row, field) for field in fields) for row in ledger_in_order(key)]
    assert [(row[2], row[5]) for row in rows] == [(f"f{i}", Status.REMOTE) for i in range(5)]
