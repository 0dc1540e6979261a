"""Big files on S3 stream with bounded memory by default (storage_hooks.s3.bound_memory).

The memory itself (peak RSS of a worker moving a 1 GiB file) is measured by
``benchmarks/run.py --only memory``; these tests pin what makes it bounded:
the transfer configuration the library gives an S3 remote, and that an
upload cut into its parts is still proven.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, s3, signals
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage

from .conftest import make_s3, unique_key
from .testapp.storages import recording

MIB = 2**20


def queued(local_dir: Path, remote: Any) -> QueuedStorage:
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("mem")
    )


def test_an_s3_remote_without_a_transfer_config_gets_a_bounded_one(
    local_dir: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    remote = queued(local_dir, make_s3(s3_endpoint, s3_bucket)).remote
    config = remote.transfer_config
    assert config.multipart_chunksize == 8 * MIB
    assert config.max_in_memory_upload_chunks == 3
    # At most this much of one upload is held in memory at once.
    assert config.multipart_chunksize * config.max_in_memory_upload_chunks <= 24 * MIB


def test_a_transfer_config_of_the_sites_own_is_kept(
    local_dir: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    own = TransferConfig(multipart_chunksize=64 * MIB)
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.transfer_config = own
    assert queued(local_dir, remote).remote.transfer_config is own


def test_django_storages_default_config_counts_as_none(
    local_dir: Path, s3_endpoint: str, s3_bucket: str
) -> None:
    """django-storages makes boto3's default TransferConfig when none is
    configured; that one is replaced, keeping the storage's use_threads."""
    remote = make_s3(s3_endpoint, s3_bucket)
    remote.use_threads = False
    remote.transfer_config = TransferConfig(use_threads=False)
    config = queued(local_dir, remote).remote.transfer_config
    assert config.max_in_memory_upload_chunks == 3
    assert config.use_threads is False


def test_remotes_other_than_s3_are_left_alone(local_dir: Path, remote_dir: Path) -> None:
    remote = FileSystemStorage(location=remote_dir)
    assert queued(local_dir, remote).remote is remote
    assert not hasattr(remote, "transfer_config")


@pytest.mark.django_db(transaction=True)
def test_a_big_file_goes_up_in_bounded_parts_and_is_proven(
    local_dir: Path, s3_endpoint: str, s3_bucket: str, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "RETRIES": 1}
    storage = queued(local_dir, make_s3(s3_endpoint, s3_bucket))
    data = bytes(range(256)) * (20 * MIB // 256)  # 20 MiB: three parts of 8, 8 and 4 MiB
    parts: list[int] = []

    def count_part(params: dict[str, Any], **kwargs: Any) -> None:
        parts.append(len(params["Body"].read()))
        params["Body"].seek(0)

    client = s3.client(storage.remote)
    client.meta.events.register("before-parameter-build.s3.UploadPart", count_part)
    try:
        with recording(storage, signals.transferred) as events:
            name = storage.save("big.bin", ContentFile(data))
    finally:
        client.meta.events.unregister("before-parameter-build.s3.UploadPart", count_part)

    assert sorted(parts) == [4 * MIB, 8 * MIB, 8 * MIB]
    assert storage.status(name) == Status.REMOTE
    # Proven by the composite ETag (MD5s of the parts as they were read),
    # with no read-back.
    assert events[0][1]["proof"] == "etag"
    row = StoredFile.objects.get(storage_key=storage.key, name=name)
    assert row.remote_etag.endswith('-3"')
    with storage.remote.open(name, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == row.checksum
