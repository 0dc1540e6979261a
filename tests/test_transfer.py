"""One transfer attempt (storage_hooks.transfer) and its retries, on real
storages. The immediate runner runs each transfer at commit, and these tests
run in autocommit: ``save`` returns once the transfer is over."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, ledger, signals
from storage_hooks.exceptions import LocalFileMissing, NameConflict, VerificationError
from storage_hooks.hooks import DeleteLocal
from storage_hooks.hooks.preprocess import Preprocess
from storage_hooks.localfiles import CHUNK_SIZE
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage
from storage_hooks.transfer import run_transfer

from .conftest import make_s3, unique_key
from .testapp.storages import (
    CountingFileSystemStorage,
    ReadLoggingFileSystemStorage,
    names_of,
    recording,
)

pytestmark = pytest.mark.django_db(transaction=True)


def row(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


def block(remote_dir: Path, directory: str) -> Path:
    """Put a file where the remote needs a directory: a real, lasting
    failure of every write below it."""
    blocker = remote_dir / directory
    blocker.write_bytes(b"a file, not a directory")
    return blocker


@pytest.fixture
def retries(settings: Any) -> int:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 2}
    return 2


def test_each_failure_is_retried_until_retries_run_out(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path, retries: int
) -> None:
    block(remote_dir, "sub")
    with recording(fs_storage, signals.transfer_started, signals.transfer_failed) as events:
        name = fs_storage.save("sub/a.txt", ContentFile(b"payload"))

    assert fs_storage.status(name) == Status.FAILED
    started = [kw["attempt"] for sig, kw in events if sig == "transfer_started"]
    failed = [(kw["attempt"], kw["will_retry"]) for sig, kw in events if sig == "transfer_failed"]
    assert started == [1, 2, 3]
    assert failed == [(1, True), (2, True), (3, False)]
    errors = [kw["exception"] for sig, kw in events if sig == "transfer_failed"]
    assert all(isinstance(exc, OSError) for exc in errors)
    failed_row = row(fs_storage, name)
    assert failed_row.attempts == retries + 1
    assert "Error" in failed_row.last_error
    # The file is kept and served locally.
    assert (local_dir / "sub/a.txt").read_bytes() == b"payload"
    with fs_storage.open(name) as fh:
        assert fh.read() == b"payload"


def test_django_queued_storage_retries_setting_counts(
    fs_storage: QueuedStorage, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    settings.QUEUED_STORAGE_RETRIES = 1
    block(remote_dir, "sub")
    name = fs_storage.save("sub/a.txt", ContentFile(b"payload"))
    assert (row(fs_storage, name).status, row(fs_storage, name).attempts) == (Status.FAILED, 2)


def test_a_transient_failure_is_retried_and_succeeds(
    fs_storage: QueuedStorage, remote_dir: Path, retries: int
) -> None:
    blocker = block(remote_dir, "sub")

    def heal(sender: Any, **kwargs: Any) -> None:
        blocker.unlink()

    with (
        signals.transfer_failed.connected_to(heal, sender=fs_storage),
        recording(fs_storage, signals.transferred) as events,
    ):
        name = fs_storage.save("sub/a.txt", ContentFile(b"payload"))
    assert fs_storage.status(name) == Status.REMOTE
    assert row(fs_storage, name).attempts == 2
    assert row(fs_storage, name).last_error == ""
    assert names_of(events) == ["transferred"]
    assert (remote_dir / "sub/a.txt").read_bytes() == b"payload"


def test_transfer_restarts_a_failed_file_with_fresh_attempts(
    fs_storage: QueuedStorage, remote_dir: Path, retries: int
) -> None:
    blocker = block(remote_dir, "sub")
    name = fs_storage.save("sub/a.txt", ContentFile(b"payload"))
    assert fs_storage.status(name) == Status.FAILED
    blocker.unlink()
    fs_storage.transfer(name)
    assert fs_storage.status(name) == Status.REMOTE
    assert row(fs_storage, name).attempts == 1


def test_a_repeated_transfer_is_harmless(fs_storage: QueuedStorage, remote_dir: Path) -> None:
    name = fs_storage.save("once.txt", ContentFile(b"once"))
    assert fs_storage.status(name) == Status.REMOTE
    with recording(fs_storage) as events:
        outcome = run_transfer(fs_storage.key, name)
        fs_storage.transfer(name)
    assert outcome.kind == "skipped"
    assert events == []
    assert os.listdir(remote_dir) == ["once.txt"]
    assert row(fs_storage, name).attempts == 1


@pytest.mark.parametrize(("how", "left"), [("auto", False), ("readback", False), ("size", True)])
def test_a_file_deleted_during_its_transfer_is_not_left_on_the_remote(
    local_dir: Path, remote_dir: Path, settings: Any, how: str, left: bool
) -> None:
    """Unless the copy was proven by its size alone: a size identifies no
    copy, so the clean-up leaves it rather than guess whose it is."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "PROOF": how}

    class DeletedMeanwhile(FileSystemStorage):
        """Another process deletes the file right after the copy (a race
        a single process cannot cause on its own)."""

        def _save(self, name: str, content: Any) -> str:
            saved = super()._save(name, content)
            ledger.delete(storage.key, name)  # what storage.delete() records
            return saved

    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=DeletedMeanwhile(location=remote_dir),
        key=unique_key(),
    )
    with recording(storage, signals.transferred) as events:
        name = storage.save("raced.txt", ContentFile(b"raced"))
    assert events == []
    assert storage.status(name) is None
    assert (remote_dir / "raced.txt").exists() is left


def test_a_file_deleted_when_its_transfer_starts_is_not_copied(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    def delete_it(sender: QueuedStorage, *, name: str, **kwargs: Any) -> None:
        sender.delete(name)

    with (
        signals.transfer_started.connected_to(delete_it, sender=fs_storage),
        recording(fs_storage, signals.transferred, signals.transfer_failed) as events,
    ):
        name = fs_storage.save("brief.txt", ContentFile(b"brief"))
    assert events == []
    assert fs_storage.status(name) is None
    assert os.listdir(remote_dir) == []


def test_the_row_is_read_again_only_when_something_ran_since_the_claim(
    fs_storage: QueuedStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver of ``transfer_started`` (for this storage or any) may have
    replaced the local copy: the row is read again. With no receiver and
    no preprocessor the row is as claimed, and the query is spared."""
    reads: list[str] = []
    real = ledger.refresh

    def refresh(row: StoredFile) -> bool:
        reads.append(row.name)
        return real(row)

    monkeypatch.setattr(ledger, "refresh", refresh)
    fs_storage.save("alone.txt", ContentFile(b"a"))
    with signals.transfer_started.connected_to(lambda sender, **kw: None, sender=fs_storage):
        fs_storage.save("theirs.txt", ContentFile(b"t"))
    with signals.transfer_started.connected_to(lambda sender, **kw: None):
        fs_storage.save("any.txt", ContentFile(b"a"))
    assert reads == ["theirs.txt", "any.txt"]
    assert fs_storage.statuses(["alone.txt", "theirs.txt", "any.txt"]) == dict.fromkeys(
        ["alone.txt", "theirs.txt", "any.txt"], Status.REMOTE
    )


class Names(Preprocess):
    """Keeps the name and the file's name it is given; changes nothing."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def process(self, storage: Any, name: str, file: File) -> Any:
        self.seen.append((name, file.name))
        return None


def test_the_first_preprocessor_gets_the_local_copy_under_the_files_name(
    local_dir: Path, remote_dir: Path
) -> None:
    """Not under its local path: a preprocessor may go by the extension."""
    names = Names()
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key(),
        hooks=[names],
    )
    name = storage.save("dir/a.txt", ContentFile(b"x"))
    assert names.seen == [(name, name)]
    assert storage.status(name) == Status.REMOTE


def test_a_vanished_local_copy_fails_once_for_good(
    local_dir: Path, remote_dir: Path, retries: int
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        key=unique_key(),
    )
    name = storage.save("vanish.txt", ContentFile(b"here, then not"))
    (local_dir / name).unlink()
    with recording(storage, signals.transfer_failed) as events:
        storage.transfer(name)
    assert [(kw["attempt"], kw["will_retry"]) for _, kw in events] == [(1, False)]
    assert isinstance(events[0][1]["exception"], LocalFileMissing)
    failed = row(storage, name)
    assert failed.status == Status.FAILED
    assert failed.attempts == 1
    assert failed.last_error.startswith("LocalFileMissing: The local copy of 'vanish.txt' is gone")


def test_a_raising_transfer_started_receiver_fails_only_that_attempt(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    def preprocess(sender: Any, *, attempt: int, **kwargs: Any) -> None:
        if attempt == 1:
            raise RuntimeError("the preprocessor broke")

    with (
        signals.transfer_started.connected_to(preprocess, sender=fs_storage),
        recording(fs_storage, signals.transfer_failed, signals.transferred) as events,
    ):
        name = fs_storage.save("pre.txt", ContentFile(b"pre"))
    assert names_of(events) == ["transfer_failed", "transferred"]
    failure = events[0][1]
    assert str(failure["exception"]) == "the preprocessor broke"
    assert (failure["attempt"], failure["will_retry"]) == (1, True)
    assert fs_storage.status(name) == Status.REMOTE
    assert (remote_dir / "pre.txt").read_bytes() == b"pre"


def test_a_receiver_that_always_raises_leaves_the_file_local(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path, retries: int
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("always")

    with signals.transfer_started.connected_to(broken, sender=fs_storage):
        name = fs_storage.save("kept.txt", ContentFile(b"kept"))
    assert fs_storage.status(name) == Status.FAILED
    assert row(fs_storage, name).attempts == retries + 1
    assert (local_dir / "kept.txt").read_bytes() == b"kept"
    assert os.listdir(remote_dir) == []


@pytest.mark.parametrize("remote_kind", ["fs", "s3"])
def test_the_copy_streams_in_bounded_chunks(
    request: pytest.FixtureRequest, local_dir: Path, remote_dir: Path, remote_kind: str
) -> None:
    if remote_kind == "s3":
        remote: Any = make_s3(
            request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")
        )
    else:
        remote = ReadLoggingFileSystemStorage(location=remote_dir)
    local = ReadLoggingFileSystemStorage(location=local_dir)
    storage = QueuedStorage(local=local, remote=remote, delayed=True, key=unique_key())
    data = os.urandom(3 * CHUNK_SIZE + 1)
    name = storage.save("big.bin", ContentFile(data))

    local.reads.clear()
    storage.transfer(name)
    assert storage.status(name) == Status.REMOTE
    # The local copy as it is sent, and a file-system remote's copy as it
    # is read back for the proof.
    logs = [local.reads] if remote_kind == "s3" else [local.reads, remote.reads]
    for reads in logs:
        asked = [size for size, _ in reads]
        got = [length for _, length in reads]
        assert sum(got) >= len(data)
        # Never "read everything": every read asks for a bounded amount.
        assert all(0 <= size <= CHUNK_SIZE for size in asked), sorted(set(asked))
    with remote.open(name, "rb") as fh:
        assert fh.read() == data


# -- the remote's names ------------------------------------------------------


def s3_remote(request: pytest.FixtureRequest) -> Any:
    return make_s3(request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket"))


def test_a_foreign_s3_object_is_never_overwritten(
    request: pytest.FixtureRequest, local_dir: Path
) -> None:
    remote = s3_remote(request)
    assert remote.file_overwrite is True  # S3 would overwrite silently
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    remote.save("taken.txt", ContentFile(b"theirs!"))  # same size as ours
    with recording(storage, signals.transfer_failed) as events:
        name = storage.save("taken.txt", ContentFile(b"ours!!!"))
    assert name == "taken.txt"
    assert [(kw["attempt"], kw["will_retry"]) for _, kw in events] == [(1, False)]
    assert isinstance(events[0][1]["exception"], NameConflict)
    assert storage.status(name) == Status.FAILED
    assert row(storage, name).attempts == 1
    with remote.open(name, "rb") as fh:
        assert fh.read() == b"theirs!"
    with storage.open(name, "rb") as fh:
        assert fh.read() == b"ours!!!"


def test_an_identical_remote_copy_is_adopted_without_rewriting(
    local_dir: Path, remote_dir: Path
) -> None:
    remote = CountingFileSystemStorage(location=remote_dir)
    remote.save("same.txt", ContentFile(b"same bytes"))
    remote.calls.clear()
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    name = storage.save("same.txt", ContentFile(b"same bytes"))
    assert storage.status(name) == Status.REMOTE
    assert remote.calls["_save"] == 0
    assert remote.calls["delete"] == 0


def test_a_later_attempt_replaces_its_own_unfinished_copy(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    # Attempt 1 copies a local file that changed since it was saved: the
    # copy is written, then fails verification. Attempt 2 must replace it.
    delayed = QueuedStorage(
        local=fs_storage.local, remote=fs_storage.remote, delayed=True, key=unique_key()
    )
    name = delayed.save("edit.txt", ContentFile(b"original"))
    (local_dir / name).write_bytes(b"tampered")

    def restore(sender: Any, **kwargs: Any) -> None:
        (local_dir / name).write_bytes(b"original")

    with (
        signals.transfer_failed.connected_to(restore, sender=delayed),
        recording(delayed, signals.transfer_failed) as events,
    ):
        delayed.transfer(name)
    assert isinstance(events[0][1]["exception"], VerificationError)
    assert delayed.status(name) == Status.REMOTE
    assert row(delayed, name).attempts == 2
    assert (remote_dir / name).read_bytes() == b"original"


def test_a_restarted_transfer_replaces_its_own_unfinished_copy(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        delayed=True,
        key=unique_key(),
    )
    name = storage.save("edit.txt", ContentFile(b"original"))
    (local_dir / name).write_bytes(b"tampered")
    storage.transfer(name)
    assert storage.status(name) == Status.FAILED
    assert (remote_dir / name).read_bytes() == b"tampered"  # our unfinished copy

    (local_dir / name).write_bytes(b"original")
    storage.transfer(name)  # attempts start again at 1
    assert storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"original"


def test_a_foreign_file_that_appears_between_attempts_is_not_overwritten(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    # Attempt 1 fails before writing anything; meanwhile another writer
    # puts a file under the name. Attempt 2 must not take it for its own.
    def fail_first(sender: Any, *, attempt: int, **kwargs: Any) -> None:
        if attempt == 1:
            (remote_dir / "late.txt").write_bytes(b"another writer's")
            raise RuntimeError("network down")

    with (
        signals.transfer_started.connected_to(fail_first, sender=fs_storage),
        recording(fs_storage, signals.transfer_failed) as events,
    ):
        name = fs_storage.save("late.txt", ContentFile(b"ours"))
    assert [type(kw["exception"]) for _, kw in events] == [RuntimeError, NameConflict]
    assert fs_storage.status(name) == Status.FAILED
    assert (remote_dir / "late.txt").read_bytes() == b"another writer's"


def test_a_file_system_remote_never_stores_under_another_name(
    local_dir: Path, remote_dir: Path, retries: int
) -> None:
    class StaleExists(FileSystemStorage):
        """A remote whose first exists() answer is stale (as if another
        writer took the name right after it), so the transfer meets the
        taken name only when it writes."""

        stale = True

        def exists(self, name: str) -> bool:
            if self.stale:
                self.stale = False
                return False
            return super().exists(name)

    (remote_dir / "taken.txt").write_bytes(b"theirs")
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=StaleExists(location=remote_dir),
        key=unique_key(),
    )
    with recording(storage, signals.transfer_failed) as events:
        name = storage.save("taken.txt", ContentFile(b"ours"))
    # A conflict, not a retry: a second attempt would take the other
    # writer's file for an unfinished copy of its own.
    assert [(kw["attempt"], kw["will_retry"]) for _, kw in events] == [(1, False)]
    assert isinstance(events[0][1]["exception"], NameConflict)
    assert storage.status(name) == Status.FAILED
    assert "stored 'taken.txt' as" in row(storage, name).last_error
    # FileSystemStorage picked another name; that copy was removed.
    assert os.listdir(remote_dir) == ["taken.txt"]
    assert (remote_dir / "taken.txt").read_bytes() == b"theirs"


def test_a_hook_the_worker_cannot_build_leaves_the_file_queued(
    local_dir: Path, remote_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = unique_key()
    # The worker's storage (built first, so found first by key) has a hook
    # that does not import; the web process's storage has none.
    worker = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        hooks=["tests.nowhere.Hook"],
        key=key,
    )
    web = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        key=key,
    )
    name = web.save("a.txt", ContentFile(b"a"))
    assert "Could not queue the transfer of 'a.txt'" in caplog.text
    # Not claimed, so not stuck TRANSFERRING: `retry` or transfer() can take it.
    assert (row(web, name).status, row(web, name).attempts) == (Status.QUEUED, 0)
    with pytest.raises(Exception, match=r"tests\.nowhere\.Hook"):
        run_transfer(key, name)
    assert worker.key == web.key


@pytest.mark.parametrize("remote_kind", ["fs", "s3"])
def test_a_late_attempt_never_deletes_the_newer_file_of_its_name(
    request: pytest.FixtureRequest,
    local_dir: Path,
    remote_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    remote_kind: str,
) -> None:
    """Between an attempt's proven write and its record, the file is deleted
    and a new file of the same name and size is saved and transferred (its
    local copy then deleted by DeleteLocal). The old attempt cannot record
    its copy; its clean-up must not take the new file's remote copy."""
    if remote_kind == "s3":
        remote: Any = make_s3(
            request.getfixturevalue("s3_endpoint"), request.getfixturevalue("s3_bucket")
        )
    else:
        remote = FileSystemStorage(location=remote_dir)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=remote,
        hooks=[DeleteLocal()],
        key=unique_key(),
    )
    real_mark_remote = ledger.mark_remote
    outcomes: list[str] = []

    def meanwhile(row: Any, identity: str = "") -> bool:
        if not outcomes:
            outcomes.append("raced")
            storage.delete(row.name)
            assert storage.save(row.name, ContentFile(b"NEWER")) == row.name
        return real_mark_remote(row, identity)

    monkeypatch.setattr(ledger, "mark_remote", meanwhile)
    with recording(storage, signals.transferred) as events:
        name = storage.save("same.txt", ContentFile(b"older"))
    assert [kw["checksum"] for _, kw in events] == [hashlib.sha256(b"NEWER").hexdigest()]
    assert storage.status(name) == Status.REMOTE
    with storage.open(name) as fh:
        assert fh.read() == b"NEWER"
    assert not (local_dir / name).exists()  # DeleteLocal did its job: the remote copy is all


def test_big_reads_are_hashed_behind_and_caught_up_before_the_digest(tmp_path: Path) -> None:
    """Reads of a megabyte and more are hashed by a thread behind the
    reader; small reads after them queue behind them (order kept); the
    digest waits for it, and closing an upload that broke off midway ends
    the thread."""
    import io

    from storage_hooks import transfer

    data = os.urandom(3 * 2**20 + 5)
    sent = transfer._Sent(io.BytesIO(data), "big.bin", None)
    got = sent.read(2**20) + sent.read(2**20) + sent.read(10) + sent.read()
    assert got == data
    assert sent._hasher is not None
    assert sent._hasher.is_alive()  # hashing behind the reads
    assert sent.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sent.bytes_read == len(data)
    assert sent.hexdigest() == hashlib.sha256(data).hexdigest()  # asked again
    sent.close()  # after the digest: nothing left to wait for

    broken = transfer._Sent(io.BytesIO(data), "broken.bin", None)
    broken.read(2**20)
    hasher = broken._hasher
    assert hasher is not None
    broken.close()  # the upload failed: no digest asked for
    assert not hasher.is_alive()
