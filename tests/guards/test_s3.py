"""What the transfer asks of an S3 remote (storage_hooks.s3), on moto's S3
server: telling a missing object from other errors, deleting only while
the object is ours, compression, and what each server honours."""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, s3, signals
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .. import services
from ..conftest import make_s3, unique_key
from ..test_proof import handling
from ..testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)

DATA = b"body { color: red }\n" * 50
MIB = 1024 * 1024


@pytest.fixture
def remote(s3_endpoint: str, s3_bucket: str) -> Any:
    return make_s3(s3_endpoint, s3_bucket)


# -- a missing object, and what is not one --------------------------------------


def client_error(code: str | None, status: int | None) -> ClientError:
    """A botocore ClientError of the shape the client raises."""
    response: dict[str, Any] = {"Error": {"Code": code} if code is not None else {}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "missing"),
    [
        (FileNotFoundError("gone"), True),
        (client_error("NoSuchKey", 404), True),
        (client_error("404", 404), True),  # HEAD: no body, the status is the code
        (client_error(None, 404), True),  # a server that answers 404 without a body
        (client_error("NoSuchBucket", 404), False),  # the bucket, not the file
        (client_error("AccessDenied", 403), False),
        (client_error("InternalError", None), False),  # no status to go by
        (ValueError("not a storage error"), False),
    ],
    ids=[
        "fs",
        "nosuchkey",
        "head",
        "bare-404",
        "nosuchbucket",
        "denied",
        "no-status",
        "other",
    ],
)
def test_only_a_missing_object_counts_as_missing(exc: BaseException, missing: bool) -> None:
    assert s3.is_missing(exc) is missing


# -- deleting only our copy -----------------------------------------------------


def test_an_object_removed_by_another_client_meanwhile_is_not_deleted_again(
    remote: Any,
) -> None:
    """Between the ETag check and the conditional delete, another client
    removes the object: nothing is left to delete, and that is no error."""
    remote.save("mine.css", ContentFile(DATA))
    etag = remote.bucket.meta.client.head_object(Bucket=remote.bucket_name, Key="mine.css")["ETag"]
    other = services.s3_client(remote.endpoint_url)

    def removed_first(**kwargs: Any) -> None:
        other.delete_object(Bucket=remote.bucket_name, Key="mine.css")

    with handling(remote, "before-send.s3.DeleteObject", removed_first):
        assert s3.delete_if_etag(remote, "mine.css", etag) is False
    assert not remote.exists("mine.css")


# -- compression ------------------------------------------------------------------


# django-storages 1.14 reads a compressed object through a GzipFile that does
# not close the temporary file under it.
LEAKS = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.mark.parametrize(
    ("gzip", "how"), [(False, "etag"), pytest.param(True, "readback", marks=LEAKS)]
)
def test_a_compressing_remote_is_proven_by_reading_the_copy_back(
    local_dir: Path, remote: Any, settings: Any, gzip: bool, how: str
) -> None:
    """django-storages compresses text types when ``gzip`` is set: the
    server's ETag is then the MD5 of other bytes than were read, so only a
    read-back can prove the copy. Without ``gzip`` the ETag does."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    remote.gzip = gzip
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    with recording(storage, signals.transferred) as events:
        name = storage.save("style.css", ContentFile(DATA))
    assert storage.status(name) == Status.REMOTE
    assert [kw["proof"] for _, kw in events] == [how]
    with storage.open(name, "rb") as fh:
        assert fh.read() == DATA
    gc.collect()  # the leaked file's warning, here rather than in another test


# -- the ETag of a multipart upload ---------------------------------------------


def test_a_multipart_upload_is_proven_by_its_etag(
    local_dir: Path, remote: Any, settings: Any
) -> None:
    """The MD5s are taken per part, cut where boto3 cuts the upload, so the
    ETag the server answers ("<md5 of the part MD5s>-<parts>") proves it."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2
    )
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    data = bytes(range(256)) * (11 * MIB // 256) + b"tail"
    with recording(storage, signals.transferred) as events:
        name = storage.save("big.bin", ContentFile(data))
    assert storage.status(name) == Status.REMOTE
    assert [kw["proof"] for _, kw in events] == ["etag"]
    row = StoredFile.objects.get(storage_key=storage.key, name=name)
    assert row.remote_etag.endswith('-3"')


def test_a_huge_upload_is_hashed_in_no_more_parts_than_s3_allows(remote: Any) -> None:
    """S3 takes at most 10,000 parts: boto3 makes the parts of a huge file
    bigger than configured, and the ETag must be computed over those."""
    size = 100 * 1024 * MIB
    hasher = s3.PartHasher(remote, size)
    assert hasher.multipart
    assert math.ceil(size / hasher.part_size) <= 10_000


# -- what a server honours ------------------------------------------------------


def answer(request: Any, status: int, code: str) -> AWSResponse:
    """The error response a server sends with ``status`` and ``code``."""
    body = f"<Error><Code>{code}</Code><Message>refused</Message></Error>".encode()

    class Raw:
        def stream(self, **kwargs: Any) -> Iterator[bytes]:
            yield body

    return AWSResponse(request.url, status, {}, Raw())


@contextmanager
def refusing_checksums(remote: Any, status: int, code: str) -> Iterator[None]:
    """The server answers ``status``/``code`` to every ``PutObject`` that
    carries a checksum (moto accepts any: the answer is made at the
    transport). What is sent by the transfer itself is right, so only the
    probe's wrong checksum meets this with a real server."""

    def refuse(request: Any, **kwargs: Any) -> AWSResponse | None:
        if not request.headers.get("x-amz-checksum-sha256"):
            return None
        return answer(request, status, code)

    s3.forget_capabilities()
    try:
        with handling(remote, "before-send.s3.PutObject", refuse):
            yield
    finally:
        s3.forget_capabilities()


@pytest.mark.parametrize("code", ["BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest"])
def test_a_server_that_refuses_a_wrong_checksum_with_a_400_validates(
    remote: Any, code: str
) -> None:
    """Servers name the refusal differently; a 400 to the probe's wrong
    checksum is a refusal whatever the code."""
    with refusing_checksums(remote, 400, code):
        assert s3.probe(remote).validates_checksums


def test_a_probe_refused_for_another_reason_is_an_error(remote: Any) -> None:
    """Access denied says nothing of checksums: the probe fails, rather
    than record what it did not find out."""
    with refusing_checksums(remote, 403, "AccessDenied"), pytest.raises(ClientError) as raised:
        s3.probe(remote)
    assert s3.error_code(raised.value) == "AccessDenied"


def test_what_a_server_honours_is_found_per_server(s3_endpoint: str, s3_bucket: str) -> None:
    """Two endpoints with a bucket of the same name are two servers: the
    probe of one says nothing of the other. (Here both names reach the same
    moto server, and only the client of the first refuses a wrong checksum.)"""
    first = make_s3(s3_endpoint, s3_bucket)
    second = make_s3(s3_endpoint.replace("127.0.0.1", "localhost"), s3_bucket)
    assert first.endpoint_url != second.endpoint_url

    with refusing_checksums(first, 400, "BadDigest"):
        assert s3.probe(first).validates_checksums
        assert not s3.probe(second).validates_checksums
