"""Behaviours of Django's file-storage suite that it cannot check on these
storages by itself: with an S3 backend (moto's server), and pathlib names
without FileSystemStorage's ``base_url``.

Each test runs on FallbackStorage and QueuedStorage (immediate runner, in
autocommit so that transfers happen), each around FileSystemStorage and
around S3. ``QUEUED_NOT_YET`` lists what QueuedStorage does not do yet:
strict expected failures, so a fix turns them into failures to delete.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage

from storage_hooks.fallback import FallbackStorage
from storage_hooks.storage import QueuedStorage

from .. import services
from ..conftest import unique_key

pytestmark = pytest.mark.django_db(transaction=True)

#: test name -> why QueuedStorage (storage.py, being rewritten) fails it.
QUEUED_NOT_YET: dict[str, str] = {}


def s3(endpoint: str, *, overwrite: bool) -> Storage:
    from storages.backends.s3 import S3Storage

    bucket = f"api-{unique_key('b')}"
    services.create_bucket(endpoint, bucket)
    return S3Storage(**{**services.s3_options(endpoint, bucket), "file_overwrite": overwrite})


def fs(tmp_path: Path, label: str, *, overwrite: bool) -> FileSystemStorage:
    return FileSystemStorage(
        location=tmp_path / label, base_url=f"/{label}/", allow_overwrite=overwrite
    )


def build(kind: str, request: pytest.FixtureRequest, tmp_path: Path, *, overwrite: bool) -> Storage:
    flavour, backend = kind.split("-")
    if backend == "s3":
        far = s3(request.getfixturevalue("s3_endpoint"), overwrite=overwrite)
    else:
        far = fs(tmp_path, "far", overwrite=overwrite)
    if flavour == "fallback":  # the S3 or disk backend first: it is written
        return FallbackStorage([far, fs(tmp_path, "second", overwrite=False)])
    local = fs(tmp_path, "local", overwrite=overwrite)
    return QueuedStorage(local=local, remote=far, key=unique_key(kind))


#: Set to run the expected failures as plain tests (see suite.py).
ALL = "STORAGE_HOOKS_CONFORMANCE_ALL"
KINDS = ["fallback-fs", "fallback-s3", "queued-fs", "queued-s3"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    pending = request.node.originalname in QUEUED_NOT_YET
    if request.param.startswith("queued") and pending and not os.environ.get(ALL):
        reason = QUEUED_NOT_YET[request.node.originalname]
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    return str(request.param)


@pytest.fixture
def storage(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return build(kind, request, tmp_path, overwrite=False)


def read(storage: Storage, name: Any) -> bytes:
    with storage.open(name, "rb") as fh:
        return fh.read()  # type: ignore[no-any-return]


def test_save_read_list_delete(storage: Storage):
    name = storage.save("dir/a.txt", ContentFile(b"content"))
    assert name == "dir/a.txt"
    assert storage.exists(name)
    assert storage.size(name) == 7
    assert read(storage, name) == b"content"
    assert "a.txt" in storage.listdir("dir")[1]
    second = storage.save("dir/a.txt", ContentFile(b"other"))
    assert second != name
    assert read(storage, name) == b"content"
    storage.delete(name)
    assert not storage.exists(name)
    storage.delete(name)  # a missing name is not an error


def test_pathlib_names(storage: Storage):
    name = storage.save(Path("p/test.file"), ContentFile(b"custom contents"))
    assert name == "p/test.file"
    path = Path(name)
    assert storage.exists(path)
    assert storage.size(path) == 15
    assert storage.url(path) == storage.url(name)
    assert read(storage, path) == b"custom contents"
    assert "test.file" in storage.listdir(Path("p"))[1]
    storage.delete(path)
    assert not storage.exists(name)


@pytest.mark.parametrize("name", [None, ""])
def test_delete_without_a_name(storage: Storage, name: Any):
    with pytest.raises(ValueError, match=r"^The name must be given to delete\(\)\.$"):
        storage.delete(name)


def test_an_error_in_chunks_propagates(kind: str, storage: Storage):
    if kind == "fallback-s3":
        pytest.skip("the S3 backend writes, and django-storages' S3Storage reads with read()")
    content = ContentFile(b"chunks fail")

    def failing_chunks(chunk_size: int | None = None) -> Iterator[bytes]:
        raise OSError("chunks() failed")

    content.chunks = failing_chunks  # type: ignore[method-assign]
    with pytest.raises(OSError, match=r"chunks\(\) failed"):
        storage.save("error.file", content)


def test_a_stream_that_cannot_seek_is_saved(storage: Storage):
    read_end, write_end = os.pipe()
    data = b"through a pipe " * 1000

    def feed() -> None:
        try:
            with os.fdopen(write_end, "wb") as writer:
                writer.write(data)
        except BrokenPipeError:  # the save gave up reading: the test says why
            pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_end, "rb") as reader:
        name = storage.save("piped.bin", File(reader, name="piped.bin"))
    feeder.join()
    assert read(storage, name) == data


def test_overwriting_replaces_the_file(kind: str, request: pytest.FixtureRequest, tmp_path: Path):
    storage = build(kind, request, tmp_path, overwrite=True)
    assert storage.save("same.txt", ContentFile(b"content extra extra")) == "same.txt"
    assert storage.save("same.txt", ContentFile(b"second")) == "same.txt"
    assert read(storage, "same.txt") == b"second"


def test_no_free_name_is_djangos_error(storage: Storage):
    storage.save("short.longext", ContentFile(b"x"))
    with pytest.raises(SuspiciousFileOperation, match="Storage can not find an available filename"):
        storage.save("short.longext", ContentFile(b"y"), max_length=13)
