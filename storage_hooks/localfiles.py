"""The local copy on a file system: written, read and removed without ever
leaving the storage's root, and hashed while it is written.

A ``FileSystemStorage`` resolves a name to a path and opens it, so a
directory swapped for a symlink between a check and the open sends the
write elsewhere. Here every operation walks the name one directory at a
time, holding each directory open (a descriptor), and checks where the
opened directory really is (``/proc/self/fd`` on Linux) before going on; the
file itself is then created, linked, renamed or removed relative to that
descriptor. What the check saw is what is written: no window for a swap.

Files are written under a private temporary name in their directory and
moved into place by :func:`link_into_place` (refuses an existing name) or
:func:`replace_into_place` (atomic replace), so no reader and no other
writer ever sees half a file under a real name.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage

from .names import NAME_MAX_LENGTH, canonical, check_name

__all__ = [
    "CHUNK_SIZE",
    "NAME_MAX_LENGTH",
    "HashingFile",
    "Written",
    "canonical",
    "check_inside_root",
    "check_name",
    "digest",
    "hash_upload",
    "is_local_fs",
    "link_into_place",
    "open_binary",
    "open_for_reading",
    "replace_into_place",
    "sha256_of",
    "unlink",
    "write_private",
]

CHUNK_SIZE = 1024 * 1024

#: Prefix of the private names files are written under before they are moved
#: into place (``sync`` never adopts them).
TEMP_PREFIX = ".storage_hooks-"

_PROC_FD = "/proc/self/fd"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


#: The file operations a FileSystemStorage subclass may make its own (an
#: encrypting storage's _save and _open, a logging one's _open, ...).
_WRITING = ("_save", "delete", "path")
_READING = ("_open", "path")


def is_local_fs(storage: Storage, *, reading: bool = False) -> bool:
    """Whether this module's operations may stand for ``storage``'s own: a
    ``FileSystemStorage``, or a subclass that keeps its file operations for
    writing (or, with ``reading``, for reading). A subclass with operations
    of its own is used through them."""
    if not isinstance(storage, FileSystemStorage):
        return False
    cls = type(storage)
    return all(
        getattr(cls, op) is getattr(FileSystemStorage, op)
        for op in (_READING if reading else _WRITING)
    )


def _root(storage: Storage) -> str:
    return os.path.abspath(storage.location)  # type: ignore[attr-defined]


def _inside(root_real: str, real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


_proc: list[bool] = []


def _has_proc() -> bool:
    """Whether this system tells where an open descriptor is (asked once)."""
    if not _proc:
        _proc.append(os.path.isdir(_PROC_FD))
    return _proc[0]


def _where(fd: int) -> str | None:
    """The real path of an open file or directory, where the OS tells it."""
    try:
        return os.readlink(f"{_PROC_FD}/{fd}")
    except OSError:
        return None


def _refuse(name: str) -> SuspiciousFileOperation:
    return SuspiciousFileOperation(
        f"{name!r} leads outside the storage's root through a symlink; it is neither read, "
        "written nor deleted."
    )


def _check_fd(fd: int, root_real: str, name: str) -> None:
    """Refuse an opened file or directory that is not inside the root (the
    caller closes ``fd``)."""
    real = _where(fd)
    if real is not None and not _inside(root_real, real):
        raise _refuse(name)


@contextmanager
def _directory(storage: Storage, name: str, *, create: bool) -> Iterator[tuple[int, str]]:
    """``(descriptor of the directory of name, base name)``, each directory
    opened relative to the one before and checked to be inside the root."""
    root = _root(storage)
    try:
        fd = os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            raise
        os.makedirs(root, exist_ok=True)
        fd = os.open(root, _DIR_FLAGS)
    proc = _has_proc()
    # Where the opened root really is (the root itself may be a symlink).
    root_real = (_where(fd) if proc else None) or os.path.realpath(root)
    parts = name.split("/")
    # Without /proc the opened directory cannot be located: follow no
    # symlink at all then.
    follow = 0 if proc else _NOFOLLOW
    try:
        for part in parts[:-1]:
            next_fd = _enter(storage, fd, part, name, follow=follow, create=create)
            os.close(fd)
            fd = next_fd
            _check_fd(fd, root_real, name)
        yield fd, parts[-1]
    finally:
        with suppress(OSError):
            os.close(fd)


def _enter(storage: Storage, fd: int, part: str, name: str, *, follow: int, create: bool) -> int:
    """Open the directory ``part`` of the directory ``fd`` (made if missing
    and ``create``)."""
    try:
        try:
            return os.open(part, _DIR_FLAGS | follow, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        with suppress(FileExistsError):
            os.mkdir(part, 0o777, dir_fd=fd)
        made = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _is_link(fd, part)):
            raise _refuse(name) from None
        raise
    mode = getattr(storage, "directory_permissions_mode", None)
    if mode is not None:
        os.fchmod(made, mode)
    return made


def _is_link(fd: int, part: str) -> bool:
    try:
        return os.path.islink(os.readlink(f"{_PROC_FD}/{fd}") + "/" + part)
    except OSError:
        return True


@dataclass
class Written:
    """A file written under a private name, not yet in place."""

    storage: Storage
    name: str
    temp: str
    size: int
    checksum: str


def _chunks(content: Any) -> Iterator[bytes]:
    if hasattr(content, "chunks"):
        with suppress(AttributeError, OSError, ValueError):
            if content.seekable():
                content.seek(0)
        source: Any = content.chunks()
    else:
        source = _reads(content)
    for chunk in source:
        yield chunk.encode() if isinstance(chunk, str) else chunk


def _reads(content: Any) -> Iterator[bytes | str]:
    """``content.read()`` in chunks until an empty one, of either type (a
    text stream ends with ``""``, not ``b""``)."""
    while chunk := content.read(CHUNK_SIZE):
        yield chunk


def write_private(storage: Storage, name: str, content: Any) -> Written:
    """Write ``content`` beside ``name`` under a private name (directories
    created as needed), hashing each byte once. Reads the content through
    its ``chunks()``; a Django temporary upload is moved, not copied."""
    name = canonical(name)
    temp = TEMP_PREFIX + secrets.token_hex(8)
    sha = hashlib.sha256()
    size = 0
    with _directory(storage, name, create=True) as (dir_fd, _):
        upload = getattr(content, "temporary_file_path", None)
        fd = -1
        if upload is not None:
            checksum, size = _hash_path(upload())
            try:
                os.rename(upload(), temp, dst_dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            else:
                fd = os.open(temp, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
                _permissions(storage, fd)
                os.close(fd)
                return Written(storage, name, temp, size, checksum)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp, flags, 0o666, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                for chunk in _chunks(content):
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            _permissions(storage, fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        finally:
            os.close(fd)
    return Written(storage, name, temp, size, sha.hexdigest())


def create_private(storage: Storage, name: str) -> tuple[IO[bytes], Written]:
    """A private file beside ``name``, open for writing (for ``open(name,
    "w")``): fill it, close it, then :func:`seal` and put it in place."""
    name = canonical(name)
    temp = TEMP_PREFIX + secrets.token_hex(8)
    with _directory(storage, name, create=True) as (dir_fd, _):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp, flags, 0o666, dir_fd=dir_fd)
        _permissions(storage, fd)
    return os.fdopen(fd, "wb"), Written(storage, name, temp, 0, "")


def seal(written: Written) -> Written:
    """Record the size and SHA-256 of a private file that was filled."""
    with _directory(written.storage, written.name, create=False) as (dir_fd, _):
        fd = os.open(written.temp, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as fh:
        written.checksum, written.size = _hash_stream(fh)
    return written


def _permissions(storage: Storage, fd: int) -> None:
    mode = getattr(storage, "file_permissions_mode", None)
    if mode is not None:
        os.fchmod(fd, mode)


def link_into_place(written: Written, name: str | None = None) -> None:
    """Give the written file its real name (``written.name``, or ``name``);
    ``FileExistsError`` if the name exists: nothing is overwritten."""
    target = canonical(name or written.name)
    with _directory(written.storage, target, create=True) as (dir_fd, base):
        if posixpath.dirname(target) != posixpath.dirname(written.name):
            raise ValueError("A written file stays in its directory.")
        os.link(written.temp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        os.unlink(written.temp, dir_fd=dir_fd)
    written.name = target


def replace_into_place(written: Written) -> None:
    """Atomically replace the file ``written.name`` by the written one."""
    with _directory(written.storage, written.name, create=True) as (dir_fd, base):
        os.replace(written.temp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def discard(written: Written) -> None:
    """Remove a written file that will not be put in place."""
    with (
        suppress(FileNotFoundError),
        _directory(written.storage, written.name, create=False) as (
            dir_fd,
            _,
        ),
    ):
        os.unlink(written.temp, dir_fd=dir_fd)


def unlink(storage: Storage, name: str) -> bool:
    """Remove the local file ``name`` (a symlink itself, never its target);
    False if there was none."""
    name = canonical(name)
    if not is_local_fs(storage):
        check_inside_root(storage, name)
        if not storage.exists(name):
            return False
        storage.delete(name)
        return True
    try:
        with _directory(storage, name, create=False) as (dir_fd, base):
            os.unlink(base, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        raise
    return True


def open_for_reading(storage: Storage, name: str) -> IO[bytes]:
    """Open the local file ``name`` for reading; what is opened is checked to
    be inside the root (a symlink inside the root is followed)."""
    name = canonical(name)
    if not is_local_fs(storage, reading=True):
        check_inside_root(storage, name)
        return storage.open(name, "rb")
    with _directory(storage, name, create=False) as (dir_fd, base):
        follow = 0 if _has_proc() else _NOFOLLOW
        try:
            fd = os.open(base, os.O_RDONLY | follow | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refuse(name) from None
            raise
        try:
            _check_fd(fd, os.path.realpath(_root(storage)), name)
        except SuspiciousFileOperation:
            os.close(fd)
            raise
    return os.fdopen(fd, "rb")


def check_inside_root(storage: Storage, name: str) -> None:
    """For a storage on the file system, refuse a name whose real path (after
    following symlinks) lies outside the storage's root. (A check before an
    operation of another library; this module's own operations check what
    they opened instead.)"""
    location = getattr(storage, "location", None)
    if not location:
        return
    try:
        path = storage.path(name)
    except NotImplementedError:
        return
    root = os.path.realpath(location)
    if not _inside(root, os.path.realpath(path)):
        raise _refuse(name)


def _hash_path(path: str) -> tuple[str, int]:
    with open(path, "rb") as fh:
        return _hash_stream(fh)


def _hash_stream(fh: IO[bytes]) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: fh.read(CHUNK_SIZE), b""):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size


def digest(storage: Storage, name: str) -> tuple[str, int]:
    """SHA-256 (hex) and size of a stored file, read once, in chunks,
    refusing a symlink that leads outside the storage's root."""
    with open_binary(storage, name) as fh:
        return _hash_stream(fh)


def sha256_of(storage: Storage, name: str) -> str:
    return digest(storage, name)[0]


def open_binary(storage: Storage, name: str) -> IO[bytes]:
    """Open ``name`` of ``storage`` for reading, never outside its root."""
    if is_local_fs(storage, reading=True):
        return open_for_reading(storage, name)
    check_inside_root(storage, name)
    return storage.open(name, "rb")


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
            self._fresh(fresh.encode() if isinstance(fresh, str) else fresh)
            self._hashed = end
        elif not raw and size != 0 and start == self._hashed:
            self._eof = True
        return raw.encode() if isinstance(raw, str) else raw

    def _fresh(self, data: bytes) -> None:
        """Bytes read for the first time (subclasses hash more)."""
        self._sha.update(data)
        self._bytes += len(data)

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        inner = getattr(self.file, "chunks", None)
        if callable(inner):
            # A Django File: its own chunks() (which may transform, or
            # stream what cannot seek), hashed as they go.
            self._sha, self._bytes = hashlib.sha256(), 0
            for chunk in inner(chunk_size) if chunk_size else inner():
                data = chunk.encode() if isinstance(chunk, str) else chunk
                self._fresh(data)
                yield data
            self._hashed, self._eof = self._bytes, True
            return
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
    """Hash an upload Django keeps in a temporary file. None for any other
    content."""
    path_of = getattr(content, "temporary_file_path", None)
    if path_of is None:
        return None
    return _hash_path(path_of())


def free_name(
    name: str,
    limit: int,
    taken: Callable[[str], bool],
    alternative: Callable[[str, str], str],
) -> str:
    """Django's way to find a free name (``root_abc1234.ext``, shortened to
    ``limit`` characters), with ``taken`` saying what "not free" means."""
    dir_name, file_name = posixpath.split(name)
    stem, ext = _split_ext(file_name)
    candidate = name
    for _ in range(100):
        if len(candidate) <= limit and not taken(candidate):
            return candidate
        candidate = posixpath.join(dir_name, alternative(stem, ext))
        excess = len(candidate) - limit
        if excess > 0:
            stem = stem[:-excess]
            if not stem:
                break
            candidate = posixpath.join(dir_name, alternative(stem, ext))
    raise SuspiciousFileOperation(
        f'Storage can not find an available filename for "{name}". Please make sure that the '
        'corresponding file field allows sufficient "max_length".'
    )


def _split_ext(file_name: str) -> tuple[str, str]:
    # As Django's get_available_name: the extension is every suffix
    # (".tar.gz"), so alternatives read "archive_abc1234.tar.gz".
    ext = "".join(PurePosixPath(file_name).suffixes)
    return file_name.removesuffix(ext), ext
