"""delete(): transactional, safe halfway, and never a remote file this
library did not write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import transaction

from storage_hooks import Status
from storage_hooks.hooks import DeleteLocal
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import make_s3, unique_key
from .testapp.storages import fs_pair

pytestmark = pytest.mark.django_db(transaction=True)


def row(storage: QueuedStorage, name: str) -> StoredFile | None:
    return StoredFile.objects.filter(storage_key=storage.key, name=name).first()


def test_a_rolled_back_delete_leaves_the_file_fully_readable(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    name = fs_storage.save("keep.txt", ContentFile(b"keep me"))
    assert fs_storage.status(name) == Status.REMOTE

    class Rollback(Exception):
        pass

    seen: list[object] = []

    def delete_then_fail() -> None:
        with transaction.atomic():
            fs_storage.delete(name)
            seen.extend([fs_storage.exists(name), fs_storage.status(name)])
            raise Rollback

    with pytest.raises(Rollback):
        delete_then_fail()
    assert seen == [False, None]  # the transaction saw it gone
    assert fs_storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"keep me"
    with fs_storage.open(name) as fh:
        assert fh.read() == b"keep me"


def test_a_committed_delete_removes_files_then_the_row(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    name = fs_storage.save("gone.txt", ContentFile(b"bye"))
    with transaction.atomic():
        fs_storage.delete(name)
        # Nothing is removed before the commit.
        assert (remote_dir / name).exists()
        assert (local_dir / name).exists()
        assert row(fs_storage, name).status == Status.DELETING  # type: ignore[union-attr]
    assert not (remote_dir / name).exists()
    assert not (local_dir / name).exists()
    assert row(fs_storage, name) is None


class FailingDeletes(FileSystemStorage):
    """A storage whose delete() fails, as a permission problem or an outage
    would make it."""

    fail = True

    def delete(self, name: str) -> None:
        if self.fail:
            raise PermissionError(f"cannot delete {name}")
        super().delete(name)


def test_a_remote_delete_that_fails_leaves_a_repairable_state(
    local_dir: Path, remote_dir: Path
) -> None:
    remote = FailingDeletes(location=remote_dir)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    name = storage.save("stuck.txt", ContentFile(b"data"))
    with pytest.raises(PermissionError):
        storage.delete(name)
    # Never a REMOTE row without its remote object: the row says DELETING,
    # the local copy is still there, and the file reads as deleted.
    stuck = row(storage, name)
    assert stuck is not None
    assert stuck.status == Status.DELETING
    assert (local_dir / name).exists()
    assert (remote_dir / name).exists()
    assert not storage.exists(name)
    remote.fail = False
    storage.delete(name)  # already being deleted: nothing to do ...
    storage.remove_files(StoredFile.objects.get(pk=stuck.pk))  # ... the repair finishes it
    assert row(storage, name) is None
    assert not (remote_dir / name).exists()
    assert not (local_dir / name).exists()


def test_a_local_delete_that_fails_after_the_remote_one_leaves_no_remote_row(
    local_dir: Path, remote_dir: Path
) -> None:
    local = FailingDeletes(location=local_dir)
    local.fail = False
    storage = QueuedStorage(
        local=local, remote=FileSystemStorage(location=remote_dir), key=unique_key()
    )
    name = storage.save("half.txt", ContentFile(b"data"))
    local.fail = True
    with pytest.raises(PermissionError):
        storage.delete(name)
    assert not (remote_dir / name).exists()
    assert row(storage, name).status == Status.DELETING  # type: ignore[union-attr]


@pytest.mark.parametrize("delayed", [True, False])
def test_a_file_never_transferred_is_deleted_locally_only(
    local_dir: Path, remote_dir: Path, settings: Any, delayed: bool
) -> None:
    """A foreign remote file of the same name is never touched."""
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=delayed)
    (remote_dir / "theirs.txt").write_bytes(b"not ours")
    name = storage.save("theirs.txt", ContentFile(b"ours"))
    # delayed: LOCAL; otherwise the transfer met the foreign file: FAILED.
    assert storage.status(name) == (Status.LOCAL if delayed else Status.FAILED)
    storage.delete(name)
    assert (remote_dir / "theirs.txt").read_bytes() == b"not ours"
    assert not (local_dir / name).exists()
    assert row(storage, name) is None


def test_a_name_the_ledger_does_not_know_is_deleted_locally_only(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    (local_dir / "stray.txt").write_bytes(b"stray")
    (remote_dir / "stray.txt").write_bytes(b"foreign")
    fs_storage.delete("stray.txt")
    assert not (local_dir / "stray.txt").exists()
    assert (remote_dir / "stray.txt").read_bytes() == b"foreign"
    assert row(fs_storage, "stray.txt") is None


@pytest.mark.parametrize("name", [None, ""])
def test_delete_without_a_name_is_a_value_error_as_in_django(
    fs_storage: QueuedStorage, name: Any
) -> None:
    with pytest.raises(ValueError, match="The name must be given to delete"):
        fs_storage.delete(name)


def test_delete_removes_the_s3_object_this_library_wrote(
    local_dir: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    remote = make_s3(s3_endpoint, s3_bucket)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    name = storage.save("s3.txt", ContentFile(b"on s3"))
    assert row(storage, name).remote_etag  # type: ignore[union-attr]
    storage.delete(name)
    assert not remote.exists(name)
    assert not (local_dir / name).exists()
    assert row(storage, name) is None


def test_an_unfinished_delete_keeps_its_name_from_an_overwriting_save(
    local_dir: Path, remote_dir: Path
) -> None:
    """Until the repair finishes the delete (and removes the files of that
    name), a new file never takes the name, even where the local storage
    overwrites (``allow_overwrite``)."""
    remote = FailingDeletes(location=remote_dir)
    remote.fail = False
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir, allow_overwrite=True),
        remote=remote,
        hooks=[DeleteLocal()],
        key=unique_key(),
    )
    name = storage.save("doc.txt", ContentFile(b"old"))
    assert not (local_dir / name).exists()  # only on the remote now
    remote.fail = True
    with pytest.raises(PermissionError):
        storage.delete(name)
    stuck = row(storage, name)
    assert stuck is not None
    assert stuck.status == Status.DELETING
    remote.fail = False
    newer = storage.save("doc.txt", ContentFile(b"new"))
    assert newer != name
    storage.remove_files(stuck)  # the repair of the delete
    assert row(storage, name) is None
    assert not (remote_dir / name).exists()
    assert (remote_dir / newer).read_bytes() == b"new"
    assert storage.status(newer) == Status.REMOTE


def test_remove_local_copy_removes_only_a_copy_proven_on_the_remote(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=True)
    name = storage.save("copy.txt", ContentFile(b"copy"))
    assert not storage.remove_local_copy(name)  # not on the remote yet
    assert not storage.remove_local_copy("unknown.txt")
    storage.transfer(name)
    checksum = row(storage, name).checksum  # type: ignore[union-attr]
    assert not storage.remove_local_copy(name, checksum="0" * 64)  # other content
    assert (local_dir / name).read_bytes() == b"copy"
    assert storage.remove_local_copy(name, checksum=checksum)
    assert not (local_dir / name).exists()
    assert (remote_dir / name).read_bytes() == b"copy"
