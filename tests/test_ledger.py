"""The ledger (storage_hooks.ledger and its model): one row per file, the
checksum taken while saving, and a cache that only spares queries."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import IntegrityError, transaction
from django.test import override_settings

from storage_hooks import Status, ledger
from storage_hooks.localfiles import CHUNK_SIZE
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key
from .testapp.storages import CountingFileSystemStorage, counting_copy

pytestmark = pytest.mark.django_db(transaction=True)


def row(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


@pytest.fixture
def counted(pair: QueuedStorage) -> QueuedStorage:
    """The pair, with a remote (of the same kind) that counts its calls."""
    return QueuedStorage(local=pair.local, remote=counting_copy(pair.remote), key=unique_key())


def test_a_row_per_storage_key_and_name() -> None:
    fields = {"status": Status.QUEUED, "size": 1, "checksum": "0" * 64, "host": "h"}
    ledger.record_saved("one", "a.txt", **fields)
    ledger.record_saved("two", "a.txt", **fields)  # the same name in another storage
    with pytest.raises(IntegrityError), transaction.atomic():
        ledger.record_saved("one", "a.txt", **fields)
    assert StoredFile.objects.filter(name="a.txt").count() == 2


def test_a_saved_file_is_recorded_with_its_checksum_and_size(
    local_dir: Path, remote_dir: Path
) -> None:
    local = CountingFileSystemStorage(location=local_dir)
    storage = QueuedStorage(
        local=local, remote=FileSystemStorage(location=remote_dir), delayed=True, key=unique_key()
    )
    data = os.urandom(2 * CHUNK_SIZE + 3)
    name = storage.save("data.bin", ContentFile(data))
    saved = row(storage, name)
    assert saved.checksum == hashlib.sha256(data).hexdigest()
    assert saved.size == len(data)
    assert (saved.status, saved.attempts, saved.last_error) == (Status.LOCAL, 0, "")
    assert saved.host
    assert saved.transferred_at is None
    # Hashed while it was written: the local copy was not read back.
    assert local.calls["_open"] == 0

    storage.transfer(name)
    done = row(storage, name)
    assert (done.status, done.attempts) == (Status.REMOTE, 1)
    assert done.created_at <= done.updated_at
    assert done.transferred_at is not None
    assert done.transferred_at >= done.created_at


def test_an_upload_in_a_temporary_file_is_hashed_and_moved(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    data = b"uploaded " * 1000
    with TemporaryUploadedFile("up.txt", "text/plain", len(data), None) as upload:
        upload.write(data)
        upload.seek(0)
        name = fs_storage.save("up.txt", upload)
    saved = row(fs_storage, name)
    assert saved.checksum == hashlib.sha256(data).hexdigest()
    assert saved.size == len(data)
    assert (local_dir / name).read_bytes() == data


def test_losing_the_cache_changes_no_answer_and_costs_no_remote_call(
    counted: QueuedStorage,
) -> None:
    remote = counted.remote
    queued = QueuedStorage(local=counted.local, remote=remote, delayed=True, key=counted.key)
    on_remote = counted.save("remote.txt", ContentFile(b"r"))
    local_only = queued.save("local.txt", ContentFile(b"l"))
    names = [on_remote, local_only, "unknown.txt"]

    def answers() -> list[Any]:
        return [
            [counted.status(n) for n in names],
            [counted.using_remote(n) for n in names],
            [counted.using_local(n) for n in names],
            counted.statuses(names),
        ]

    before = answers()
    assert before[0] == [Status.REMOTE, Status.LOCAL, None]
    remote.calls.clear()
    caches["default"].clear()
    assert answers() == before
    caches["default"].clear()
    counted.url(on_remote)  # a remote URL is built, not fetched
    assert remote.remote_calls() == 0


def test_statuses_costs_one_query_then_none(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    names = [fs_storage.save(f"f{i}.txt", ContentFile(b"x")) for i in range(10)]
    asked = [*names, "unknown-1.txt", "unknown-2.txt"]
    caches["default"].clear()
    with django_assert_num_queries(1):
        found = fs_storage.statuses(asked)
    assert found == {
        **dict.fromkeys(names, Status.REMOTE),
        "unknown-1.txt": None,
        "unknown-2.txt": None,
    }
    with django_assert_num_queries(0):
        assert fs_storage.statuses(asked) == found
        assert fs_storage.urls(asked) == {name: fs_storage.url(name) for name in asked}
    caches["default"].clear()
    with django_assert_num_queries(1):
        fs_storage.urls(asked)


def test_the_cache_alias_and_prefix_are_settings(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    other = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "other"}
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
            "other": other,
        },
        STORAGE_HOOKS={
            "RUNNER": "immediate",
            "CACHE": "other",
            "CACHE_PREFIX": "mine",
            "MEMORY_SIZE": 0,  # no per-process memory: the cache alone
        },
    ):
        name = fs_storage.save("a.txt", ContentFile(b"x"))
        assert fs_storage.status(name) == Status.REMOTE
        caches["default"].clear()
        with django_assert_num_queries(0):
            assert fs_storage.status(name) == Status.REMOTE
        caches["other"].clear()
        with django_assert_num_queries(1):
            assert fs_storage.status(name) == Status.REMOTE
        theirs = override_settings(
            STORAGE_HOOKS={"CACHE": "other", "CACHE_PREFIX": "theirs", "MEMORY_SIZE": 0}
        )
        with theirs, django_assert_num_queries(1):  # another prefix: another cache entry
            assert fs_storage.status(name) == Status.REMOTE
        caches["other"].clear()


def test_a_transaction_sees_its_own_changes(fs_storage: QueuedStorage) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=unique_key()
    )
    name = delayed.save("a.txt", ContentFile(b"x"))
    assert delayed.status(name) == Status.LOCAL  # now in the cache
    with transaction.atomic():
        delayed.transfer(name)
        assert delayed.status(name) == Status.QUEUED
        assert delayed.status(name) == Status.QUEUED  # also on a second read
        delayed.delete(name)
        assert delayed.status(name) is None
    assert delayed.status(name) is None


def test_a_rolled_back_change_leaves_no_trace_in_the_cache(fs_storage: QueuedStorage) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():  # noqa: PT012
        name = fs_storage.save("a.txt", ContentFile(b"x"))
        assert fs_storage.status(name) == Status.QUEUED  # read inside: not published
        raise Rollback
    assert fs_storage.status(name) is None
    assert not StoredFile.objects.filter(storage_key=fs_storage.key).exists()


def test_a_transaction_still_caches_rows_it_did_not_change(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    # As in a view under ATOMIC_REQUESTS: url() of files saved earlier must
    # fill the cache, or every page would query the ledger for every file.
    name = fs_storage.save("old.txt", ContentFile(b"x"))
    caches["default"].clear()
    with transaction.atomic():
        fs_storage.save("new.txt", ContentFile(b"y"))
        assert fs_storage.status(name) == Status.REMOTE
    with django_assert_num_queries(0):
        assert fs_storage.status(name) == Status.REMOTE


def test_only_one_claim_per_queued_file(fs_storage: QueuedStorage) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=unique_key()
    )
    name = delayed.save("a.txt", ContentFile(b"x"))
    assert ledger.claim(delayed.key, name) is None  # LOCAL: not queued
    assert ledger.requeue(delayed.key, name, reset_attempts=False)
    first = ledger.claim(delayed.key, name)
    assert first is not None
    assert (first.status, first.attempts) == (Status.TRANSFERRING, 1)
    assert ledger.claim(delayed.key, name) is None
    assert delayed.status(name) == Status.TRANSFERRING


def test_requeue_leaves_a_remote_file_alone(fs_storage: QueuedStorage) -> None:
    name = fs_storage.save("a.txt", ContentFile(b"x"))
    assert not ledger.requeue(fs_storage.key, name, reset_attempts=True)
    assert not ledger.requeue(fs_storage.key, "unknown.txt", reset_attempts=True)
    assert row(fs_storage, name).status == Status.REMOTE


def test_each_process_remembers_files_on_the_remote(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    name = fs_storage.save("a.txt", ContentFile(b"x"))
    caches["default"].clear()
    with django_assert_num_queries(0):  # neither cache nor ledger asked
        assert fs_storage.url(name) == f"/remote/{name}"
    fs_storage.delete(name)  # a change in this process reaches the memory at once
    assert fs_storage.status(name) is None
    assert fs_storage.url(name) == f"/local/{name}"


def test_the_memory_expires_and_can_be_turned_off(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    name = fs_storage.save("a.txt", ContentFile(b"x"))
    # Another process deletes the row: this one notices when its memory
    # expires (here at once), not before.
    StoredFile.objects.filter(storage_key=fs_storage.key, name=name).delete()
    caches["default"].clear()
    assert fs_storage.status(name) == Status.REMOTE
    no_memory = override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "MEMORY_TIMEOUT": 0})
    with no_memory, django_assert_num_queries(1):
        assert fs_storage.status(name) is None
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "MEMORY_SIZE": 0}):
        other = fs_storage.save("b.txt", ContentFile(b"y"))
        caches["default"].clear()
        with django_assert_num_queries(1):
            assert fs_storage.status(other) == Status.REMOTE


# -- issue 18: ledger behaviours pinned in the ledger's own tests -------------


@pytest.mark.parametrize("reset", [False, True])
def test_requeue_resets_attempts_only_when_asked(fs_storage: QueuedStorage, reset: bool) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=unique_key()
    )
    name = delayed.save("a.txt", ContentFile(b"x"))
    assert ledger.requeue(delayed.key, name, reset_attempts=False)
    claimed = ledger.claim(delayed.key, name)
    assert claimed is not None
    assert ledger.mark_failed(claimed, "boom", final=True, kind="error")
    assert ledger.requeue(delayed.key, name, reset_attempts=reset)
    requeued = row(delayed, name)
    assert requeued.status == Status.QUEUED
    assert requeued.attempts == (0 if reset else 1)
    assert requeued.failure == ("" if reset else "error")


def test_an_insert_conflict_is_not_counted_as_inserted(fs_storage: QueuedStorage) -> None:
    assert ledger.insert_if_absent(
        fs_storage.key, "taken.txt", status=Status.LOCAL, size=1, checksum="a" * 64
    )
    first = StoredFile.objects.filter(storage_key=fs_storage.key, name="taken.txt").values().get()
    assert not ledger.insert_if_absent(
        fs_storage.key, "taken.txt", status=Status.QUEUED, size=2, checksum="b" * 64
    )
    assert StoredFile.objects.filter(storage_key=fs_storage.key, name="taken.txt").count() == 1
    assert (
        StoredFile.objects.filter(storage_key=fs_storage.key, name="taken.txt").values().get()
        == first
    )
    assert ledger.status(fs_storage.key, "taken.txt") == Status.LOCAL
