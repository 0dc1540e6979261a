"""DeleteLocal: the local copy goes only after the remote copy is verified."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile

from storage_hooks import Status, signals
from storage_hooks.hooks import DeleteLocal

from .conftest import unique_key
from .testapp.storages import fs_pair, names_of, recording

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_local_copy_is_deleted_after_the_verified_transfer(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    with recording(storage, signals.transferred, signals.local_deleted) as events:
        name = storage.save("docs/a.txt", ContentFile(b"payload"))
    assert names_of(events) == ["transferred", "local_deleted"]
    assert events[1][1] == {"name": name}
    assert not (local_dir / name).exists()
    assert storage.status(name) == Status.REMOTE
    with storage.open(name) as fh:
        assert fh.read() == b"payload"
    assert storage.url(name) == f"/remote/{name}"


def test_nothing_is_deleted_when_verification_fails(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1}
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()], delayed=True)
    name = storage.save("a.txt", ContentFile(b"original"))
    (local_dir / name).write_bytes(b"tampered")  # the same size, other bytes
    with recording(storage, signals.local_deleted, signals.transfer_failed) as events:
        storage.transfer(name)
    assert names_of(events) == ["transfer_failed", "transfer_failed"]
    assert "changed since it was saved" in str(events[-1][1]["exception"])
    assert storage.status(name) == Status.FAILED
    assert (local_dir / name).read_bytes() == b"tampered"


def test_nothing_is_deleted_on_a_name_conflict(local_dir: Path, remote_dir: Path) -> None:
    (remote_dir / "a.txt").write_bytes(b"someone else's")
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    with recording(storage, signals.local_deleted) as events:
        name = storage.save("a.txt", ContentFile(b"ours"))
    assert events == []
    assert storage.status(name) == Status.FAILED
    assert (local_dir / name).read_bytes() == b"ours"


def test_a_deleted_local_copy_does_not_stop_delete(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[DeleteLocal()])
    name = storage.save("a.txt", ContentFile(b"x"))
    storage.delete(name)
    assert not (remote_dir / name).exists()
    assert storage.status(name) is None


def test_only_the_local_copy_whose_bytes_were_proven_is_deleted(
    local_dir: Path, remote_dir: Path
) -> None:
    """A ``transferred`` that arrives late, for bytes the file no longer has
    (it was replaced and transferred again meanwhile), deletes nothing."""
    storage = fs_pair(local_dir, remote_dir, unique_key(), delayed=True)
    name = storage.save("a.txt", ContentFile(b"current"))
    storage.transfer(name)
    assert storage.status(name) == Status.REMOTE
    hook = DeleteLocal()  # connected weakly: kept alive by this name
    hook.connect(storage)
    with recording(storage, signals.local_deleted) as events:
        signals.send(
            signals.transferred, storage, name=name, checksum=hashlib.sha256(b"older").hexdigest()
        )
        assert events == []
        assert (local_dir / name).read_bytes() == b"current"
        signals.send(
            signals.transferred, storage, name=name, checksum=hashlib.sha256(b"current").hexdigest()
        )
    assert names_of(events) == ["local_deleted"]
    assert not (local_dir / name).exists()


def test_the_hook_of_one_storage_leaves_the_files_of_another_alone(tmp_path: Path) -> None:
    dirs = {label: tmp_path / label for label in ("l1", "r1", "l2", "r2")}
    for path in dirs.values():
        path.mkdir()
    hooked = fs_pair(dirs["l1"], dirs["r1"], unique_key(), hooks=[DeleteLocal()])
    plain = fs_pair(dirs["l2"], dirs["r2"], unique_key())
    name = plain.save("a.txt", ContentFile(b"kept"))
    assert plain.status(name) == Status.REMOTE
    assert (dirs["l2"] / name).read_bytes() == b"kept"  # no DeleteLocal of its own
    hooked_name = hooked.save("a.txt", ContentFile(b"moved"))
    assert not (dirs["l1"] / hooked_name).exists()
