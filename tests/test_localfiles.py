"""The local copy (storage_hooks.localfiles): names, symlinks, checksums."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from storage_hooks.localfiles import (
    CHUNK_SIZE,
    HashingFile,
    check_inside_root,
    check_name,
    hash_upload,
    open_binary,
    sha256_of,
)


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
    import os
    import threading
    import time

    from storage_hooks.localfiles import discard, link_into_place, write_private

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
