"""The storage contract of QueuedStorage, run against every pair of real
storages of the ``pair`` fixture: FileSystem -> FileSystem, FileSystem ->
InMemory and FileSystem -> S3 (moto's server, over HTTP).

Tests run inside a transaction, so nothing is transferred until the
on-commit callbacks are executed (``django_capture_on_commit_callbacks``):
that is how a file is observed before and after its transfer.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key

pytestmark = pytest.mark.django_db

DATA = b"the contract, in bytes\n"
READS = (
    "exists",
    "size",
    "url",
    "path",
    "get_accessed_time",
    "get_created_time",
    "get_modified_time",
)


def read(storage: Any, name: str) -> bytes:
    with storage.open(name, "rb") as fh:
        data: bytes = fh.read()
    return data


def answer(storage: Any, method: str, name: str) -> Any:
    """What ``storage.method(name)`` returns, or the type of what it raises."""
    try:
        return getattr(storage, method)(name)
    except Exception as exc:
        return type(exc)


def assert_served_by(pair: QueuedStorage, name: str, target: Any) -> None:
    for method in READS:
        assert answer(pair, method, name) == answer(target, method, name), method


def delayed_copy(pair: QueuedStorage) -> QueuedStorage:
    return QueuedStorage(local=pair.local, remote=pair.remote, delayed=True, key=unique_key())


def test_reads_go_local_until_transferred_then_remote(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        name = pair.save("docs/a.txt", ContentFile(DATA))
        assert name == "docs/a.txt"
        assert pair.status(name) == Status.QUEUED
        assert pair.using_local(name)
        assert not pair.using_remote(name)
        assert not pair.remote.exists(name)
        assert_served_by(pair, name, pair.local)
        assert read(pair, name) == DATA
        assert pair.url(name) != pair.remote.url(name)

    assert pair.status(name) == Status.REMOTE
    assert pair.using_remote(name)
    assert not pair.using_local(name)
    # Exactly the same name on the remote, and the same bytes.
    assert read(pair.remote, name) == DATA
    assert pair.remote.listdir("docs") == ([], ["a.txt"])
    assert_served_by(pair, name, pair.remote)
    # The local copy is still there; changing it shows that reads are remote.
    pair.local.delete(name)
    pair.local.save(name, ContentFile(b"changed locally"))
    assert read(pair, name) == DATA


def test_delayed_storage_waits_for_transfer(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    storage = delayed_copy(pair)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        name = storage.save("later.txt", ContentFile(DATA))
    assert storage.status(name) == Status.LOCAL
    assert not pair.remote.exists(name)
    assert_served_by(storage, name, pair.local)
    # Only the ledger's cache update waited for the commit, no transfer.
    assert storage.status(name) == Status.LOCAL
    assert len(callbacks) == 1

    with django_capture_on_commit_callbacks(execute=True):
        storage.transfer(name)
        assert storage.status(name) == Status.QUEUED
    assert storage.status(name) == Status.REMOTE
    assert read(pair.remote, name) == DATA


def test_failed_transfer_keeps_serving_local_and_can_be_restarted(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    # A file of someone else's is on the remote under the name: never overwritten.
    pair.remote.save("clash.txt", ContentFile(b"not ours"))
    with django_capture_on_commit_callbacks(execute=True):
        name = pair.save("clash.txt", ContentFile(DATA))
    assert name == "clash.txt"
    assert pair.status(name) == Status.FAILED
    assert read(pair.remote, name) == b"not ours"
    assert read(pair, name) == DATA
    assert_served_by(pair, name, pair.local)
    row = StoredFile.objects.get(storage_key=pair.key, name=name)
    assert row.attempts == 1
    assert row.last_error.startswith("NameConflict:")

    # Its owner removes the other file; transfer() starts it again.
    pair.remote.delete(name)
    with django_capture_on_commit_callbacks(execute=True):
        pair.transfer(name)
    assert pair.status(name) == Status.REMOTE
    assert read(pair.remote, name) == DATA


def test_transfer_of_a_remote_file_is_harmless(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    remote = pair.remote
    with django_capture_on_commit_callbacks(execute=True):
        name = pair.save("once.txt", ContentFile(DATA))
    before = remote.listdir("")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        pair.transfer(name)
    assert callbacks == []
    assert remote.listdir("") == before
    assert pair.status(name) == Status.REMOTE
    assert read(remote, name) == DATA


def test_transfer_of_an_unknown_name_is_an_error(pair: QueuedStorage) -> None:
    with pytest.raises(FileNotFoundError, match="was not saved through"):
        pair.transfer("never-saved.txt")


def test_delete_removes_both_copies_and_the_ledger_row(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        name = pair.save("gone.txt", ContentFile(DATA))
    assert pair.local.exists(name)
    assert pair.remote.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        pair.delete(name)
    assert not pair.local.exists(name)
    assert not pair.remote.exists(name)
    assert not pair.exists(name)
    assert pair.status(name) is None
    assert not StoredFile.objects.filter(storage_key=pair.key, name=name).exists()


def test_delete_before_the_transfer_runs_is_not_resurrected(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        name = pair.save("short-lived.txt", ContentFile(DATA))
        pair.delete(name)
    assert callbacks  # the transfer was queued, and ran at commit
    assert not pair.remote.exists(name)
    assert not pair.local.exists(name)
    assert pair.status(name) is None


def test_listdir_is_the_union_of_both_storages(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        one = pair.save("d/one.txt", ContentFile(DATA))
    pair.local.delete(one)  # now only on the remote
    pair.save("d/two.txt", ContentFile(DATA))  # only local: never committed
    pair.save("d/sub/three.txt", ContentFile(DATA))
    assert pair.listdir("d") == (["sub"], ["one.txt", "two.txt"])
    assert pair.listdir("d/sub") == ([], ["three.txt"])


def test_unknown_names_are_served_by_local(pair: QueuedStorage) -> None:
    pair.local.save("direct.txt", ContentFile(b"put there by hand"))
    assert pair.status("direct.txt") is None
    assert pair.using_local("direct.txt")
    assert_served_by(pair, "direct.txt", pair.local)
    assert read(pair, "direct.txt") == b"put there by hand"
    assert not pair.exists("nowhere.txt")

    # Written through open(name, "w"): to local, and (round 2) recorded and
    # queued when closed, like a save, so it is not left behind.
    with pair.open("written.txt", "wb") as fh:
        fh.write(b"through open")
    assert read(pair.local, "written.txt") == b"through open"
    assert not pair.remote.exists("written.txt")  # queued at commit (never, in this test)
    assert pair.status("written.txt") == Status.QUEUED


def test_urls_of_many_files_are_their_url(
    pair: QueuedStorage, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        remote = pair.save("u/remote.txt", ContentFile(DATA))
    local = pair.save("u/local.txt", ContentFile(DATA))  # never committed: local
    names = [remote, local, "u/unknown.txt"]
    assert pair.urls(names) == {name: pair.url(name) for name in names}
    assert pair.urls([remote])[remote] == pair.remote.url(remote)
    assert pair.urls([local])[local] == pair.local.url(local)


def test_storage_exposes_resolved_local_and_remote(pair: QueuedStorage) -> None:
    assert pair.local is pair.local
    assert pair.remote is pair.remote
    assert pair.local is not pair.remote
