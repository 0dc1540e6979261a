"""FallbackStorage against InMemoryStorage, FileSystemStorage and S3 (moto's
server over HTTP): the contract, failures, read-only backends, the url
memory, configuration, pickling and composition with QueuedStorage."""

from __future__ import annotations

import errno
import io
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage, Storage, storages
from django.db.migrations.writer import MigrationWriter

from storage_hooks import FallbackStorage as ExportedFallbackStorage
from storage_hooks import Status, signals
from storage_hooks.fallback import (
    FallbackStorage,
    NoBackendHasMethod,
    ReadOnlyBackendError,
    is_missing,
)
from storage_hooks.storage import QueuedStorage

from . import services
from .conftest import make_s3, unique_key

# -- backends -------------------------------------------------------------


class CountingMemory(InMemoryStorage):
    """A real InMemoryStorage that counts its ``exists`` calls and builds."""

    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).built += 1
        self.exists_calls = 0

    def exists(self, name: str) -> bool:
        self.exists_calls += 1
        return super().exists(name)


class DiskFullAfterHalf(InMemoryStorage):
    """Fails a save half way through reading the content, as a full disk
    does (a fault that cannot be caused for real in a test)."""

    def _save(self, name: str, content: Any) -> str:
        content.read(max(1, content.size // 2))
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def make_fs(tmp_path: Path) -> Callable[[str], FileSystemStorage]:
    def make(label: str) -> FileSystemStorage:
        location = tmp_path / label
        location.mkdir()
        return FileSystemStorage(location=location, base_url=f"/{label}/")

    return make


def make_backend(kind: str, label: str, request: pytest.FixtureRequest) -> Storage:
    if kind == "memory":
        return InMemoryStorage(base_url=f"/{label}/")
    if kind == "fs":
        return request.getfixturevalue("make_fs")(label)
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"{label}-{unique_key('b')}"
    services.create_bucket(endpoint, bucket)
    return make_s3(endpoint, bucket)


@pytest.fixture(params=["memory-fs", "fs-s3", "s3-memory"])
def two(request: pytest.FixtureRequest) -> tuple[Storage, Storage]:
    """Two real backends of different kinds: each kind comes first once."""
    first, second = request.param.split("-")
    return make_backend(first, "one", request), make_backend(second, "two", request)


def put(storage: Storage, name: str, data: bytes) -> None:
    assert storage.save(name, ContentFile(data)) == name


def read(storage: Storage, name: str) -> bytes:
    with storage.open(name, "rb") as fh:
        return fh.read()  # type: ignore[no-any-return]


def unreachable_s3() -> Storage:
    """An S3 storage whose endpoint refuses connections, failing fast."""
    from storages.backends.s3 import S3Storage

    options = services.s3_options(f"http://127.0.0.1:{services.free_port()}", "gone")
    config = Config(connect_timeout=1, retries={"total_max_attempts": 1})
    return S3Storage(**options, client_config=config)


# -- the contract, on every pair of real backends ----------------------------


def test_open_answers_from_the_first_backend_that_has_the_file(two: tuple[Storage, Storage]):
    one, other = two
    put(other, "only-second.txt", b"second")
    put(one, "both.txt", b"first")
    put(other, "both.txt", b"second")
    storage = FallbackStorage([one, other])
    assert read(storage, "only-second.txt") == b"second"
    assert read(storage, "both.txt") == b"first"
    assert storage.size("only-second.txt") == 6
    assert storage.get_modified_time("only-second.txt") == other.get_modified_time(
        "only-second.txt"
    )


def test_save_writes_to_the_first_backend_only(two: tuple[Storage, Storage]):
    one, other = two
    storage = FallbackStorage([one, other])
    name = storage.save("up/new.txt", ContentFile(b"new"))
    assert name == "up/new.txt"
    assert read(one, name) == b"new"
    assert not other.exists(name)


def test_exists_is_true_if_any_backend_has_the_file(two: tuple[Storage, Storage]):
    one, other = two
    put(other, "b.txt", b"b")
    storage = FallbackStorage([one, other])
    assert storage.exists("b.txt")
    assert not storage.exists("nowhere.txt")


def test_listdir_is_the_union_without_duplicates(two: tuple[Storage, Storage]):
    one, other = two
    put(one, "d/a.txt", b"a")
    put(one, "d/both.txt", b"1")
    put(other, "d/both.txt", b"2")
    put(other, "d/sub/c.txt", b"c")
    storage = FallbackStorage([one, other])
    assert storage.listdir("d") == (["sub"], ["a.txt", "both.txt"])


def test_url_comes_from_the_first_backend_that_has_the_file(two: tuple[Storage, Storage]):
    one, other = two
    put(other, "img/b.png", b"b")
    put(one, "img/a.png", b"a")
    storage = FallbackStorage([one, other])
    assert storage.url("img/a.png") == one.url("img/a.png")
    assert storage.url("img/b.png") == other.url("img/b.png")
    assert storage.url("img/none.png") == other.url("img/none.png")  # the last backend's


def test_available_name_is_free_in_every_backend(two: tuple[Storage, Storage]):
    one, other = two
    put(other, "taken.txt", b"x")
    storage = FallbackStorage([one, other])
    name = storage.get_available_name("taken.txt")
    assert name != "taken.txt"
    assert name.startswith("taken_")
    assert name.endswith(".txt")
    assert storage.save("taken.txt", ContentFile(b"mine")) not in ("taken.txt", name)
    assert read(other, "taken.txt") == b"x"


def test_delete_removes_the_file_from_the_first_backend_that_has_it(
    two: tuple[Storage, Storage],
):
    one, other = two
    put(one, "both.txt", b"1")
    put(other, "both.txt", b"2")
    put(other, "second.txt", b"2")
    storage = FallbackStorage([one, other])
    storage.delete("both.txt")
    assert not one.exists("both.txt")
    assert other.exists("both.txt")
    storage.delete("second.txt")
    assert not other.exists("second.txt")
    storage.delete("nowhere.txt")  # like every Django storage: not an error


class Forbidden(InMemoryStorage):
    """Has the file but refuses to be asked, as a bucket or directory without
    read permission does (the tests run as root, to whom a chmod is no
    obstacle: the one fault here that cannot be caused for real)."""

    def exists(self, name: str) -> bool:
        if super().exists(name):
            raise PermissionError(errno.EACCES, "Permission denied", name)
        return False


def test_delete_stops_at_a_backend_that_cannot_tell_and_spares_the_shadowed_copy():
    first, shadowed = Forbidden(), InMemoryStorage()
    put(first, "both.txt", b"1")
    put(shadowed, "both.txt", b"2")
    storage = FallbackStorage([first, shadowed])
    with pytest.raises(PermissionError) as info:
        storage.delete("both.txt")
    assert info.value.__notes__[0].startswith("backend #0 ")
    assert read(shadowed, "both.txt") == b"2"  # never deleted in its place
    assert InMemoryStorage.exists(first, "both.txt")


def test_delete_past_an_unreachable_backend_raises_its_error(request: pytest.FixtureRequest):
    s3 = make_backend("s3", "reachable", request)
    put(s3, "a.txt", b"a")
    storage = FallbackStorage([unreachable_s3(), s3])
    with pytest.raises(Exception, match="Could not connect") as info:
        storage.delete("a.txt")
    assert type(info.value).__name__ == "EndpointConnectionError"
    assert s3.exists("a.txt")


def test_delete_goes_on_past_backends_that_do_not_have_the_file(
    two: tuple[Storage, Storage],
):
    one, other = two
    put(other, "deep.txt", b"d")
    storage = FallbackStorage([one, other])
    storage.delete(Path("deep.txt"))  # a pathlib name, as Django accepts
    assert not other.exists("deep.txt")


@pytest.mark.parametrize("name", [None, ""])
def test_delete_without_a_name_is_a_value_error_as_in_django(name: Any):
    memory = InMemoryStorage()
    put(memory, "kept.txt", b"k")
    storage = FallbackStorage([memory])
    with pytest.raises(ValueError, match=r"^The name must be given to delete\(\)\.$"):
        storage.delete(name)
    assert memory.exists("kept.txt")


# -- naming: the writing backend's rules, free in every backend ---------------------


class TracStyleNames(InMemoryStorage):
    """Numbers taken names like Trac (``a.txt``, ``a.2.txt``): a storage
    with a naming rule of its own."""

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        root, dot, ext = name.rpartition(".")
        number, candidate = 2, name
        while self.exists(candidate):
            candidate = f"{root}.{number}{dot}{ext}"
            number += 1
        return candidate


def test_the_writing_backends_own_naming_is_used_and_sees_every_backend():
    writer, other = TracStyleNames(), InMemoryStorage()
    put(writer, "a.txt", b"1")
    put(other, "a.2.txt", b"other's")
    storage = FallbackStorage([writer, other])
    assert storage.save("a.txt", ContentFile(b"new")) == "a.3.txt"
    assert read(other, "a.2.txt") == b"other's"


def test_a_read_only_first_backend_does_not_choose_names():
    seed, writer = TracStyleNames(), InMemoryStorage()
    put(seed, "a.txt", b"seed")
    storage = FallbackStorage([seed, writer], read_only=[0])
    name = storage.save("a.txt", ContentFile(b"new"))
    assert name.startswith("a_")  # the writer's (Django's) rule
    assert name.endswith(".txt")


def test_allow_overwrite_replaces_the_writers_file_but_never_shadows_another_backend(
    make_fs: Callable[[str], FileSystemStorage],
):
    writer = FileSystemStorage(location=make_fs("w").location, allow_overwrite=True)
    other = make_fs("other")
    put(other, "theirs.txt", b"theirs")
    storage = FallbackStorage([writer, other])
    assert storage.save("mine.txt", ContentFile(b"first")) == "mine.txt"
    assert storage.save("mine.txt", ContentFile(b"2nd")) == "mine.txt"
    assert read(storage, "mine.txt") == b"2nd"
    name = storage.save("theirs.txt", ContentFile(b"mine"))
    assert name != "theirs.txt"
    assert read(storage, "theirs.txt") == b"theirs"
    assert read(storage, name) == b"mine"


def test_no_free_name_is_djangos_error(two: tuple[Storage, Storage]):
    one, other = two
    put(other, "short.longext", b"x")
    storage = FallbackStorage([one, other])
    with pytest.raises(SuspiciousFileOperation, match="Storage can not find an available filename"):
        storage.save("short.longext", ContentFile(b"y"), max_length=13)


def test_pathlib_names_are_accepted_everywhere(two: tuple[Storage, Storage]):
    one, other = two
    put(other, "dir/p.txt", b"path")
    storage = FallbackStorage([one, other])
    name = Path("dir/p.txt")
    assert storage.exists(name)
    assert storage.size(name) == 4
    assert storage.url(name) == other.url("dir/p.txt") == storage.url("dir/p.txt")
    with storage.open(name) as fh:
        assert fh.read() == b"path"
    assert storage.listdir(Path("dir")) == ([], ["p.txt"])
    assert storage.save(Path("dir/new.txt"), ContentFile(b"n")) == "dir/new.txt"
    storage.delete(name)
    assert not storage.exists("dir/p.txt")


def test_a_missing_file_is_a_file_not_found_error_carrying_every_backend_error(
    two: tuple[Storage, Storage],
):
    storage = FallbackStorage([*two])
    for call in (lambda: storage.open("nope.txt"), lambda: storage.size("nope.txt")):
        with pytest.raises(FileNotFoundError) as info:
            call()
        notes = info.value.__notes__
        assert len(notes) == 2
        assert notes[0].startswith("backend #0 ")
        assert notes[1].startswith("backend #1 ")
        if sys.version_info >= (3, 11):
            group = info.value.__cause__
            assert type(group).__name__ == "ExceptionGroup"
            assert len(group.exceptions) == 2
            assert all(is_missing(exc) for exc in group.exceptions)


# -- backends without a method ------------------------------------------------


def test_a_backend_without_the_method_is_skipped(
    request: pytest.FixtureRequest, make_fs: Callable[[str], FileSystemStorage]
):
    s3, disk = make_backend("s3", "nopath", request), make_fs("disk")
    put(s3, "a.txt", b"s3")
    put(disk, "f.txt", b"f")
    storage = FallbackStorage([s3, disk])  # S3 has no path() and no accessed time
    assert storage.path("f.txt") == disk.path("f.txt")
    assert storage.path("a.txt") == disk.path("a.txt")  # the only path there is
    assert storage.get_accessed_time("f.txt") == disk.get_accessed_time("f.txt")


def test_path_is_that_of_the_backend_that_has_the_file(
    make_fs: Callable[[str], FileSystemStorage],
):
    memory, disk = InMemoryStorage(location="/memory"), make_fs("disk")
    put(disk, "f.txt", b"f")
    storage = FallbackStorage([memory, disk])
    assert storage.path("f.txt") == disk.path("f.txt")
    assert storage.path("none.txt") == "/memory/none.txt"  # in no backend: the first path


def test_no_backend_with_the_method_is_an_attribute_error(request: pytest.FixtureRequest):
    s3 = make_backend("s3", "s3", request)
    storage = FallbackStorage([s3, make_backend("s3", "other", request)])
    with pytest.raises(AttributeError, match=r"path\('x.txt'\): no backend offers"):
        storage.path("x.txt")
    with pytest.raises(NotImplementedError):  # what Django expects of path()
        storage.path("x.txt")
    with pytest.raises(NoBackendHasMethod, match="get_accessed_time"):
        storage.get_accessed_time("x.txt")


# -- real failures --------------------------------------------------------------


def test_reads_fall_back_past_an_unreachable_backend(request: pytest.FixtureRequest):
    s3 = make_backend("s3", "up", request)
    put(s3, "a.txt", b"from s3")
    storage = FallbackStorage([unreachable_s3(), s3])
    assert read(storage, "a.txt") == b"from s3"
    assert storage.exists("a.txt")
    assert storage.url("a.txt") == s3.url("a.txt")


def test_when_every_backend_fails_the_first_real_error_is_raised_with_all_notes(
    tmp_path: Path,
):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    broken_disk = FileSystemStorage(location=not_a_dir)
    storage = FallbackStorage([InMemoryStorage(), unreachable_s3(), broken_disk])
    with pytest.raises(Exception, match="Could not connect") as info:
        storage.size("a.txt")
    error = info.value
    assert type(error).__name__ == "EndpointConnectionError"  # as the backend raised it
    assert not isinstance(error, KeyError)
    assert [note.split(":")[0] for note in error.__notes__] == [
        "backend #0 django.core.files.storage.memory.InMemoryStorage",
        "backend #1 storages.backends.s3.S3Storage",
        "backend #2 django.core.files.storage.filesystem.FileSystemStorage",
    ]
    with pytest.raises(type(error)):  # exists() does not turn a failure into False
        storage.exists("a.txt")


def test_save_moves_on_after_a_failure_and_starts_the_content_over():
    target = InMemoryStorage()
    storage = FallbackStorage([DiskFullAfterHalf(), target])
    name = storage.save("big.bin", ContentFile(b"0123456789" * 100))
    assert read(target, name) == b"0123456789" * 100


def test_a_save_that_cannot_start_over_raises_the_first_failure():
    class OneWay(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            buffer[:1] = b"x"
            return 1

        def seekable(self) -> bool:
            return False

    storage = FallbackStorage([DiskFullAfterHalf(), InMemoryStorage()])
    content = ContentFile(b"")
    content.file = OneWay()  # a stream that cannot seek back
    content.size = 4
    with pytest.raises(OSError, match="No space left") as info:
        storage.save("s.bin", content)
    assert len(info.value.__notes__) == 2
    content.close()


# -- read-only backends ---------------------------------------------------------


@pytest.fixture
def production(s3_endpoint: str, s3_bucket: str) -> tuple[Storage, str]:
    """A 'production' bucket holding one file, and the bucket's name."""
    s3 = make_s3(s3_endpoint, s3_bucket)
    put(s3, "media/prod.jpg", b"production bytes")
    return s3, s3_bucket


def bucket_keys(endpoint: str, bucket: str) -> dict[str, int]:
    listed = services.s3_client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    return {entry["Key"]: entry["Size"] for entry in listed}


def test_development_site_reads_production_and_writes_locally(
    settings: Any, tmp_path: Path, production: tuple[Storage, str], s3_endpoint: str
):
    _, bucket = production
    settings.STORAGES = {  # as in the recipe of docs/fallback.rst
        **settings.STORAGES,
        "default": {
            "BACKEND": "storage_hooks.fallback.FallbackStorage",
            "OPTIONS": {"backends": ["local", "production"], "read_only": ["production"]},
        },
        "local": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "dev"), "base_url": "/media/"},
        },
        "production": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": services.s3_options(s3_endpoint, bucket),
        },
    }
    before = bucket_keys(s3_endpoint, bucket)
    storage = storages["default"]

    assert read(storage, "media/prod.jpg") == b"production bytes"
    assert storage.url("media/prod.jpg") == storages["production"].url("media/prod.jpg")
    name = storage.save("media/prod.jpg", ContentFile(b"dev bytes"))
    assert name != "media/prod.jpg"  # the production name is taken
    assert (tmp_path / "dev" / name).read_bytes() == b"dev bytes"
    assert storage.url(name) == f"/media/{name}"
    with pytest.raises(ReadOnlyBackendError, match="read-only backend #1 production"):
        storage.delete("media/prod.jpg")
    storage.delete(name)
    assert bucket_keys(s3_endpoint, bucket) == before


def test_a_failed_save_never_falls_through_to_a_read_only_backend(
    tmp_path: Path, production: tuple[Storage, str], s3_endpoint: str
):
    s3, bucket = production
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    storage = FallbackStorage([FileSystemStorage(location=not_a_dir), s3], read_only=[-1])
    before = bucket_keys(s3_endpoint, bucket)
    with pytest.raises(FileExistsError) as info:  # the location is a file
        storage.save("new.txt", ContentFile(b"x"))
    assert info.value.__notes__[-1] == (
        "backend #1 storages.backends.s3.S3Storage: not tried, it is read-only"
    )
    with pytest.raises(NotADirectoryError):
        storage.open("w.txt", "wb")
    assert bucket_keys(s3_endpoint, bucket) == before


def test_only_read_only_backends_refuse_every_write():
    memory = InMemoryStorage()
    put(memory, "kept.txt", b"k")
    storage = FallbackStorage([memory], read_only=[0])
    with pytest.raises(ReadOnlyBackendError, match="only read-only backends"):
        storage.save("x.txt", ContentFile(b"x"))
    with pytest.raises(PermissionError):
        storage.open("kept.txt", "r+b")
    with pytest.raises(PermissionError):
        storage.delete("kept.txt")
    assert read(storage, "kept.txt") == b"k"
    assert memory.listdir("") == ([], ["kept.txt"])


def test_write_mode_opens_go_to_the_first_writable_backend():
    seed, scratch = InMemoryStorage(), InMemoryStorage()
    put(seed, "f.txt", b"seed")
    storage = FallbackStorage([seed, scratch], read_only=[0])
    with storage.open("f.txt", "wb") as fh:
        fh.write(b"scratch")
    assert read(scratch, "f.txt") == b"scratch"
    assert read(seed, "f.txt") == b"seed"


@pytest.mark.parametrize("ref", [2, -3, "nope", True])
def test_read_only_must_name_a_backend(ref: Any):
    with pytest.raises(ImproperlyConfigured, match="names no backend"):
        FallbackStorage([InMemoryStorage(), InMemoryStorage()], read_only=[ref])


# -- the url memory ---------------------------------------------------------------


def test_url_remembers_where_names_are_found():
    first, last = CountingMemory(base_url="/1/"), CountingMemory(base_url="/2/")
    names = [f"img/{i}.png" for i in range(100)]
    for name in names[:50]:
        put(last, name, b"x")
    last.exists_calls = 0
    storage = FallbackStorage([first, last])
    page = [storage.url(name) for name in names]
    assert first.exists_calls == 100
    assert last.exists_calls == 100
    assert [storage.url(name) for name in names] == page  # the next page view
    assert (first.exists_calls, last.exists_calls) == (100, 100)
    assert page[0] == "/2/img/0.png"
    assert page[99] == "/2/img/99.png"  # in no backend: the last one's url


def test_url_memory_sees_saves_and_deletes_through_the_storage_at_once():
    first, last = CountingMemory(base_url="/1/"), CountingMemory(base_url="/2/")
    storage = FallbackStorage([first, last], read_only=[1])
    put(last, "a.png", b"old")
    assert storage.url("a.png") == "/2/a.png"
    storage.forget_url()
    assert storage.url("new.png") == "/2/new.png"  # in no backend yet
    name = storage.save("new.png", ContentFile(b"x"))
    calls = first.exists_calls + last.exists_calls
    assert storage.url(name) == "/1/new.png"
    assert first.exists_calls + last.exists_calls == calls  # known from the save
    storage.delete(name)
    assert storage.url(name) == "/2/new.png"


def test_url_memory_entries_expire_and_can_be_forgotten():
    first, last = CountingMemory(base_url="/1/"), CountingMemory(base_url="/2/")
    put(last, "a.png", b"x")
    storage = FallbackStorage([first, last], url_cache_ttl=0.3)
    assert storage.url("a.png") == "/2/a.png"
    put(first, "a.png", b"y")  # behind the storage's back
    assert storage.url("a.png") == "/2/a.png"  # stale, within the ttl
    time.sleep(0.31)
    assert storage.url("a.png") == "/1/a.png"
    first.delete("a.png")
    assert storage.url("a.png") == "/1/a.png"  # stale again
    storage.forget_url("a.png")
    assert storage.url("a.png") == "/2/a.png"


def test_url_memory_is_bounded_and_can_be_off():
    first, last = CountingMemory(base_url="/1/"), CountingMemory(base_url="/2/")
    storage = FallbackStorage([first, last], url_cache_size=2)
    for name in ("a", "b", "c", "a"):
        storage.url(name)
    assert first.exists_calls == 4  # "a" was pushed out by "c"
    off = FallbackStorage([first, last], url_cache_size=0)
    off.url("a")
    off.url("a")
    assert first.exists_calls == 6


def test_url_memory_counts_s3_requests(request: pytest.FixtureRequest):
    local, s3 = InMemoryStorage(base_url="/local/"), make_backend("s3", "media", request)
    heads: list[str] = []
    s3.connection.meta.client.meta.events.register(
        "before-parameter-build.s3.HeadObject", lambda params, **kw: heads.append(params["Key"])
    )
    for i in range(10):
        put(s3, f"p/{i}.jpg", b"x")
    storage = FallbackStorage([local, s3])
    for _ in range(3):
        urls = [storage.url(f"p/{i}.jpg") for i in range(10)]
    assert len(heads) == 10
    assert urls[0] == s3.url("p/0.jpg")


# -- configuration ------------------------------------------------------------------


def test_backends_come_from_the_setting_and_are_built_once(settings: Any):
    settings.FALLBACK_STORAGES = [f"{__name__}.CountingMemory"]
    CountingMemory.built = 0
    storage = FallbackStorage()
    for _ in range(3):
        storage.save("a.txt", ContentFile(b"a"))
        storage.exists("a.txt")
        storage.url("a.txt")
    assert CountingMemory.built == 1
    assert isinstance(storage.backends[0], CountingMemory)
    assert ExportedFallbackStorage is FallbackStorage


@pytest.mark.parametrize("value", [None, [], ()])
def test_no_backends_is_improperly_configured(settings: Any, value: Any):
    settings.FALLBACK_STORAGES = value
    with pytest.raises(ImproperlyConfigured, match="FALLBACK_STORAGES"):
        FallbackStorage()
    with pytest.raises(ImproperlyConfigured, match="no backends"):
        FallbackStorage(backends=[])


def test_a_missing_setting_is_improperly_configured(settings: Any):
    del settings.FALLBACK_STORAGES
    with pytest.raises(ImproperlyConfigured, match="FALLBACK_STORAGES"):
        FallbackStorage()


def test_a_single_backend_instead_of_a_list_is_refused():
    with pytest.raises(ImproperlyConfigured, match="a list of backends"):
        FallbackStorage("default")  # type: ignore[arg-type]


def test_every_kind_of_backend_spec():
    storage = FallbackStorage(
        [
            "default",
            "django.core.files.storage.InMemoryStorage",
            InMemoryStorage,
            InMemoryStorage(),
            {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": "/x"},
            },
        ]
    )
    kinds = [type(backend).__name__ for backend in storage.backends]
    assert kinds == ["FileSystemStorage", *["InMemoryStorage"] * 3, "FileSystemStorage"]
    assert storage.backends[0] is storages["default"]
    assert storage.backends[4].location == "/x"
    with pytest.raises(ImproperlyConfigured, match=r"not an alias of settings\.STORAGES"):
        FallbackStorage(["nope"]).exists("a")
    with pytest.raises(ImproperlyConfigured, match="needs a 'BACKEND'"):
        FallbackStorage([{"OPTIONS": {}}]).exists("a")


def test_deconstructible_and_picklable(make_fs: Callable[[str], FileSystemStorage]):
    disk = make_fs("disk")
    put(disk, "a.txt", b"a")
    storage = FallbackStorage(
        [disk, "django.core.files.storage.InMemoryStorage"], read_only=[0], url_cache_ttl=5
    )
    storage.url("a.txt")
    path, args, kwargs = storage.deconstruct()
    assert path == "storage_hooks.fallback.FallbackStorage"
    assert kwargs == {"read_only": [0], "url_cache_ttl": 5}
    assert "storage_hooks.fallback.FallbackStorage(" in MigrationWriter.serialize(storage)[0]
    copy = pickle.loads(pickle.dumps(storage))
    assert read(copy, "a.txt") == b"a"
    assert copy.entries[0].read_only
    copy_args, copy_kwargs = copy.deconstruct()[1:]
    assert copy_kwargs == kwargs
    assert copy_args[0][1] == args[0][1]
    assert copy_args[0][0].deconstruct() == disk.deconstruct()  # rebuilt from its arguments


def test_pickles_with_an_s3_backend(request: pytest.FixtureRequest):
    s3 = make_backend("s3", "pickled", request)
    put(s3, "a.txt", b"s3")
    storage = FallbackStorage([InMemoryStorage(), s3])
    assert read(storage, "a.txt") == b"s3"
    assert read(pickle.loads(pickle.dumps(storage)), "a.txt") == b"s3"


# -- composition with QueuedStorage ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_queued_storage_as_a_backend(make_fs: Callable[[str], FileSystemStorage]):
    queued = QueuedStorage(
        local=make_fs("local"), remote=InMemoryStorage(base_url="/cdn/"), key=unique_key("fb")
    )
    archive = make_fs("archive")
    put(archive, "old.txt", b"archived")
    storage = FallbackStorage([queued, archive], read_only=[1])
    seen: list[str] = []
    with signals.transferred.connected_to(lambda sender, **kw: seen.append(kw["name"])):
        name = storage.save("new.txt", ContentFile(b"new"))
    assert seen == [name]
    assert queued.status(name) == Status.REMOTE
    assert storage.url(name) == "/cdn/new.txt"
    assert read(storage, name) == b"new"
    assert read(storage, "old.txt") == b"archived"
    assert storage.url("old.txt") == "/archive/old.txt"
    storage.delete(name)
    assert queued.status(name) is None
    assert not queued.remote.exists(name)


@pytest.mark.django_db(transaction=True)
def test_a_fallback_storage_as_the_remote_of_a_queued_storage(
    make_fs: Callable[[str], FileSystemStorage],
):
    new_bucket, old_bucket = InMemoryStorage(base_url="/new/"), make_fs("old")
    put(old_bucket, "photo.jpg", b"old photo")
    remote = FallbackStorage([new_bucket, old_bucket], read_only=[1])
    queued = QueuedStorage(
        local=make_fs("local"), remote=remote, check_remote=True, key=unique_key("fb")
    )
    name = queued.save("photo.jpg", ContentFile(b"new photo"))
    assert name != "photo.jpg"  # taken in the old, read-only bucket
    assert queued.status(name) == Status.REMOTE
    assert read(new_bucket, name) == b"new photo"
    assert queued.url(name) == f"/new/{name}"
    assert old_bucket.listdir("") == ([], ["photo.jpg"])


@pytest.mark.django_db(transaction=True)
def test_a_fallback_storage_as_the_local_of_a_queued_storage(
    make_fs: Callable[[str], FileSystemStorage],
):
    scratch, seed = make_fs("scratch"), make_fs("seed")
    put(seed, "seeded.txt", b"seed")
    local = FallbackStorage([scratch, seed], read_only=[1])
    queued = QueuedStorage(local=local, remote=InMemoryStorage(), key=unique_key("fb"))
    name = queued.save("up.txt", ContentFile(b"up"))
    assert queued.status(name) == Status.REMOTE
    assert read(scratch, name) == b"up"
    assert read(queued.remote, name) == b"up"
    assert read(queued, "seeded.txt") == b"seed"  # unknown to the ledger: local answers
    assert queued.exists("seeded.txt")


def test_url_memory_is_safe_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    first, last = InMemoryStorage(base_url="/1/"), InMemoryStorage(base_url="/2/")
    names = [f"{i}.png" for i in range(50)]
    for name in names[::2]:
        put(first, name, b"x")
    storage = FallbackStorage([first, last], url_cache_size=20)
    expected = [f"/1/{n}" if i % 2 == 0 else f"/2/{n}" for i, n in enumerate(names)]
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda _: [storage.url(n) for n in names], range(16)))
    assert pages == [expected] * 16
