"""Behaviours that guard data and that mutation testing found unpinned
(issue 18): each test states what must hold, whatever the code looks like."""

from __future__ import annotations

import hashlib
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, ledger, proof, signals
from storage_hooks.exceptions import VerificationError
from storage_hooks.hooks import DeleteLocal
from storage_hooks.localfiles import check_inside_root, open_binary, unlink
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import make_s3, unique_key
from .testapp.storages import fs_pair, recording

pytestmark = pytest.mark.django_db(transaction=True)

DATA = b"twelve bytes" * 50


class StoresMore(FileSystemStorage):
    """A remote that keeps the bytes sent plus some of its own (and says so)."""

    def _save(self, name: str, content: Any) -> str:
        return super()._save(name, ContentFile(content.read() + b"padding"))


class StoresLess(FileSystemStorage):
    """A remote that keeps only the first half of the bytes (and says so)."""

    def _save(self, name: str, content: Any) -> str:
        data = content.read()
        return super()._save(name, ContentFile(data[: len(data) // 2]))


def row_of(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


# -- the proof: a remote copy of another size is never a transfer -----------


@pytest.mark.parametrize("how", ["auto", "readback", "size"])
@pytest.mark.parametrize("remote_class", [StoresMore, StoresLess])
def test_a_remote_copy_of_another_size_fails_the_transfer(
    local_dir: Path, remote_dir: Path, settings: Any, how: str, remote_class: type
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1, "PROOF": how}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=remote_class(location=remote_dir),
        hooks=[DeleteLocal()],
        key=unique_key(),
    )
    with recording(storage, signals.transferred, signals.transfer_failed) as events:
        name = storage.save("sized.bin", ContentFile(DATA))
    assert (remote_dir / name).stat().st_size != len(DATA)  # the remote kept another size
    assert [event for event, _ in events] == ["transfer_failed", "transfer_failed"]
    assert all(isinstance(kw["exception"], VerificationError) for _, kw in events)
    assert storage.status(name) == Status.FAILED
    assert row_of(storage, name).failure == "verification"
    assert (local_dir / name).read_bytes() == DATA  # the only good copy stays


# -- a stale worker cannot finish an attempt that is no longer its own ------


def test_a_stale_attempt_cannot_mark_a_reclaimed_file_remote(fs_storage: QueuedStorage) -> None:
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=unique_key()
    )
    name = delayed.save("a.txt", ContentFile(b"x"))
    assert ledger.requeue(delayed.key, name, reset_attempts=False)
    stale = ledger.claim(delayed.key, name)
    assert stale is not None
    # The first worker looks dead: the file is queued again and another worker claims it.
    assert ledger.requeue(delayed.key, name, reset_attempts=False)
    fresh = ledger.claim(delayed.key, name)
    assert fresh is not None
    assert fresh.attempts == stale.attempts + 1
    before = StoredFile.objects.filter(pk=stale.pk).values().get()

    assert ledger.mark_remote(stale, "stale-etag") is False
    assert ledger.mark_failed(stale, "stale", final=True) is False
    assert StoredFile.objects.filter(pk=stale.pk).values().get() == before
    assert delayed.status(name) == Status.TRANSFERRING

    assert ledger.mark_remote(fresh, "fresh-etag") is True
    assert row_of(delayed, name).remote_etag == "fresh-etag"
    assert delayed.status(name) == Status.REMOTE


# -- DeleteLocal never deletes through a directory swapped for a symlink ------


def test_delete_local_does_not_follow_a_directory_swapped_for_a_symlink(
    tmp_path: Path, local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key())
    name = storage.save("docs/a.txt", ContentFile(b"payload"))
    assert storage.status(name) == Status.REMOTE
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_bytes(b"not the storage's")
    (local_dir / "docs" / "a.txt").unlink()
    (local_dir / "docs").rmdir()
    (local_dir / "docs").symlink_to(outside, target_is_directory=True)

    checksum = row_of(storage, name).checksum
    # Refusing loudly (SuspiciousFileOperation) is as good as refusing quietly.
    with recording(storage, signals.local_deleted) as events, suppress(SuspiciousFileOperation):
        DeleteLocal().delete_local(storage, name=name, checksum=checksum)
    assert (outside / "a.txt").read_bytes() == b"not the storage's"
    assert events == []
    with pytest.raises(SuspiciousFileOperation):
        unlink(storage.local, name)
    assert (outside / "a.txt").exists()


# -- a sibling directory whose name starts with the root's is outside -------


def test_a_sibling_directory_sharing_the_roots_prefix_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "media"
    evil = tmp_path / "media-evil"
    root.mkdir()
    evil.mkdir()
    (evil / "secret.txt").write_bytes(b"secret")
    (root / "file.txt").symlink_to(evil / "secret.txt")
    (root / "dir").symlink_to(evil, target_is_directory=True)
    storage = FileSystemStorage(location=root)
    for name in ("file.txt", "dir/secret.txt"):
        with pytest.raises(SuspiciousFileOperation, match="outside the storage's root"):
            check_inside_root(storage, name)
        with pytest.raises(SuspiciousFileOperation):
            open_binary(storage, name)
    with pytest.raises(SuspiciousFileOperation):
        unlink(storage, "dir/secret.txt")
    assert (evil / "secret.txt").read_bytes() == b"secret"


# -- what the proof reports ---------------------------------------------------


def test_a_file_system_remote_is_proven_by_reading_it_back(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    storage = fs_pair(local_dir, remote_dir, unique_key())
    with recording(storage, signals.transferred) as events:
        name = storage.save("a.bin", ContentFile(DATA))
    assert events[0][1]["proof"] == "readback"
    row = row_of(storage, name)
    assert row.remote_etag == f"sha256:{row.checksum}"  # what a clean-up later checks


@pytest.mark.parametrize(("how", "message"), [("auto", "is not the file that was sent")])
def test_a_failed_proof_says_what_the_remote_holds(
    local_dir: Path, remote_dir: Path, settings: Any, how: str, message: str
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1, "PROOF": how}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=StoresLess(location=remote_dir),
        key=unique_key(),
    )
    name = storage.save("short.bin", ContentFile(DATA))
    error = row_of(storage, name).last_error
    assert message in error
    assert f"{len(DATA) // 2} bytes" in error
    assert f"expected {len(DATA)} bytes" in error


def test_the_size_proof_says_both_sizes(local_dir: Path, remote_dir: Path, settings: Any) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1, "PROOF": "size"}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=StoresMore(location=remote_dir),
        key=unique_key(),
    )
    name = storage.save("long.bin", ContentFile(DATA))
    error = row_of(storage, name).last_error
    assert f"has {len(DATA) + len(b'padding')} bytes, not {len(DATA)}" in error


# -- cleaning up a stale attempt's copy: only a copy provably its own --------


def test_a_sha256_identity_deletes_only_the_copy_it_describes(remote_dir: Path) -> None:
    remote = FileSystemStorage(location=remote_dir)
    remote.save("mine.bin", ContentFile(DATA))
    identity = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    other = f"sha256:{hashlib.sha256(b'other bytes').hexdigest()}"

    assert proof.is_ours(remote, "mine.bin", identity)
    assert not proof.is_ours(remote, "mine.bin", other)
    assert not proof.is_ours(remote, "mine.bin", "")  # no identity: never ours
    assert not proof.is_ours(remote, "missing.bin", identity)

    assert proof.delete_if_ours(remote, "mine.bin", other) is False
    assert proof.delete_if_ours(remote, "mine.bin", "") is False
    assert (remote_dir / "mine.bin").read_bytes() == DATA
    assert proof.delete_if_ours(remote, "mine.bin", identity) is True
    assert not (remote_dir / "mine.bin").exists()
    assert proof.delete_if_ours(remote, "mine.bin", identity) is False


def test_an_etag_identity_deletes_an_s3_object_only_while_it_is_unchanged(
    s3_endpoint: str, s3_bucket: str
) -> None:
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.save("mine.bin", ContentFile(DATA))
    etag = remote.connection.meta.client.head_object(Bucket=s3_bucket, Key="mine.bin")["ETag"]
    remote.delete("mine.bin")
    remote.save("mine.bin", ContentFile(b"a newer writer's bytes"))

    assert proof.delete_if_ours(remote, "mine.bin", etag) is False
    assert remote.exists("mine.bin")
    newer = remote.connection.meta.client.head_object(Bucket=s3_bucket, Key="mine.bin")["ETag"]
    assert proof.delete_if_ours(remote, "mine.bin", newer) is True
    assert not remote.exists("mine.bin")


@pytest.mark.parametrize(("value", "expected"), [("bogus", "auto"), ("size", "size")])
def test_an_unknown_proof_setting_falls_back_to_the_strongest(
    settings: Any, value: str, expected: str
) -> None:
    settings.STORAGE_HOOKS = {"PROOF": value}
    assert proof.mode() == expected


def test_an_s3_copy_proven_by_read_back_is_deleted_only_if_its_sha256_matches(
    s3_endpoint: str, s3_bucket: str
) -> None:
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.save("mine.bin", ContentFile(DATA))
    other = f"sha256:{hashlib.sha256(b'other bytes').hexdigest()}"
    assert proof.delete_if_ours(remote, "mine.bin", other) is False
    assert remote.exists("mine.bin")
    assert proof.delete_if_ours(remote, "mine.bin", f"sha256:{hashlib.sha256(DATA).hexdigest()}")
    assert not remote.exists("mine.bin")


def test_an_etag_identity_is_left_to_the_conditional_delete(remote_dir: Path) -> None:
    remote = FileSystemStorage(location=remote_dir)
    remote.save("mine.bin", ContentFile(DATA))
    assert proof.is_ours(remote, "mine.bin", '"0123456789abcdef0123456789abcdef"')
