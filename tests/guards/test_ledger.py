"""The ledger's rows as the code that reads and changes them relies on:
where they are kept, what each change resets, and what the cache learns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import OperationalError, connections, transaction
from django.test import override_settings

from storage_hooks import Status, ledger
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from ..conftest import unique_key

pytestmark = pytest.mark.django_db(transaction=True)

#: The alias of the second database (the fixture ``other_database``).
OTHER = "other"


class Rollback(Exception):
    pass


def on(alias: str, key: str) -> Any:
    return StoredFile.objects.using(alias).filter(storage_key=key)


@pytest.fixture
def ledger_elsewhere(other_database: str) -> Iterator[str]:
    """The ledger kept in the database ``other`` (STORAGE_HOOKS["DATABASE"])."""
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "DATABASE": other_database}):
        yield other_database


# -- a ledger on a database of its own ----------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", OTHER])
def test_the_ledger_is_kept_on_the_configured_database(
    ledger_elsewhere: str, local_dir: Path, remote_dir: Path
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key(),
    )
    name = storage.save("a.txt", ContentFile(b"x"))
    assert storage.status(name) == Status.REMOTE
    assert on(ledger_elsewhere, storage.key).get().status == Status.REMOTE
    assert not on("default", storage.key).exists()
    storage.delete(name)
    assert not on(ledger_elsewhere, storage.key).exists()


@pytest.mark.django_db(transaction=True, databases=["default", OTHER])
def test_a_claim_that_fails_half_way_leaves_the_file_queued(ledger_elsewhere: str) -> None:
    key = unique_key()
    ledger.record_saved(key, "a.txt", status=Status.QUEUED, host="h")

    def lose_the_connection_on_read(execute: Any, sql: str, *args: Any) -> Any:
        if sql.lstrip().upper().startswith("SELECT"):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, *args)

    wrapper = connections[ledger_elsewhere].execute_wrapper(lose_the_connection_on_read)
    with wrapper, pytest.raises(OperationalError):
        ledger.claim(key, "a.txt")
    # Not left TRANSFERRING (nobody transfers it) with an attempt counted.
    assert on(ledger_elsewhere, key).values_list("status", "attempts").get() == (
        Status.QUEUED,
        0,
    )
    claimed = ledger.claim(key, "a.txt")
    assert claimed is not None
    assert claimed.attempts == 1


@pytest.mark.django_db(transaction=True, databases=["default", OTHER])
def test_rows_adopted_beside_a_concurrent_save_go_to_the_ledgers_database(
    ledger_elsewhere: str,
) -> None:
    key = unique_key()
    ledger.record_saved(key, "taken.txt", status=Status.LOCAL, host="h")  # saved meanwhile
    found = [
        StoredFile(storage_key=key, name=name, status=Status.QUEUED, host="h")
        for name in ("new.txt", "taken.txt", "also-new.txt")
    ]
    created = ledger.insert_many(found)
    assert sorted(row.name for row in created) == ["also-new.txt", "new.txt"]
    assert dict(on(ledger_elsewhere, key).values_list("name", "status")) == {
        "new.txt": Status.QUEUED,
        "also-new.txt": Status.QUEUED,
        "taken.txt": Status.LOCAL,
    }
    assert not on("default", key).exists()
    assert ledger.status(key, "new.txt") == Status.QUEUED


@pytest.mark.django_db(transaction=True, databases=["default", OTHER])
def test_a_rolled_back_rekey_leaves_no_trace_in_the_cache(ledger_elsewhere: str) -> None:
    old, new = unique_key("old"), unique_key("new")
    ledger.record_saved(old, "a.txt", status=Status.REMOTE, host="h")
    with pytest.raises(Rollback), transaction.atomic(using=ledger_elsewhere):  # noqa: PT012
        assert ledger.rekey(old, new) == 1
        raise Rollback
    assert ledger.status(new, "a.txt") is None
    assert ledger.status(old, "a.txt") == Status.REMOTE


@pytest.mark.django_db(transaction=True, databases=["default", OTHER])
def test_a_database_without_insert_on_conflict_records_names_once(
    ledger_elsewhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on MySQL or Oracle (not at hand): the portable path, a savepoint.
    key = unique_key()
    with monkeypatch.context() as patch:
        patch.setattr(connections[ledger_elsewhere], "vendor", "unknown")
        assert not ledger.inserts_if_absent()
        with transaction.atomic(using=ledger_elsewhere):
            assert ledger.insert_if_absent(key, "a.txt", status=Status.LOCAL, host="h")
            assert not ledger.insert_if_absent(key, "a.txt", status=Status.QUEUED, host="h")
            # The caller's transaction goes on after the conflict.
            assert ledger.insert_if_absent(key, "b.txt", status=Status.QUEUED, host="h")
    assert dict(on(ledger_elsewhere, key).values_list("name", "status")) == {
        "a.txt": Status.LOCAL,
        "b.txt": Status.QUEUED,
    }
    assert ledger.status(key, "a.txt") == Status.LOCAL
    assert ledger.status(key, "b.txt") == Status.QUEUED
    assert ledger.inserts_if_absent()  # SQLite: one statement


# -- what each change resets ---------------------------------------------------


@pytest.fixture
def overwriting(local_dir: Path, remote_dir: Path) -> QueuedStorage:
    """A delayed storage whose local storage overwrites (``allow_overwrite``)."""
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir, allow_overwrite=True),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        key=unique_key(),
    )


def row_of(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


def test_overwriting_a_transferred_file_replaces_its_remote_copy(
    overwriting: QueuedStorage, remote_dir: Path
) -> None:
    name = overwriting.save("a.txt", ContentFile(b"old"))
    overwriting.transfer(name)
    assert (remote_dir / name).read_bytes() == b"old"

    assert overwriting.save(name, ContentFile(b"new content")) == name
    again = row_of(overwriting, name)
    assert (again.status, again.attempts, again.size) == (Status.LOCAL, 0, len(b"new content"))
    assert again.transferred_at is None
    assert overwriting.status(name) == Status.LOCAL
    with overwriting.open(name) as fh:
        assert fh.read() == b"new content"

    overwriting.transfer(name)
    assert row_of(overwriting, name).status == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"new content"


def test_overwriting_a_failed_file_forgets_the_failure(
    overwriting: QueuedStorage, remote_dir: Path
) -> None:
    name = overwriting.save("a.txt", ContentFile(b"old"))
    StoredFile.objects.filter(storage_key=overwriting.key, name=name).update(
        status=Status.FAILED, attempts=6, last_error="refused", failure="error"
    )
    (remote_dir / name).write_bytes(b"another writer's file")

    overwriting.save(name, ContentFile(b"new"))
    again = row_of(overwriting, name)
    assert (again.status, again.attempts, again.last_error, again.failure) == (
        Status.LOCAL,
        0,
        "",
        "",
    )
    # The remote file of that name was never ours: not replaced.
    assert not again.remote_write_started
    overwriting.transfer(name)
    assert row_of(overwriting, name).status == Status.FAILED
    assert (remote_dir / name).read_bytes() == b"another writer's file"


def test_a_file_transferred_after_a_failed_attempt_no_longer_reports_the_failure() -> None:
    key = unique_key()
    ledger.record_saved(key, "a.txt", status=Status.QUEUED, host="h")
    first = ledger.claim(key, "a.txt")
    assert first is not None
    assert ledger.mark_failed(first, "timed out", final=False, kind="error")
    second = ledger.claim(key, "a.txt")
    assert second is not None
    assert ledger.mark_remote(second, "etag")
    done = StoredFile.objects.get(storage_key=key, name="a.txt")
    assert (done.status, done.attempts, done.last_error, done.failure) == (
        Status.REMOTE,
        2,
        "",
        "",
    )


def test_a_lost_file_queued_again_no_longer_reports_the_failure() -> None:
    key = unique_key()
    saved = ledger.record_saved(key, "a.txt", status=Status.REMOTE, host="h")
    assert ledger.mark_lost(key, saved.pk, "a.txt", "no copy left")
    assert StoredFile.objects.get(pk=saved.pk).failure == "missing"
    assert ledger.requeue_remote(key, saved.pk, "a.txt")
    again = StoredFile.objects.get(pk=saved.pk)
    assert (again.status, again.last_error, again.failure) == (Status.QUEUED, "", "")
    assert ledger.status(key, "a.txt") == Status.QUEUED


# -- reads -----------------------------------------------------------------------


def test_get_returns_the_row_of_the_name() -> None:
    key = unique_key()
    ledger.record_saved(key, "a.txt", status=Status.REMOTE, host="h", size=1)
    ledger.record_saved(key, "b.txt", status=Status.QUEUED, host="h", size=2)
    found = ledger.get(key, "b.txt")
    assert found is not None
    assert (found.name, found.status, found.size) == ("b.txt", Status.QUEUED, 2)
    assert ledger.get(key, "c.txt") is None


def test_asking_the_database_afresh_corrects_a_stale_cache() -> None:
    key = unique_key()
    ledger.record_saved(key, "a.txt", status=Status.QUEUED, host="h")
    # Another process finished the transfer, and its cache update was lost.
    StoredFile.objects.filter(storage_key=key, name="a.txt").update(status=Status.REMOTE)
    assert ledger.status(key, "a.txt") == Status.QUEUED
    assert ledger.fresh_status(key, "a.txt") == Status.REMOTE
    assert ledger.status(key, "a.txt") == Status.REMOTE


def test_a_ledger_without_its_app_says_how_to_install_it() -> None:
    apps = ["django.contrib.contenttypes", "django.contrib.auth"]
    with override_settings(INSTALLED_APPS=apps), pytest.raises(ImproperlyConfigured) as caught:
        ledger.model()
    message = str(caught.value)
    assert "INSTALLED_APPS" in message
    assert "manage.py migrate" in message


def test_deleting_a_name_the_ledger_does_not_know_holds_it_with_a_placeholder() -> None:
    key = unique_key()
    held = ledger.begin_delete(key, "never-saved.txt")
    assert held is not None
    assert held.pk is not None
    # Nothing was saved on any host, nothing written to the remote.
    assert (held.status, held.host, held.checksum, held.remote_write_started) == (
        Status.DELETING,
        "",
        "",
        False,
    )
    assert ledger.begin_delete(key, "never-saved.txt") is None  # already being deleted
    ledger.finish_delete(held)
    assert not ledger.knows(key, "never-saved.txt")
