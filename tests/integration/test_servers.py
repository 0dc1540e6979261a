"""The S3 transfer against real servers that differ, not only moto.

* moto 5.2's server honours ``If-None-Match: *`` everywhere;
* Ceph's radosgw 16 (Debian's packages) honours it on ``PutObject`` but
  ignores it on ``CompleteMultipartUpload`` (a multipart upload replaces a
  foreign object), and answers ``CompleteMultipartUpload`` with no ETag;
* npm's s3rver 3.7.1 ignores it, and gives a multipart object the MD5 of
  the whole object as its ETag (not S3's MD5 of the parts' MD5s).

None of them validates ``ChecksumSHA256``; radosgw and s3rver ignore
``If-Match`` on ``DeleteObject``. The transfer must find this out by its
probe and still write each file once, never over another writer's object,
with its bytes proven; a delete must still remove only its own copy.
radosgw and s3rver start once per session (tests/s3servers.py), when this
file runs.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, s3, signals
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage
from tests import s3servers
from tests.s3servers import S3Server
from tests.test_s3 import requests_of
from tests.testapp.storages import recording

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024

#: What each server honours, as the probe must find it.
HONOURS = {
    "moto": s3.Capabilities(validates_checksums=False, honours_if_none_match=True),
    "radosgw": s3.Capabilities(validates_checksums=False, honours_if_none_match=True),
    "s3rver": s3.Capabilities(validates_checksums=False, honours_if_none_match=False),
}

_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def radosgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3servers.radosgw(tmp_path_factory.mktemp("radosgw")) as server:
        yield server


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with s3servers.s3rver(tmp_path_factory.mktemp("s3rver")) as server:
        yield server


@pytest.fixture(params=list(HONOURS))
def server(request: pytest.FixtureRequest) -> S3Server:
    if request.param == "moto":
        return S3Server("moto", request.getfixturevalue("s3_endpoint"))
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


@pytest.fixture
def bucket(server: S3Server) -> str:
    name = f"servers-{next(_numbers)}"
    server.create_bucket(name)
    return name


@pytest.fixture
def remote(server: S3Server, bucket: str) -> Any:
    from storages.backends.s3 import S3Storage

    return S3Storage(**server.storage_options(bucket))


@pytest.fixture
def storage(settings: Any, local_dir: Path, remote: Any) -> QueuedStorage:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 0}
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=f"srv-{next(_numbers)}"
    )


def multipart(remote: Any) -> None:
    """Upload files of 5 MiB and more in 5 MiB parts."""
    remote.transfer_config = TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
    )


def object_bytes(server: S3Server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()  # type: ignore[no-any-return]


def test_the_probe_finds_what_the_server_honours(
    server: S3Server, bucket: str, remote: Any
) -> None:
    s3.forget_capabilities()
    assert s3.probe(remote) == HONOURS[server.name]
    listing = server.client().list_objects_v2(Bucket=bucket)
    assert not listing.get("Contents")  # the probe object is gone


@pytest.mark.parametrize("size", [10, 6 * MIB], ids=["small", "multipart"])
def test_a_saved_file_ends_remote_with_its_bytes_proven(
    server: S3Server, bucket: str, remote: Any, storage: QueuedStorage, size: int
) -> None:
    multipart(remote)
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    with recording(storage, signals.transferred) as events:
        name = storage.save("file.bin", ContentFile(data))
    assert storage.status(name) == Status.REMOTE
    assert object_bytes(server, bucket, name) == data
    ((_, event),) = events
    assert event["checksum"] == hashlib.sha256(data).hexdigest()
    # An ETag the server reports as S3 does is proof enough; radosgw's
    # empty one and s3rver's whole-object MD5 for multipart are read back.
    s3_etag = size < 5 * MIB or server.name == "moto"
    assert event["proof"] == ("etag" if s3_etag else "readback")


def test_after_the_probe_a_small_file_costs_one_request_where_the_condition_is_honoured(
    server: S3Server, remote: Any, storage: QueuedStorage
) -> None:
    honoured = s3.probe(remote).honours_if_none_match
    with requests_of(remote) as sent:
        for i in range(3):
            storage.save(f"{i}.txt", ContentFile(b"small"))
    assert [storage.status(f"{i}.txt") for i in range(3)] == [Status.REMOTE] * 3
    if honoured:
        assert sent == ["PutObject"] * 3
    else:  # the existence check is kept
        assert sent == ["HeadObject", "PutObject"] * 3


@pytest.mark.parametrize("size", [10, 6 * MIB], ids=["small", "multipart"])
def test_a_transfer_never_overwrites_another_object_at_its_key(
    server: S3Server, bucket: str, remote: Any, storage: QueuedStorage, size: int
) -> None:
    multipart(remote)
    server.client().put_object(Bucket=bucket, Key="taken.bin", Body=b"theirs")
    name = storage.save("taken.bin", ContentFile(b"o" * size))
    assert storage.status(name) == Status.FAILED
    assert StoredFile.objects.get(storage_key=storage.key, name=name).last_error.startswith(
        "NameConflict:"
    )
    assert object_bytes(server, bucket, "taken.bin") == b"theirs"


def test_a_delete_never_removes_another_writers_object(
    server: S3Server, bucket: str, storage: QueuedStorage
) -> None:
    """radosgw and s3rver ignore ``If-Match`` on ``DeleteObject``; the ETag
    compared before the delete still keeps another writer's object."""
    ours = storage.save("ours.txt", ContentFile(b"ours"))
    storage.delete(ours)
    assert not server.client().list_objects_v2(Bucket=bucket, Prefix=ours).get("Contents")

    name = storage.save("replaced.txt", ContentFile(b"ours"))
    assert storage.status(name) == Status.REMOTE
    server.client().put_object(Bucket=bucket, Key=name, Body=b"theirs now")
    storage.delete(name)
    assert storage.status(name) is None
    assert object_bytes(server, bucket, name) == b"theirs now"
