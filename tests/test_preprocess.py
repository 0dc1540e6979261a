"""Preprocessing the original before it leaves: Preprocess hooks,
replace_local() and Rejected."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.files import File
from django.core.files.base import ContentFile

from storage_hooks import Status, signals
from storage_hooks.exceptions import Rejected
from storage_hooks.hooks import DeleteLocal, Preprocess
from storage_hooks.models import StoredFile
from storage_hooks.storage import AlreadyTransferred, QueuedStorage

from .conftest import unique_key
from .testapp.storages import fs_pair, names_of, recording

pytestmark = pytest.mark.django_db(transaction=True)


class Upper(Preprocess):
    """Upper-cases text files."""

    calls = 0

    def process(self, storage: Any, name: str, file: File) -> Any:
        type(self).calls += 1
        if not name.endswith(".txt"):
            return None
        return file.read().upper()


class Suffix(Preprocess):
    def __init__(self, suffix: bytes) -> None:
        self.suffix = suffix

    def process(self, storage: Any, name: str, file: File) -> Any:
        return ContentFile(file.read() + self.suffix)


class Scanner(Preprocess):
    """Refuses files that contain the test signature of a virus scanner."""

    def process(self, storage: Any, name: str, file: File) -> Any:
        if b"EICAR" in file.read():
            raise Rejected("infected: EICAR test signature")
        return None


class Flaky(Preprocess):
    """Fails its first call."""

    def __init__(self) -> None:
        self.failures = 1

    def process(self, storage: Any, name: str, file: File) -> Any:
        if self.failures:
            self.failures -= 1
            raise OSError("scanner unreachable")
        return file.read() + b"!"


@pytest.fixture
def immediate(settings: Any) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 2}


def row(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_preprocessor_transforms_the_original_before_it_leaves(
    local_dir: Path, remote_dir: Path, immediate: None
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[Upper()])
    with recording(storage, signals.transferred) as events:
        name = storage.save("note.txt", ContentFile(b"secret plans"))
    assert storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"SECRET PLANS"
    assert (local_dir / name).read_bytes() == b"SECRET PLANS"
    sent = events[0][1]
    assert (sent["size"], sent["checksum"]) == (12, sha(b"SECRET PLANS"))
    recorded = row(storage, name)
    assert (recorded.size, recorded.checksum, recorded.preprocessed) == (
        12,
        sha(b"SECRET PLANS"),
        True,
    )


def test_preprocessors_run_in_the_order_of_the_hooks(
    local_dir: Path, remote_dir: Path, immediate: None
) -> None:
    storage = fs_pair(
        local_dir, remote_dir, unique_key(), hooks=[Suffix(b"-1"), Upper(), Suffix(b"-2")]
    )
    name = storage.save("a.txt", ContentFile(b"x"))
    assert (remote_dir / name).read_bytes() == b"X-1-2"


def test_a_rejected_file_fails_at_once_and_never_leaves(
    local_dir: Path, remote_dir: Path, immediate: None
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[Scanner(), DeleteLocal()])
    with recording(storage) as events:
        name = storage.save("bad.bin", ContentFile(b"...EICAR..."))
    assert "transferred" not in names_of(events)
    (failed,) = [kw for n, kw in events if n == "transfer_failed"]
    assert isinstance(failed["exception"], Rejected)
    assert (failed["attempt"], failed["will_retry"]) == (1, False)
    refused = row(storage, name)
    assert (refused.status, refused.failure, refused.attempts) == (Status.FAILED, "rejected", 1)
    assert "infected: EICAR test signature" in refused.last_error
    assert os.listdir(remote_dir) == []
    assert (local_dir / name).read_bytes() == b"...EICAR..."  # kept for inspection


def test_a_receiver_may_reject_too(local_dir: Path, remote_dir: Path, immediate: None) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key())

    def policy(sender: Any, name: str, **kwargs: Any) -> None:
        raise Rejected("not allowed here")

    with signals.transfer_started.connected_to(policy, sender=storage):
        name = storage.save("x.exe", ContentFile(b"MZ"))
    assert (row(storage, name).status, row(storage, name).attempts) == (Status.FAILED, 1)
    assert os.listdir(remote_dir) == []


def test_a_failing_preprocessor_is_retried_with_the_original_intact(
    local_dir: Path, remote_dir: Path, immediate: None
) -> None:
    flaky = Flaky()
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[Suffix(b"+"), flaky])
    with recording(storage, signals.transfer_failed) as failed:
        name = storage.save("f.txt", ContentFile(b"orig"))
    assert [kw["will_retry"] for _, kw in failed] == [True]
    # The chain ran again from the untouched original: "+" once, not twice.
    assert (remote_dir / name).read_bytes() == b"orig+!"


def test_preprocessors_do_not_run_again_on_a_retry_after_they_succeeded(
    local_dir: Path, remote_dir: Path, immediate: None
) -> None:
    Upper.calls = 0
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[Upper()])
    attempts: list[int] = []

    def fail_first_copy(sender: Any, attempt: int, **kwargs: Any) -> None:
        attempts.append(attempt)
        if attempt == 1:
            raise OSError("network blip after preprocessing")

    with signals.transfer_started.connected_to(fail_first_copy, sender=storage):
        name = storage.save("once.txt", ContentFile(b"abc"))
    assert attempts == [1, 2]
    assert Upper.calls == 1
    assert (remote_dir / name).read_bytes() == b"ABC"


def test_replace_local_from_a_receiver(local_dir: Path, remote_dir: Path, immediate: None) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key())

    def redact(sender: QueuedStorage, name: str, **kwargs: Any) -> None:
        with sender.open_local(name) as fh:
            data = fh.read()
        sender.replace_local(name, data.replace(b"password", b"********"))

    with signals.transfer_started.connected_to(redact, sender=storage):
        name = storage.save("log.txt", ContentFile(b"user=a password"))
    assert (remote_dir / name).read_bytes() == b"user=a ********"
    assert row(storage, name).checksum == sha(b"user=a ********")


def test_replace_local_refuses_a_transferred_or_unknown_file(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    name = fs_storage.save("done.txt", ContentFile(b"done"))
    with pytest.raises(AlreadyTransferred):
        fs_storage.replace_local(name, b"late")
    with pytest.raises(FileNotFoundError):
        fs_storage.replace_local("never-saved.txt", b"x")
    assert (local_dir / name).read_bytes() == b"done"
    assert [p.name for p in local_dir.iterdir()] == [name]  # no temporary file left


def test_a_change_behind_the_librarys_back_is_still_caught(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = fs_pair(local_dir, remote_dir, unique_key())

    def tamper(sender: QueuedStorage, name: str, **kwargs: Any) -> None:
        (local_dir / name).write_bytes(b"tampered")  # not through replace_local()

    with signals.transfer_started.connected_to(tamper, sender=storage):
        name = storage.save("t.txt", ContentFile(b"original"))
    assert row(storage, name).failure == "verification"
    assert "changed since it was saved" in row(storage, name).last_error
