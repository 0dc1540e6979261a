"""A transfer counts only once the remote copy is proven equal to the
ledger's SHA-256 (storage_hooks.proof), whatever the remote claims."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, s3, signals
from storage_hooks.exceptions import VerificationError
from storage_hooks.hooks import DeleteLocal
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import make_s3, unique_key
from .testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)

DATA = b"the only good copy" * 100


class FlipsAByte(FileSystemStorage):
    """A remote that stores the same number of bytes, one of them wrong."""

    def _save(self, name: str, content: Any) -> str:
        data = bytearray(content.read())
        data[len(data) // 2] ^= 0xFF
        return super()._save(name, ContentFile(bytes(data)))


class TruncatesAndLies(FileSystemStorage):
    """A remote that keeps half the bytes and reports the full size."""

    def _save(self, name: str, content: Any) -> str:
        data = content.read()
        self.claimed = len(data)
        return super()._save(name, ContentFile(data[: len(data) // 2]))

    def size(self, name: str) -> int:
        return self.claimed


class OpensAsText(FileSystemStorage):
    """A remote that opens its files as text whatever the mode asked (as
    some third-party storages do)."""

    def _open(self, name: str, mode: str = "rb") -> File:  # type: ignore[type-arg]
        return File(open(self.path(name), encoding="utf-8"), name)


@pytest.fixture
def retries(settings: Any) -> int:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1}
    return 1


@pytest.mark.parametrize("remote_class", [FlipsAByte, TruncatesAndLies])
def test_a_remote_that_stores_other_bytes_is_never_trusted(
    local_dir: Path, remote_dir: Path, retries: int, remote_class: type
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=remote_class(location=remote_dir),
        hooks=[DeleteLocal()],
        key=unique_key(),
    )
    with recording(storage, signals.transfer_failed, signals.local_deleted) as events:
        name = storage.save("precious.bin", ContentFile(DATA))
    assert storage.status(name) == Status.FAILED
    assert [kw["will_retry"] for _, kw in events] == [True, False]  # no local_deleted
    assert all(isinstance(kw["exception"], VerificationError) for _, kw in events)
    assert (local_dir / name).read_bytes() == DATA  # the only good copy is kept
    with storage.open(name) as fh:
        assert fh.read() == DATA
    row = StoredFile.objects.get(storage_key=storage.key, name=name)
    assert row.failure == "verification"


def test_size_only_is_an_explicit_opt_out_that_cannot_see_a_flipped_byte(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "PROOF": "size"}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FlipsAByte(location=remote_dir),
        key=unique_key(),
    )
    with recording(storage, signals.transferred) as events:
        name = storage.save("f.bin", ContentFile(DATA))
    assert storage.status(name) == Status.REMOTE
    assert events[0][1]["proof"] == "size"


def test_a_remote_that_reads_back_text_is_proven_on_its_utf8_bytes(
    local_dir: Path, remote_dir: Path, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=OpensAsText(location=remote_dir),
        key=unique_key(),
    )
    text = "Grüße aus Köln\n".encode() * 100
    with recording(storage, signals.transferred) as events:
        name = storage.save("text.txt", ContentFile(text))
    assert storage.status(name) == Status.REMOTE
    assert [kw["proof"] for _, kw in events] == ["readback"]


@pytest.fixture
def s3_remote(s3_endpoint: str, s3_bucket: str) -> Any:
    return make_s3(s3_endpoint, s3_bucket)


@contextmanager
def handling(remote: Any, event: str, handler: Any) -> Iterator[None]:
    """``handler`` receives the botocore ``event`` of ``remote``'s client
    while the block runs."""
    events = remote.bucket.meta.client.meta.events
    unique_id = f"test-{event}-{id(handler)}"
    events.register(event, handler, unique_id=unique_id)
    try:
        yield
    finally:
        events.unregister(event, unique_id=unique_id)


def test_s3_put_carries_the_ledgers_sha256(local_dir: Path, s3_remote: Any, settings: Any) -> None:
    """So that a server that validates checksums refuses other bytes, in the
    same request (checked on what is sent: moto does not validate)."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=s3_remote, key=unique_key()
    )
    sent: list[tuple[str, Any]] = []

    def capture(request: Any, **kwargs: Any) -> None:
        sent.append((request.url, request.headers.get("x-amz-checksum-sha256")))

    with handling(s3_remote, "before-send.s3.PutObject", capture):
        name = storage.save("sum.bin", ContentFile(DATA))
    assert storage.status(name) == Status.REMOTE
    expected = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    headers = [value for url, value in sent if url.endswith("/sum.bin")]
    assert [v.decode() if isinstance(v, bytes) else v for v in headers] == [expected]


def damage(request: Any, **kwargs: Any) -> None:
    """A botocore ``before-send`` handler: one byte of the body flips on
    the way to the server."""
    body = request.body
    data = body.read() if hasattr(body, "read") else bytes(body)
    if data:
        flipped = bytearray(data)
        flipped[0] ^= 0xFF
        request.body = bytes(flipped)


def test_s3_bytes_damaged_on_the_way_are_caught_by_the_etag(
    local_dir: Path, s3_remote: Any, retries: int
) -> None:
    """moto does not validate checksums (like the other servers here): the
    body is damaged between our client and the server, which stores and
    answers for the damaged bytes. The ETag it reports gives it away."""
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=s3_remote,
        hooks=[DeleteLocal()],
        key=unique_key(),
    )

    with (
        handling(s3_remote, "before-send.s3.PutObject", damage),
        recording(storage, signals.transfer_failed) as failed,
    ):
        name = storage.save("damaged.bin", ContentFile(DATA))
    assert storage.status(name) == Status.FAILED
    assert all(isinstance(kw["exception"], VerificationError) for _, kw in failed)
    assert "ETag" in str(failed[-1][1]["exception"])
    assert (local_dir / name).read_bytes() == DATA


@contextmanager
def validating_checksums(remote: Any) -> Iterator[None]:
    """The server refuses a ``PutObject`` whose ChecksumSHA256 is not the
    body's, as Amazon S3 does; moto accepts any, so the refusal is made at
    the transport."""

    def refuse_wrong(request: Any, **kwargs: Any) -> AWSResponse | None:
        claimed = request.headers.get("x-amz-checksum-sha256")
        body = request.body
        data = body.read() if hasattr(body, "read") else bytes(body or b"")
        if hasattr(body, "seek"):
            body.seek(0)
        if not claimed:
            return None
        actual = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if (claimed.decode() if isinstance(claimed, bytes) else claimed) == actual:
            return None
        error = b"<Error><Code>BadDigest</Code><Message>checksum</Message></Error>"

        class Raw:
            def stream(self, **kwargs: Any) -> Any:
                yield error

        return AWSResponse(request.url, 400, {}, Raw())

    s3.forget_capabilities()
    try:
        with handling(remote, "before-send.s3.PutObject", refuse_wrong):
            yield
    finally:
        s3.forget_capabilities()


def test_a_server_that_validates_checksums_is_detected(s3_remote: Any) -> None:
    """A server that refuses a wrong ChecksumSHA256 is found out by the probe."""
    with validating_checksums(s3_remote):
        found = s3.probe(s3_remote)
    assert found.validates_checksums
    assert found.honours_if_none_match


def test_a_multipart_etag_of_another_form_is_read_back(s3_remote: Any) -> None:
    """npm's s3rver gives a multipart object the MD5 of the whole object,
    not S3's MD5 of the parts' MD5s ("...-N"): there is nothing to compare
    the ETag with, so the copy is read back, and proven only if it holds the
    ledger's bytes."""
    from storage_hooks import proof

    row = StoredFile(name="whole.bin", size=len(DATA), checksum=hashlib.sha256(DATA).hexdigest())
    whole = f'"{hashlib.md5(DATA).hexdigest()}"'
    write = s3.Write(("", row.name), if_none_match=True, checksum_sha256=None, etag=whole)
    sent_in_parts = f'"{hashlib.md5(b"the parts").hexdigest()}-2"'

    s3_remote.save(row.name, ContentFile(DATA))
    assert proof.prove(s3_remote, row, write=write, sent_etag=sent_in_parts) == (
        "readback",
        whole,
    )
    s3_remote.save(row.name, ContentFile(DATA[::-1]))
    with pytest.raises(VerificationError):
        proof.prove(s3_remote, row, write=write, sent_etag=sent_in_parts)


# -- what a transfer reports: how the copy was proven, and what identifies it --


def head_etag(remote: Any, name: str) -> str:
    """The ETag the server gives the object now (what If-Match compares)."""
    client = remote.bucket.meta.client
    return str(client.head_object(Bucket=remote.bucket_name, Key=name)["ETag"])


def transfer_once(
    remote: Any, local_dir: Path, data: bytes = DATA
) -> tuple[dict[str, Any], StoredFile, list[str]]:
    """Save a file to a storage with the S3 ``remote``: the ``transferred``
    keywords, the ledger row, and the S3 operations sent."""
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    sent: list[str] = []
    with (
        handling(remote, "before-call.s3", lambda model, **kw: sent.append(model.name)),
        recording(storage, signals.transferred) as events,
    ):
        name = storage.save("proven.bin", ContentFile(data))
    assert storage.status(name) == Status.REMOTE
    ((_, transferred),) = events
    return transferred, StoredFile.objects.get(storage_key=storage.key, name=name), sent


def test_an_s3_copy_is_proven_by_the_etag_the_server_answered(
    local_dir: Path, s3_remote: Any, settings: Any
) -> None:
    """No read-back: the ETag of the write is the MD5 of the bytes sent,
    and it identifies the copy for a later conditional delete."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    transferred, row, sent = transfer_once(s3_remote, local_dir)
    assert transferred["proof"] == "etag"
    assert row.remote_etag == head_etag(s3_remote, row.name)
    assert row.remote_etag.strip('"') == hashlib.md5(DATA).hexdigest()
    assert "GetObject" not in sent


def test_a_multipart_copy_is_proven_by_its_etag_hashed_behind_the_upload(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, settings: Any
) -> None:
    """Parts read whole are hashed (SHA-256 and the ETag's MD5s) by a
    thread behind the upload: the ETag of three 5 MiB parts still matches
    the server's, without a read-back."""
    from boto3.s3.transfer import TransferConfig

    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20, use_threads=False
    )
    data = os.urandom(5 * 2**20) * 2 + b"tail"
    transferred, row, sent = transfer_once(remote, local_dir, data)
    assert transferred["proof"] == "etag"
    assert sent.count("UploadPart") == 3
    assert "GetObject" not in sent
    parts = [hashlib.md5(data[i : i + 5 * 2**20]).digest() for i in range(0, len(data), 5 * 2**20)]
    assert row.remote_etag == f'"{hashlib.md5(b"".join(parts)).hexdigest()}-3"'
    assert row.remote_etag == head_etag(remote, row.name)


def test_a_server_that_validates_checksums_proves_the_copy_in_the_write(
    local_dir: Path, s3_remote: Any, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    with validating_checksums(s3_remote):
        transferred, row, sent = transfer_once(s3_remote, local_dir)
    assert transferred["proof"] == "checksum"
    assert row.remote_etag == head_etag(s3_remote, row.name)
    assert "GetObject" not in sent


def test_an_etag_that_is_no_md5_is_proven_by_reading_the_copy_back(
    local_dir: Path, s3_remote: Any, settings: Any
) -> None:
    """A server that answers an ETag of its own kind (SSE-KMS, some
    servers): the ETag proves nothing, so the copy is read back; the ETag
    still identifies the copy. moto answers MD5s, so the answer is changed
    before botocore parses it."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate"}
    opaque = '"kms-4f1d2c9a7b"'

    def own_kind(customized_response_dict: dict[str, Any], **kwargs: Any) -> None:
        customized_response_dict["ETag"] = opaque

    with handling(s3_remote, "before-parse.s3.PutObject", own_kind):
        transferred, row, sent = transfer_once(s3_remote, local_dir)
    assert transferred["proof"] == "readback"
    assert "GetObject" in sent
    assert row.remote_etag == opaque


def test_a_size_proof_on_s3_keeps_the_etag_as_the_copys_identity(
    local_dir: Path, s3_remote: Any, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "PROOF": "size"}
    transferred, row, sent = transfer_once(s3_remote, local_dir)
    assert transferred["proof"] == "size"
    assert row.remote_etag == head_etag(s3_remote, row.name)
    assert "GetObject" not in sent


def test_s3_bytes_damaged_on_the_way_to_a_validating_server_are_refused_in_the_write(
    local_dir: Path, s3_remote: Any, settings: Any
) -> None:
    """The server checks the body against the ledger's SHA-256 the write
    carries and refuses it: a failed proof, and nothing stored."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=s3_remote, key=unique_key()
    )
    with (
        handling(s3_remote, "before-send.s3.PutObject", damage),  # first: the wire
        validating_checksums(s3_remote),  # then: the server
        recording(storage, signals.transfer_failed) as failed,
    ):
        name = storage.save("damaged.bin", ContentFile(DATA))
    ((_, event),) = failed
    assert isinstance(event["exception"], VerificationError)
    row = StoredFile.objects.get(storage_key=storage.key, name=name)
    assert (row.status, row.failure) == (Status.FAILED, "verification")
    assert not s3_remote.exists(name)
    assert (local_dir / name).read_bytes() == DATA
