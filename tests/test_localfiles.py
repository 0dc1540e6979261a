"""The local copy (storage_hooks.localfiles): names, symlinks, checksums,
private files, permissions, and file operations of a subclass's own."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from storage_hooks import Status, ledger, localfiles
from storage_hooks.localfiles import (
    CHUNK_SIZE,
    HashingFile,
    check_inside_root,
    check_name,
    discard,
    hash_upload,
    link_into_place,
    open_binary,
    open_for_reading,
    sha256_of,
    unlink,
    write_private,
)
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key


@pytest.mark.parametrize("name", ["a.txt", "a/b/c.tar.gz", "with space.txt", ".hidden", "a..b"])
def test_ordinary_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../x", "path traversal"),
        ("a/../../x", "path traversal"),
        ("a/..", "Could not derive file name"),
        ("/etc/passwd", "path traversal"),
        ("a\x00b", "contains a null byte"),
        ("", "Could not derive file name"),
        (None, "must be a string"),
        (b"a.txt", "must be a string"),
    ],
)
def test_dangerous_names_are_refused(name: object, message: str) -> None:
    with pytest.raises(SuspiciousFileOperation, match=message):
        check_name(name)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "real.txt").write_bytes(b"inside")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    return tmp_path / "root"


def test_a_symlink_inside_the_root_is_fine(root: Path) -> None:
    (root / "alias.txt").symlink_to(root / "real.txt")
    storage = FileSystemStorage(location=root)
    check_inside_root(storage, "alias.txt")
    check_inside_root(storage, "missing/file.txt")
    with open_binary(storage, "alias.txt") as fh:
        assert fh.read() == b"inside"


def test_a_symlink_out_of_the_root_is_refused(root: Path) -> None:
    (root / "escape.txt").symlink_to(root.parent / "outside.txt")
    (root / "dir").symlink_to(root.parent)
    storage = FileSystemStorage(location=root)
    for name in ("escape.txt", "dir/outside.txt"):
        with pytest.raises(SuspiciousFileOperation, match="outside the storage's root"):
            check_inside_root(storage, name)
    with pytest.raises(SuspiciousFileOperation):
        open_binary(storage, "escape.txt")


def test_a_root_that_is_itself_a_symlink_is_its_own_inside(root: Path) -> None:
    (root.parent / "link-to-root").symlink_to(root)
    check_inside_root(FileSystemStorage(location=root.parent / "link-to-root"), "real.txt")


def test_storages_without_a_file_system_root_are_not_checked() -> None:
    class NoRoot(Storage):
        """Like a remote storage: no location, path() not implemented."""

    class NoPath(Storage):
        location = "/srv"

    check_inside_root(NoRoot(), "anything.txt")
    check_inside_root(NoPath(), "anything.txt")


def test_sha256_of_a_stored_file(tmp_path: Path) -> None:
    data = b"x" * (CHUNK_SIZE + 5)
    storage = FileSystemStorage(location=tmp_path)
    storage.save("f.bin", ContentFile(data))
    assert sha256_of(storage, "f.bin") == hashlib.sha256(data).hexdigest()


def test_hashing_file_hashes_one_sequential_pass() -> None:
    data = b"0123456789" * 1000
    hashing = HashingFile(io.BytesIO(data), "f")
    assert hashing.hexdigest() is None  # nothing read yet
    chunks = list(hashing.chunks(chunk_size=333))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) == 333
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashing.bytes_read == len(data)


def test_hashing_file_starts_again_at_zero_and_gives_up_on_jumps() -> None:
    data = b"abcdefgh"
    hashing = HashingFile(io.BytesIO(data))
    hashing.read(3)
    hashing.seek(0)  # a reader that starts again: hash from scratch
    assert hashing.read() == data
    hashing.read()
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()

    jumpy = HashingFile(io.BytesIO(data))
    jumpy.seek(4)
    jumpy.read()
    jumpy.read()
    assert jumpy.hexdigest() is None  # not one pass from 0: the caller hashes


def test_hashing_file_encodes_text() -> None:
    hashing = HashingFile(io.StringIO("héllo"))
    while hashing.read(2):
        pass
    assert hashing.hexdigest() == hashlib.sha256("héllo".encode()).hexdigest()


def test_hash_upload_reads_a_temporary_upload_only() -> None:
    with TemporaryUploadedFile("u.bin", "application/octet-stream", 3, None) as upload:
        upload.write(b"abc")
        upload.flush()
        assert hash_upload(upload) == (hashlib.sha256(b"abc").hexdigest(), 3)
    assert hash_upload(SimpleUploadedFile("s.txt", b"abc")) is None
    assert hash_upload(File(io.BytesIO(b"abc"))) is None


def test_writes_never_leave_the_root_while_directories_are_swapped_for_symlinks(
    tmp_path: Path,
) -> None:
    """One thread writes files into ``root/sub`` while another keeps
    swapping ``sub`` between a real directory and a symlink to a directory
    outside the root. Whatever the timing, nothing lands outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    storage = FileSystemStorage(location=root)
    stop = time.monotonic() + 3
    refused = written = 0

    def swap() -> None:
        moved = 0
        while time.monotonic() < stop:
            moved += 1
            # The real directory (with what was written) goes away, and a
            # symlink to the outside takes its place.
            with contextlib.suppress(OSError):
                os.rename(root / "sub", root / f"moved{moved}")
            with contextlib.suppress(OSError):
                (root / "sub").symlink_to(outside)
            time.sleep(0.0005)
            with contextlib.suppress(OSError):
                (root / "sub").unlink()

    swapper = threading.Thread(target=swap)
    swapper.start()
    i = 0
    while time.monotonic() < stop:
        i += 1
        try:
            done = write_private(storage, f"sub/f{i}.txt", ContentFile(b"x"))
        except (SuspiciousFileOperation, FileNotFoundError, OSError):
            refused += 1
            continue
        try:
            link_into_place(done)
            written += 1
        except (SuspiciousFileOperation, FileNotFoundError, OSError):
            refused += 1
            with contextlib.suppress(SuspiciousFileOperation, OSError):
                discard(done)
    swapper.join()
    assert os.listdir(outside) == []
    assert refused > 0  # the swaps did get in the way
    assert written + refused == i


# -- guards: behaviours mutation testing found unpinned --------------------------


class LoggingStorage(FileSystemStorage):
    """A FileSystemStorage whose deletes and opens are its own (it logs
    them): they must be used, not bypassed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[str, str]] = []

    def delete(self, name: str) -> None:
        self.log.append(("delete", name))
        super().delete(name)

    def _open(self, name: str, mode: str = "rb") -> File:
        self.log.append(("open", name))
        return super()._open(name, mode)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# -- a subclass's own file operations -----------------------------------------


def test_unlink_goes_through_a_subclass_own_delete(root: Path) -> None:
    storage = LoggingStorage(location=root)
    assert unlink(storage, "real.txt") is True
    assert storage.log == [("delete", "real.txt")]
    assert not (root / "real.txt").exists()
    assert unlink(storage, "real.txt") is False  # nothing left to remove
    assert storage.log == [("delete", "real.txt")]


def test_unlink_through_a_subclass_refuses_a_symlink_out_of_the_root(root: Path) -> None:
    (root / "escape.txt").symlink_to(root.parent / "outside.txt")
    storage = LoggingStorage(location=root)
    with pytest.raises(SuspiciousFileOperation):
        unlink(storage, "escape.txt")
    assert storage.log == []
    assert (root.parent / "outside.txt").read_bytes() == b"outside"


def test_reading_goes_through_a_subclass_own_open(root: Path) -> None:
    storage = LoggingStorage(location=root)
    with open_for_reading(storage, "real.txt") as fh:
        assert fh.read() == b"inside"
    with open_binary(storage, "real.txt") as fh:
        assert fh.read() == b"inside"
    assert localfiles.digest(storage, "real.txt") == (hashlib.sha256(b"inside").hexdigest(), 6)
    assert storage.log == [("open", "real.txt")] * 3


def test_reading_through_a_subclass_refuses_a_symlink_out_of_the_root(root: Path) -> None:
    (root / "escape.txt").symlink_to(root.parent / "outside.txt")
    storage = LoggingStorage(location=root)
    for read in (open_for_reading, open_binary):
        with pytest.raises(SuspiciousFileOperation):
            read(storage, "escape.txt")
    assert storage.log == []


def test_only_filesystemstorages_own_operations_are_replaced_by_the_descriptor_walk(
    root: Path,
) -> None:
    """The directory-descriptor walk stands for FileSystemStorage's own
    delete and open (they follow symlinks at the moment of use)."""
    storage = FileSystemStorage(location=root)
    assert localfiles.is_local_fs(storage)
    assert localfiles.is_local_fs(storage, reading=True)
    assert not localfiles.is_local_fs(LoggingStorage(location=root))

    class OwnSave(FileSystemStorage):
        def _save(self, name: str, content: Any) -> str:
            return super()._save(name, content)

    # Its reads are FileSystemStorage's own, its writes are not.
    assert localfiles.is_local_fs(OwnSave(location=root), reading=True)
    assert not localfiles.is_local_fs(OwnSave(location=root))


# -- reading while directories are swapped --------------------------------


def test_reads_never_leave_the_root_while_directories_are_swapped_for_symlinks(
    tmp_path: Path,
) -> None:
    """One thread reads ``root/sub/f.txt`` while another keeps moving ``sub``
    away and putting a symlink to a directory outside the root (with a file
    of the same name) in its place. Whatever the timing, the outside file
    is never read."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "f.txt").write_bytes(b"inside")
    (outside / "f.txt").write_bytes(b"outside")
    storage = FileSystemStorage(location=root)
    stop = time.monotonic() + 2
    seen: set[bytes] = set()

    def swap() -> None:
        while time.monotonic() < stop:
            os.rename(root / "sub", root / "real-sub")
            for _ in range(100):  # missing, a symlink, missing, ...
                (root / "sub").symlink_to(outside)
                (root / "sub").unlink()
            os.rename(root / "real-sub", root / "sub")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # let the threads interleave as often as can be
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        while time.monotonic() < stop:
            try:
                with open_binary(storage, "sub/f.txt") as fh:
                    seen.add(fh.read())
            except (SuspiciousFileOperation, OSError):
                seen.add(b"refused")
    finally:
        swapper.join()
        sys.setswitchinterval(interval)
    assert b"outside" not in seen
    assert b"refused" in seen  # the swaps did get in the way
    with open_binary(storage, "sub/f.txt") as fh:  # the real directory is back
        assert fh.read() == b"inside"


# -- permissions ---------------------------------------------------------------


def test_written_files_and_made_directories_get_the_storages_modes(tmp_path: Path) -> None:
    storage = FileSystemStorage(
        location=tmp_path, file_permissions_mode=0o640, directory_permissions_mode=0o750
    )
    with umask(0o022):
        written = write_private(storage, "a/b/c.txt", ContentFile(b"data"))
        link_into_place(written)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "a" / "b" / "c.txt").stat().st_mode) == 0o640


def test_by_default_files_get_djangos_upload_mode_and_directories_the_umask(
    tmp_path: Path,
) -> None:
    storage = FileSystemStorage(location=tmp_path)  # FILE_UPLOAD_PERMISSIONS: 0o644
    with umask(0o027):
        link_into_place(write_private(storage, "d/f.txt", ContentFile(b"data")))
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "d" / "f.txt").stat().st_mode) == 0o644


# -- paths through files and symlinks ------------------------------------------


def test_a_path_through_a_regular_file_is_not_a_directory(root: Path) -> None:
    """An ordinary error (the caller's mistake), not taken for an attack."""
    storage = FileSystemStorage(location=root)
    with pytest.raises(NotADirectoryError):
        write_private(storage, "real.txt/x.txt", ContentFile(b"x"))
    with pytest.raises(NotADirectoryError):
        open_for_reading(storage, "real.txt/x.txt")


def test_a_path_through_a_symlink_to_a_file_is_refused(root: Path) -> None:
    (root / "alias").symlink_to(root / "real.txt")
    storage = FileSystemStorage(location=root)
    with pytest.raises(SuspiciousFileOperation):
        write_private(storage, "alias/x.txt", ContentFile(b"x"))


def test_unlink_removes_a_symlink_not_its_target(root: Path) -> None:
    (root / "escape.txt").symlink_to(root.parent / "outside.txt")
    storage = FileSystemStorage(location=root)
    assert unlink(storage, "escape.txt") is True
    assert not (root / "escape.txt").is_symlink()
    assert (root.parent / "outside.txt").read_bytes() == b"outside"
    assert unlink(storage, "escape.txt") is False
    assert unlink(storage, "no/such/dir.txt") is False


# -- private files --------------------------------------------------------------


def test_a_private_file_is_invisible_until_linked_into_place(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    written = write_private(storage, "d/f.txt", io.BytesIO(b"plain stream"))
    assert written.size == 12
    assert written.checksum == hashlib.sha256(b"plain stream").hexdigest()
    assert storage.listdir("d")[1] == [written.temp]
    assert written.temp.startswith(localfiles.TEMP_PREFIX)
    link_into_place(written)
    assert storage.listdir("d")[1] == ["f.txt"]
    assert (tmp_path / "d" / "f.txt").read_bytes() == b"plain stream"


class SizedReads(io.BytesIO):
    """A plain stream (no chunks()) that remembers how much each read asked."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)


def test_a_plain_stream_is_written_in_bounded_reads(tmp_path: Path) -> None:
    stream = SizedReads(os.urandom(3 * localfiles.CHUNK_SIZE + 5))
    written = write_private(FileSystemStorage(location=tmp_path), "s.bin", stream)
    assert written.size == 3 * localfiles.CHUNK_SIZE + 5
    assert all(size is not None and 0 < size <= localfiles.CHUNK_SIZE for size in stream.asked)


def test_a_text_stream_is_written_as_utf8_and_ends(tmp_path: Path) -> None:
    """A text stream ends with "", not b"": the write must stop there."""
    storage = FileSystemStorage(location=tmp_path)
    written = write_private(storage, "t.txt", io.StringIO("héllo " * 3000))
    data = ("héllo " * 3000).encode()
    assert written.size == len(data)
    assert written.checksum == hashlib.sha256(data).hexdigest()


def test_a_content_already_read_is_written_whole(tmp_path: Path) -> None:
    """A validator that read the upload leaves it at its end: the whole file
    is written all the same."""
    content = File(io.BytesIO(b"whole content"), "f.txt")
    assert content.read() == b"whole content"
    written = write_private(FileSystemStorage(location=tmp_path), "f.txt", content)
    assert written.size == 13
    assert written.checksum == hashlib.sha256(b"whole content").hexdigest()


def test_link_into_place_never_overwrites(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    (tmp_path / "f.txt").write_bytes(b"theirs")
    written = write_private(storage, "f.txt", ContentFile(b"ours"))
    with pytest.raises(FileExistsError):
        link_into_place(written)
    assert (tmp_path / "f.txt").read_bytes() == b"theirs"
    link_into_place(written, "g.txt")
    assert written.name == "g.txt"
    assert (tmp_path / "g.txt").read_bytes() == b"ours"
    assert sorted(os.listdir(tmp_path)) == ["f.txt", "g.txt"]


def test_discarding_a_written_file_twice_is_harmless(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    written = write_private(storage, "d/f.txt", ContentFile(b"x"))
    discard(written)
    assert os.listdir(tmp_path / "d") == []
    discard(written)
    os.rmdir(tmp_path / "d")
    discard(written)  # its directory is gone too


def test_a_temporary_upload_is_moved_not_copied(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path / "media", file_permissions_mode=0o640)
    upload = TemporaryUploadedFile("u.bin", "application/octet-stream", 5, None)
    upload.write(b"hello")
    upload.flush()
    source = upload.temporary_file_path()
    written = write_private(storage, "up/u.bin", upload)
    assert not os.path.exists(source)
    assert (written.size, written.checksum) == (5, hashlib.sha256(b"hello").hexdigest())
    link_into_place(written)
    placed = tmp_path / "media" / "up" / "u.bin"
    assert placed.read_bytes() == b"hello"
    assert stat.S_IMODE(placed.stat().st_mode) == 0o640
    with contextlib.suppress(FileNotFoundError):
        upload.close()


# -- open(name, "w") through QueuedStorage -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_file_written_through_open_is_recorded_with_its_size_and_checksum(
    local_dir: Path, remote_dir: Path
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir, file_permissions_mode=0o640),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key("open"),
        delayed=True,
    )
    with storage.open("d/new.txt", "wb") as fh:
        fh.write(b"written through open")
    data = b"written through open"
    assert (local_dir / "d" / "new.txt").read_bytes() == data
    assert stat.S_IMODE((local_dir / "d" / "new.txt").stat().st_mode) == 0o640
    assert os.listdir(local_dir / "d") == ["new.txt"]  # no private file left
    row = ledger.get(storage.key, "d/new.txt")
    assert row is not None
    assert (row.size, row.checksum) == (len(data), hashlib.sha256(data).hexdigest())
    assert storage.status("d/new.txt") == Status.LOCAL
    storage.transfer("d/new.txt")
    assert (remote_dir / "d" / "new.txt").read_bytes() == data


# -- free names -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_overwriting_local_never_takes_the_name_of_a_foreign_remote_file(
    local_dir: Path, remote_dir: Path
) -> None:
    (remote_dir / "archive.tar.gz").write_bytes(b"someone else's")
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir, allow_overwrite=True),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key("free"),
        check_remote=True,
        delayed=True,
    )
    name = storage.save("archive.tar.gz", ContentFile(b"ours"))
    assert name != "archive.tar.gz"
    assert name.startswith("archive_")
    assert name.endswith(".tar.gz")
    assert (local_dir / name).read_bytes() == b"ours"
    assert (remote_dir / "archive.tar.gz").read_bytes() == b"someone else's"


def test_a_free_name_is_shortened_to_the_limit() -> None:
    taken = {"dir/" + "a" * 20 + ".txt"}

    def alternative(stem: str, ext: str) -> str:
        return f"{stem}_x{ext}"

    name = localfiles.free_name("dir/" + "a" * 20 + ".txt", 20, taken.__contains__, alternative)
    assert len(name) <= 20
    assert name.startswith("dir/a")
    assert name.endswith("_x.txt")
    with pytest.raises(SuspiciousFileOperation):
        localfiles.free_name("dir/abc.txt", 8, lambda _: True, alternative)


# -- hashing while reading ----------------------------------------------------


def test_a_reader_that_stops_at_the_last_byte_gets_the_digest() -> None:
    data = b"exactly this"
    hashing = HashingFile(io.BytesIO(data))
    assert hashing.read(len(data)) == data  # never asks for more
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashing.tell() == len(data)  # where the reader left it


def test_a_stream_that_cannot_seek_is_hashed_as_it_is_read() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"piped bytes")
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        hashing = HashingFile(pipe)
        assert hashing.read() == b"piped bytes"
        assert hashing.read() == b""
        assert hashing.hexdigest() == hashlib.sha256(b"piped bytes").hexdigest()


def test_a_django_file_is_hashed_through_its_own_chunks() -> None:
    """A File that cannot seek (a pipe) streams through its own chunks()."""
    read_end, write_end = os.pipe()
    data = b"chunked " * 100
    os.write(write_end, data)
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        hashing = HashingFile(File(pipe))
        assert b"".join(hashing.chunks(chunk_size=64)) == data
    assert hashing.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashing.bytes_read == len(data)
