"""Reading and writing the local copy: names, symlinks and checksums."""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import IO, Any

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name

CHUNK_SIZE = 1024 * 1024

#: The longest file name the ledger records.
NAME_MAX_LENGTH = 1024


def check_name(name: str) -> str:
    """Refuse names that could reach outside a storage's root."""
    if not isinstance(name, str):
        raise SuspiciousFileOperation(f"A file name must be a string, not {name!r}.")
    if "\x00" in name:
        raise SuspiciousFileOperation(f"The file name {name!r} contains a null byte.")
    if name and ".." not in name and name[0] not in "/\\" and name[-1] not in "./":
        return name  # the common case, on hot paths such as url(): nothing to refuse
    validate_file_name(name, allow_relative_path=True)
    return name


def check_inside_root(storage: Storage, name: str) -> None:
    """For a storage on the file system, refuse a name whose real path (after
    following symlinks) lies outside the storage's root."""
    location = getattr(storage, "location", None)
    if not location:
        return
    try:
        path = storage.path(name)
    except NotImplementedError:
        return
    root = os.path.realpath(location)
    real = os.path.realpath(path)
    if real != root and not real.startswith(root + os.sep):
        raise SuspiciousFileOperation(
            f"{name!r} leads outside the storage's root {root!r} through a symlink; "
            "it is neither read nor deleted."
        )


def digest(storage: Storage, name: str) -> tuple[str, int]:
    """SHA-256 (hex) and size of a stored file, read once, in chunks,
    refusing a symlink that leads outside the storage's root."""
    sha = hashlib.sha256()
    size = 0
    with open_binary(storage, name) as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def sha256_of(storage: Storage, name: str) -> str:
    return digest(storage, name)[0]


class HashingFile(File):
    """A File that hashes the bytes read through it, each byte once.

    Readers such as botocore seek and read a file several times (to size it,
    to sign it, to send it); the hash grows only when a read reaches past
    what has been hashed, contiguously from position 0, so a re-read costs
    nothing and the file need not be read again just to hash it.
    ``hexdigest`` is None until every byte has been seen (then the caller
    hashes the file on its own).
    """

    def __init__(self, file: Any, name: str | None = None) -> None:
        super().__init__(file, name)
        self._sha = hashlib.sha256()
        self._pos = 0  # where the next read starts, in the file's own units
        self._hashed = 0  # units hashed, contiguously from 0
        self._bytes = 0  # bytes hashed
        self._eof = False

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        assert self.file is not None
        pos = self.file.seek(offset, whence)
        if pos is None:  # some file-likes return nothing
            pos = self.file.tell()
        self._pos = pos
        return pos

    def read(self, size: int = -1) -> bytes:
        assert self.file is not None
        raw = self.file.read(size)
        start, end = self._pos, self._pos + len(raw)
        self._pos = end
        if start <= self._hashed < end:
            fresh = raw[self._hashed - start :]
            data = fresh.encode() if isinstance(fresh, str) else fresh
            self._sha.update(data)
            self._bytes += len(data)
            self._hashed = end
        elif not raw and size != 0 and start == self._hashed:
            self._eof = True
        return raw.encode() if isinstance(raw, str) else raw

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        self.seek(0)
        while chunk := self.read(chunk_size or CHUNK_SIZE):
            yield chunk

    @property
    def bytes_read(self) -> int:
        """Bytes hashed so far (the file's size once ``hexdigest`` is set)."""
        return self._bytes

    def hexdigest(self) -> str | None:
        if not self._eof:
            # The reader may have stopped at the last byte without asking
            # for more: compare with the file's end.
            try:
                assert self.file is not None
                here = self.file.tell()
                self._eof = self.file.seek(0, os.SEEK_END) == self._hashed
                self.file.seek(here)
            except (AttributeError, OSError, ValueError):
                return None
        return self._sha.hexdigest() if self._eof else None


def hash_upload(content: Any) -> tuple[str, int] | None:
    """Hash an upload Django keeps in a temporary file (it will be moved,
    not read, by a FileSystemStorage). None for any other content."""
    path_of = getattr(content, "temporary_file_path", None)
    if path_of is None:
        return None
    sha = hashlib.sha256()
    size = 0
    with open(path_of(), "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def open_binary(storage: Storage, name: str) -> IO[bytes]:
    check_inside_root(storage, name)
    return storage.open(name, "rb")


def free_name(
    name: str,
    limit: int,
    taken: Callable[[str], bool],
    alternative: Callable[[str, str], str],
) -> str:
    """Django's way to find a free name (``root_abc1234.ext``, shortened to
    ``limit`` characters), with ``taken`` saying what "not free" means."""
    name = name.replace("\\", "/")
    dir_name, file_name = posixpath.split(name)
    ext = "".join(PurePosixPath(file_name).suffixes)
    root = file_name.removesuffix(ext)
    candidate = name
    while len(candidate) > limit or taken(candidate):
        candidate = posixpath.join(dir_name, alternative(root, ext))
        excess = len(candidate) - limit
        if excess > 0:
            root = root[:-excess]
            if not root:
                raise SuspiciousFileOperation(
                    f"No free name for {name!r} fits in {limit} characters; allow a longer "
                    "max_length on the field."
                )
            candidate = posixpath.join(dir_name, alternative(root, ext))
    return candidate
