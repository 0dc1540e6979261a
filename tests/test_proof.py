"""A transfer counts only once the remote copy is proven equal to the
ledger's SHA-256 (storage_hooks.proof), whatever the remote claims."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
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


@pytest.fixture
def s3_remote(s3_endpoint: str, s3_bucket: str) -> Any:
    return make_s3(s3_endpoint, s3_bucket)


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

    events = s3_remote.bucket.meta.client.meta.events
    events.register("before-send.s3.PutObject", capture, unique_id="test-capture")
    try:
        name = storage.save("sum.bin", ContentFile(DATA))
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="test-capture")
    assert storage.status(name) == Status.REMOTE
    expected = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    headers = [value for url, value in sent if url.endswith("/sum.bin")]
    assert [v.decode() if isinstance(v, bytes) else v for v in headers] == [expected]


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

    def damage(request: Any, **kwargs: Any) -> None:
        body = request.body
        data = body.read() if hasattr(body, "read") else bytes(body)
        if data:
            flipped = bytearray(data)
            flipped[0] ^= 0xFF
            request.body = bytes(flipped)

    events = s3_remote.bucket.meta.client.meta.events
    events.register("before-send.s3.PutObject", damage, unique_id="test-damage")
    try:
        with recording(storage, signals.transfer_failed) as failed:
            name = storage.save("damaged.bin", ContentFile(DATA))
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="test-damage")
    assert storage.status(name) == Status.FAILED
    assert all(isinstance(kw["exception"], VerificationError) for _, kw in failed)
    assert "ETag" in str(failed[-1][1]["exception"])
    assert (local_dir / name).read_bytes() == DATA


def test_a_server_that_validates_checksums_is_detected(s3_remote: Any) -> None:
    """A server that refuses a wrong ChecksumSHA256 (as Amazon S3 does) is
    found out by the probe; moto accepts any, so the refusal is made at the
    transport for the probe's wrong checksum."""
    from botocore.awsrequest import AWSResponse

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
    events = s3_remote.bucket.meta.client.meta.events
    events.register("before-send.s3.PutObject", refuse_wrong, unique_id="test-validate")
    try:
        found = s3.probe(s3_remote)
    finally:
        events.unregister("before-send.s3.PutObject", unique_id="test-validate")
        s3.forget_capabilities()
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
