"""One transfer attempt (storage_hooks.transfer) as its runner sees it: the
outcome it returns, what a preprocessor may return, and what is left after
a file is deleted while its copy is being written."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, ledger, signals
from storage_hooks.hooks import Preprocess
from storage_hooks.models import StoredFile
from storage_hooks.runners import Runner
from storage_hooks.storage import QueuedStorage
from storage_hooks.transfer import run_transfer

from ..conftest import make_s3, unique_key
from ..services import s3_options
from ..testapp.storages import fs_pair, recording

pytestmark = pytest.mark.django_db(transaction=True)


class Held(Runner):
    """A queue whose worker has not started: the test runs the attempts."""

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        return None


@pytest.fixture
def held(settings: Any) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.Held", "RETRIES": 1}


def row_of(storage: QueuedStorage, name: str) -> StoredFile | None:
    return StoredFile.objects.filter(storage_key=storage.key, name=name).first()


# -- the outcome a worker logs ------------------------------------------------


@pytest.mark.usefixtures("held")
def test_the_outcome_tells_a_retry_from_a_final_failure(local_dir: Path, remote_dir: Path) -> None:
    (remote_dir / "sub").write_bytes(b"a file where a directory must go")
    storage = fs_pair(local_dir, remote_dir, unique_key())
    name = storage.save("sub/a.txt", ContentFile(b"payload"))
    first = run_transfer(storage.key, name)
    assert (first.kind, first.retry, first.attempt) == ("retry", True, 1)
    assert storage.status(name) == Status.QUEUED
    last = run_transfer(storage.key, name)
    assert (last.kind, last.retry, last.attempt) == ("failed", False, 2)
    assert storage.status(name) == Status.FAILED


# -- what a preprocessor may return --------------------------------------------


class Replaces(Preprocess):
    """Returns new content of the type it is given."""

    def __init__(self, make: Any) -> None:
        self.make = make

    def process(self, storage: Any, name: str, file: File) -> Any:
        return self.make(file.read().upper())


@pytest.mark.parametrize("make", [bytes, bytearray, io.BytesIO], ids=["bytes", "ba", "file"])
def test_a_preprocessor_may_return_bytes_or_any_readable_object(
    local_dir: Path, remote_dir: Path, settings: Any, make: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[Replaces(make)])
    name = storage.save("a.txt", ContentFile(b"shout"))
    assert storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"SHOUT"
    assert (local_dir / name).read_bytes() == b"SHOUT"
    row = row_of(storage, name)
    assert row is not None
    assert (row.size, row.checksum) == (5, hashlib.sha256(b"SHOUT").hexdigest())


@pytest.mark.parametrize("result", [42, "text"])
def test_a_preprocessor_returning_something_unreadable_fails_the_attempt(
    local_dir: Path, remote_dir: Path, settings: Any, result: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[Replaces(lambda data: result)])
    name = storage.save("a.txt", ContentFile(b"kept"))
    row = row_of(storage, name)
    assert row is not None
    assert row.status == Status.FAILED
    assert row.last_error.startswith("TypeError: A preprocessor returned")
    assert (local_dir / name).read_bytes() == b"kept"
    assert not (remote_dir / name).exists()


# -- a file deleted while its copy is written -----------------------------------


class DeletesDuringWrite(FileSystemStorage):
    """Another process deletes the file right after the copy is written; as
    ``delete`` names the ledger function that records it."""

    def __init__(self, *args: Any, delete: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delete_meanwhile = delete
        self.key = ""

    def _save(self, name: str, content: Any) -> str:
        saved = super()._save(name, content)
        self.delete_meanwhile(self.key, name)
        return saved


@pytest.mark.usefixtures("held")
@pytest.mark.parametrize(
    ("delete", "left"),
    [
        # the row is gone (the delete finished): nothing of the file is left
        (ledger.delete, None),
        # the delete is pending (its process died after marking the row):
        # the attempt removes its own copy, and `retry` finishes the delete
        (ledger.begin_delete, Status.DELETING),
    ],
    ids=["deleted", "deleting"],
)
def test_an_attempt_whose_file_is_deleted_meanwhile_removes_its_copy(
    local_dir: Path, remote_dir: Path, delete: Any, left: Status | None
) -> None:
    remote = DeletesDuringWrite(location=remote_dir, delete=delete)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    remote.key = storage.key
    name = storage.save("raced.txt", ContentFile(b"raced"))
    outcome = run_transfer(storage.key, name)
    assert outcome.kind == "skipped"
    assert not (remote_dir / name).exists()
    row = row_of(storage, name)
    assert (row.status if row else None) == left


# -- what the ledger says about a failure -----------------------------------------


def test_a_missing_bucket_on_aws_is_named_with_its_fix(local_dir: Path, settings: Any) -> None:
    """No endpoint configured means Amazon's; this machine has no way to
    reach it, so its answer (404 NoSuchBucket) is made up at the transport."""
    from storages.backends.s3 import S3Storage

    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    options = {**s3_options("", "no-such-bucket-on-aws"), "endpoint_url": None}
    remote = S3Storage(**options)
    body = b"<Error><Code>NoSuchBucket</Code><Message>The bucket does not exist</Message></Error>"

    def no_such_bucket(request: Any, **kwargs: Any) -> AWSResponse:
        class Raw:
            def stream(self, **kwargs: Any) -> Any:
                yield body

        return AWSResponse(request.url, 404, {}, Raw())

    remote.bucket.meta.client.meta.events.register(
        "before-send.s3", no_such_bucket, unique_id="test-aws"
    )
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    name = storage.save("a.txt", ContentFile(b"x"))
    row = row_of(storage, name)
    assert row is not None
    assert row.status == Status.FAILED
    assert "'no-such-bucket-on-aws' does not exist at the default AWS endpoint" in row.last_error


# -- S3: the condition on the write, and a foreign file -----------------------------


def rewriting_s3(endpoint: str, bucket: str) -> Any:
    """An S3Storage that writes every file under another key than its name
    (as a subclass that adds its own prefix in ``_save`` does)."""
    from storages.backends.s3 import S3Storage

    class WritesElsewhere(S3Storage):
        def _save(self, name: str, content: Any) -> str:
            return str(super()._save(f"elsewhere/{name}", content))

    return WritesElsewhere(**s3_options(endpoint, bucket))


def test_a_write_the_condition_missed_is_logged_and_not_kept(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, settings: Any, caplog: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    remote = rewriting_s3(s3_endpoint, s3_bucket)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    with caplog.at_level("WARNING", logger="storage_hooks"):
        name = storage.save("a.txt", ContentFile(b"x"))
    assert "The conditional write of 'a.txt' was not applied" in caplog.text
    row = row_of(storage, name)
    assert row is not None
    assert (row.status, row.failure) == (Status.FAILED, "conflict")
    assert not remote.exists("elsewhere/a.txt")


def test_without_conditional_writes_nothing_is_said_about_them(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, settings: Any, caplog: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "CONDITIONAL_WRITES": False}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=make_s3(s3_endpoint, s3_bucket),
        key=unique_key(),
    )
    with caplog.at_level("WARNING", logger="storage_hooks"):
        name = storage.save("a.txt", ContentFile(b"x"))
    assert storage.status(name) == Status.REMOTE
    assert "conditional write" not in caplog.text


def test_a_foreign_remote_file_is_reported_as_kept_with_the_local_copy(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    """What the operator reads in the ledger: nothing was overwritten, and
    the local copy is still there."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    (remote_dir / "taken.txt").write_bytes(b"theirs")
    storage = fs_pair(local_dir, remote_dir, unique_key())
    name = storage.save("taken.txt", ContentFile(b"ours"))
    row = row_of(storage, name)
    assert row is not None
    error = row.last_error
    assert error.startswith("NameConflict:")
    assert "which this library did not write; it is not overwritten" in error
    assert "The local copy is kept" in error
    assert (remote_dir / "taken.txt").read_bytes() == b"theirs"


@pytest.mark.usefixtures("held")
def test_a_transfer_reports_what_it_copied(local_dir: Path, remote_dir: Path) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key())
    name = storage.save("a.txt", ContentFile(b"payload"))
    with recording(storage, signals.transferred) as events:
        outcome = run_transfer(storage.key, name)
    assert (outcome.kind, outcome.attempt) == ("done", 1)
    ((_, sent),) = events
    assert (sent["name"], sent["size"], sent["checksum"]) == (
        name,
        7,
        hashlib.sha256(b"payload").hexdigest(),
    )
    assert sent["duration"] >= 0
    assert run_transfer(storage.key, name).kind == "skipped"  # nothing left to do


class ReadsTheFileBeneath(FileSystemStorage):
    """A remote that reads the underlying file object of what it is given,
    not the File wrapper (as some third-party storages do)."""

    def _save(self, name: str, content: Any) -> str:
        return super()._save(name, ContentFile(content.file.read()))


@pytest.mark.parametrize(("tampered", "status"), [(False, Status.REMOTE), (True, Status.FAILED)])
def test_a_remote_that_bypasses_the_hashing_still_gets_the_local_copy_checked(
    local_dir: Path, remote_dir: Path, settings: Any, tampered: bool, status: Status
) -> None:
    """The SHA-256 of the bytes sent cannot be taken on the way: the local
    copy is hashed instead, so a changed local copy is still caught."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=ReadsTheFileBeneath(location=remote_dir),
        delayed=True,
        key=unique_key(),
    )
    name = storage.save("a.txt", ContentFile(b"original"))
    if tampered:
        (local_dir / name).write_bytes(b"tampered")
    storage.transfer(name)
    assert storage.status(name) == status


class ReturnsItsInput(Preprocess):
    """A preprocessor that decides to change nothing and says so by
    returning the file it was given (or the file object inside it)."""

    def __init__(self, inner: bool) -> None:
        self.inner = inner

    def process(self, storage: Any, name: str, file: File) -> Any:
        return file.file if self.inner else file


@pytest.mark.parametrize("inner", [False, True], ids=["file", "inner"])
def test_a_preprocessor_returning_its_input_leaves_the_local_copy_alone(
    local_dir: Path, remote_dir: Path, settings: Any, inner: bool
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = fs_pair(
        local_dir, remote_dir, unique_key(), hooks=[ReturnsItsInput(inner)], delayed=True
    )
    name = storage.save("a.txt", ContentFile(b"as it was"))
    before = (local_dir / name).stat().st_ino
    storage.transfer(name)
    assert storage.status(name) == Status.REMOTE
    assert (local_dir / name).stat().st_ino == before  # not rewritten
    assert (remote_dir / name).read_bytes() == b"as it was"


class ReplacedMeanwhile(Preprocess):
    """While it works, the file is deleted and a new file saved under the
    same name (another request)."""

    def process(self, storage: Any, name: str, file: File) -> Any:
        processed = file.read().upper()
        storage.delete(name)
        assert storage.save(name, ContentFile(b"the newer file")) == name
        return processed


@pytest.mark.usefixtures("held")
def test_a_preprocessed_old_version_never_replaces_the_newer_file(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = fs_pair(local_dir, remote_dir, unique_key(), hooks=[ReplacedMeanwhile()])
    name = storage.save("a.txt", ContentFile(b"the older file"))
    assert run_transfer(storage.key, name).kind == "skipped"
    assert (local_dir / name).read_bytes() == b"the newer file"
    row = row_of(storage, name)
    assert row is not None
    assert (row.status, row.checksum) == (
        Status.QUEUED,
        hashlib.sha256(b"the newer file").hexdigest(),
    )
    assert not (remote_dir / name).exists()


def test_an_empty_file_is_proven_by_its_etag_whatever_the_multipart_threshold(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, settings: Any
) -> None:
    """boto3 sends an empty file in one PutObject even when its threshold
    says every non-empty file goes multipart."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.transfer_config = TransferConfig(multipart_threshold=1)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    with recording(storage, signals.transferred) as events:
        name = storage.save("empty.txt", ContentFile(b""))
    assert storage.status(name) == Status.REMOTE
    assert [kw["proof"] for _, kw in events] == ["etag"]
