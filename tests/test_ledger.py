"""The ledger (storage_hooks.ledger and its model): one row per file, the
checksum taken while saving, and a cache that only spares queries."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.db import IntegrityError, transaction
from django.test import override_settings

from storage_hooks import Status, ledger, statecache
from storage_hooks.localfiles import CHUNK_SIZE
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import close_thread_connections, unique_key
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


# -- issue 12: a batch's files claimed and recorded with one statement each ---


@pytest.fixture(params=["returning", "one by one"])
def returning(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways of claiming and recording many rows: one ``UPDATE ...
    RETURNING`` (PostgreSQL, SQLite), and one statement per row (elsewhere)."""
    if request.param == "one by one":
        monkeypatch.setattr(ledger, "updates_returning", lambda: False)
    return bool(request.param == "returning")


def queued(storage: QueuedStorage, *names: str) -> QueuedStorage:
    """A delayed storage of ``storage``'s directories, with ``names`` saved
    and queued."""
    delayed = QueuedStorage(
        local=storage.local, remote=storage.remote, delayed=True, key=unique_key()
    )
    for name in names:
        delayed.save(name, ContentFile(name.encode()))
        assert ledger.requeue(delayed.key, name, reset_attempts=False)
    return delayed


def test_claim_many_takes_the_queued_files_among_the_names_once(
    fs_storage: QueuedStorage, returning: bool, django_assert_num_queries: Any
) -> None:
    storage = queued(fs_storage, "a.txt", "b.txt", "c.txt")
    storage.save("local.txt", ContentFile(b"not queued"))
    first = ledger.claim(storage.key, "b.txt")
    assert first is not None
    assert ledger.mark_failed(first, "boom", final=False)  # queued again, attempt 1 made
    before = row(storage, "a.txt").updated_at

    names = ["c.txt", "local.txt", "unknown.txt", "b.txt", "a.txt", "c.txt"]
    claimed = ledger.claim_many(storage.key, names)
    assert [(r.name, r.status, r.attempts) for r in claimed] == [
        ("c.txt", Status.TRANSFERRING, 1),
        ("b.txt", Status.TRANSFERRING, 2),
        ("a.txt", Status.TRANSFERRING, 1),
    ]
    assert all(r.pk == row(storage, r.name).pk for r in claimed)
    assert [r.checksum for r in claimed] == [row(storage, r.name).checksum for r in claimed]
    assert row(storage, "a.txt").updated_at > before
    assert row(storage, "a.txt").created_at < row(storage, "a.txt").updated_at
    assert row(storage, "local.txt").status == Status.LOCAL
    assert ledger.claim_many(storage.key, names) == []
    assert ledger.claim_many(storage.key, []) == []
    with django_assert_num_queries(0):  # the cache knows
        assert storage.statuses(["a.txt", "b.txt", "c.txt"]) == dict.fromkeys(
            ["a.txt", "b.txt", "c.txt"], Status.TRANSFERRING
        )


def test_claim_many_is_one_statement_where_the_database_returns_rows(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    names = [f"{i}.txt" for i in range(20)]
    storage = queued(fs_storage, *names)
    # The same name in another storage: not taken.
    other = ledger.record_saved(unique_key(), "0.txt", status=Status.QUEUED, checksum="0" * 64)
    with django_assert_num_queries(1):
        assert len(ledger.claim_many(storage.key, names)) == 20
    other.refresh_from_db()
    assert (other.status, other.attempts) == (Status.QUEUED, 0)


def test_mark_remote_many_records_only_the_attempts_still_claimed(
    fs_storage: QueuedStorage, returning: bool
) -> None:
    names = ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    storage = queued(fs_storage, *names)
    retried = ledger.claim(storage.key, "a.txt")
    assert retried is not None
    assert ledger.mark_failed(retried, "the first attempt failed", final=False, kind="io")
    a, b, c, d, e = ledger.claim_many(storage.key, names)
    moved = queued(fs_storage, "f.txt")
    (f,) = ledger.claim_many(moved.key, ["f.txt"])
    ledger.delete(storage.key, "b.txt")  # deleted meanwhile
    assert ledger.mark_failed(c, "failed", final=False)  # and claimed again
    assert ledger.claim(storage.key, "c.txt") is not None
    assert ledger.requeue(storage.key, "d.txt", reset_attempts=False)  # re-queued
    ledger.rekey(moved.key, unique_key())  # the storage got another key

    long = "x" * 300
    proven = [(a, "etag-a"), (b, "etag-b"), (c, "etag-c"), (d, "etag-d"), (e, long), (f, "f")]
    assert ledger.mark_remote_many(proven) == {a.pk, e.pk}
    done = {r.name: r for r in StoredFile.objects.filter(storage_key=storage.key)}
    assert (done["a.txt"].status, done["a.txt"].remote_etag) == (Status.REMOTE, "etag-a")
    assert (done["a.txt"].last_error, done["a.txt"].failure) == ("", "")
    assert done["a.txt"].updated_at >= done["a.txt"].transferred_at > a.updated_at
    assert (done["e.txt"].status, done["e.txt"].remote_etag) == (Status.REMOTE, "x" * 255)
    assert (done["c.txt"].status, done["c.txt"].attempts) == (Status.TRANSFERRING, 2)
    assert (done["c.txt"].remote_etag, done["c.txt"].transferred_at) == ("", None)
    assert done["d.txt"].status == Status.QUEUED
    assert StoredFile.objects.get(pk=f.pk).status == Status.TRANSFERRING
    assert "b.txt" not in done
    caches["default"].clear()  # this process still remembers the recorded ones
    assert storage.statuses(["a.txt", "e.txt"]) == dict.fromkeys(["a.txt", "e.txt"], Status.REMOTE)
    assert ledger.mark_remote_many([]) == set()


def test_mark_remote_many_publishes_to_the_cache_in_one_write(
    fs_storage: QueuedStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["a.txt", "b.txt"]
    storage = queued(fs_storage, *names)
    claimed = ledger.claim_many(storage.key, names)
    writes: list[dict[str, Any]] = []
    cache = caches["default"]
    monkeypatch.setattr(cache, "set_many", lambda values, timeout: writes.append(values))
    monkeypatch.setattr(cache, "set", lambda *args: writes.append({"set": args}))
    ledger.mark_remote_many([(r, "") for r in claimed])
    assert writes == [{statecache.cache_key(storage.key, n): "remote" for n in names}]


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_concurrent_claims_of_overlapping_names_take_each_row_once(
    ops_pg: str, settings: Any
) -> None:
    """Six claimers on PostgreSQL, each claiming an overlapping window of
    the names in its own order, eight at a time: every row is claimed by
    exactly one of them (no deadlock, no row twice or left out)."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "DATABASE": "ops_pg"}
    key = unique_key("pg")
    names = [f"{i:03d}.txt" for i in range(120)]
    StoredFile.objects.using("ops_pg").bulk_create(
        StoredFile(storage_key=key, name=n, status=Status.QUEUED, checksum="0" * 64) for n in names
    )
    together = threading.Barrier(6, timeout=10)
    taken: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def claimer(number: int) -> None:
        try:
            window = names[number * 15 : number * 15 + 45]
            random.Random(number).shuffle(window)
            together.wait()
            for start in range(0, len(window), 8):
                claimed = ledger.claim_many(key, window[start : start + 8])
                taken.extend((r.name, r.attempts) for r in claimed)
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_thread_connections()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(taken) == [(name, 1) for name in names]
    rows = StoredFile.objects.using("ops_pg").filter(storage_key=key)
    assert set(rows.values_list("status", "attempts")) == {(Status.TRANSFERRING, 1)}


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_claim_many_takes_the_free_rows_before_waiting_for_a_held_one(
    ops_pg: str, settings: Any
) -> None:
    """A row another transaction holds (a save overwriting it, say) is not
    waited for while the others are held: they are claimed and committed
    first, then the held one is waited for, as a lone claim does."""
    import psycopg

    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "DATABASE": "ops_pg"}
    key = unique_key("pg")
    names = ["a.txt", "held.txt", "b.txt"]
    rows = StoredFile.objects.using("ops_pg").filter(storage_key=key)
    for name in names:
        ledger.record_saved(key, name, status=Status.QUEUED, checksum="0" * 64)
    claimed: list[StoredFile] = []

    def claim() -> None:
        try:
            claimed.extend(ledger.claim_many(key, names))
        finally:
            close_thread_connections()

    with psycopg.connect(ops_pg) as other:
        other.execute(
            "SELECT id FROM storage_hooks_storedfile WHERE storage_key = %s AND name = %s "
            "FOR UPDATE",
            (key, "held.txt"),
        )
        thread = threading.Thread(target=claim)
        thread.start()
        deadline = time.monotonic() + 4
        while rows.filter(status=Status.TRANSFERRING).count() < 2:
            assert time.monotonic() < deadline, "the free rows waited for the held one"
            time.sleep(0.02)
        assert thread.is_alive()
        assert rows.get(name="held.txt").status == Status.QUEUED
        other.commit()
    thread.join(10)
    assert [(r.name, r.status) for r in claimed] == [(n, Status.TRANSFERRING) for n in names]
    assert set(rows.values_list("status", flat=True)) == {Status.TRANSFERRING}


def test_the_write_flag_is_set_only_for_the_attempt_still_claimed(
    fs_storage: QueuedStorage,
) -> None:
    storage = queued(fs_storage, "a.txt", "b.txt", "c.txt")
    a, b, c = ledger.claim_many(storage.key, ["a.txt", "b.txt", "c.txt"])
    assert ledger.mark_failed(b, "failed", final=False)  # and claimed again:
    again = ledger.claim(storage.key, "b.txt")
    assert again is not None
    assert ledger.requeue(storage.key, "c.txt", reset_attempts=False)  # re-queued
    for claimed in (a, b, c):
        ledger.mark_remote_write_started(claimed)
        assert claimed.remote_write_started  # this attempt writes either way ...
    flags = dict(
        StoredFile.objects.filter(storage_key=storage.key).values_list(
            "name", "remote_write_started"
        )
    )
    # ... but only the row it still holds says so.
    assert flags == {"a.txt": True, "b.txt": False, "c.txt": False}
    ledger.mark_remote_write_started(again)
    assert row(storage, "b.txt").remote_write_started is True
