"""Real storages with a call counter, and a signal recorder, for the tests.

The counting storages are plain subclasses of real storages: every call
still does the real work, it is only counted (``storage.calls["exists"]``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from blinker import Signal
from django.core.files import File
from django.core.files.storage import FileSystemStorage, InMemoryStorage

from storage_hooks import signals
from storage_hooks.storage import QueuedStorage

#: The Storage methods the counting storages count.
COUNTED = (
    "_open",
    "_save",
    "delete",
    "exists",
    "listdir",
    "size",
    "url",
    "path",
    "get_accessed_time",
    "get_created_time",
    "get_modified_time",
)

ALL_SIGNALS: tuple[Signal, ...] = (
    signals.saved_locally,
    signals.transfer_queued,
    signals.transfer_started,
    signals.transferred,
    signals.transfer_failed,
    signals.local_deleted,
)


def _counted(method: str) -> Any:
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Only calls from outside count, not a storage's calls to itself
        # (FileSystemStorage.exists calls path, for one).
        if not self._inside:
            self.calls[method] += 1
        self._inside += 1
        try:
            return getattr(super(CountingMixin, self), method)(*args, **kwargs)
        finally:
            self._inside -= 1

    counted.__name__ = method
    return counted


class CountingMixin:
    """Counts the calls of the methods in ``COUNTED`` in ``self.calls``."""

    calls: Counter[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls = Counter()
        self._inside = 0
        super().__init__(*args, **kwargs)

    def remote_calls(self) -> int:
        """All counted calls but ``url`` (which makes no request)."""
        return sum(n for method, n in self.calls.items() if method != "url")


for _method in COUNTED:
    setattr(CountingMixin, _method, _counted(_method))


class CountingFileSystemStorage(CountingMixin, FileSystemStorage):
    pass


class CountingInMemoryStorage(CountingMixin, InMemoryStorage):
    pass


def counting_s3(options: dict[str, Any]) -> Any:
    """django-storages' S3Storage, counting its calls."""
    from storages.backends.s3 import S3Storage

    class CountingS3Storage(CountingMixin, S3Storage):
        pass

    return CountingS3Storage(**options)


def counting_copy(storage: Any) -> Any:
    """A counting storage configured like ``storage`` (FS, memory or S3)."""
    if isinstance(storage, FileSystemStorage):
        return CountingFileSystemStorage(location=storage.location, base_url=storage.base_url)
    if isinstance(storage, InMemoryStorage):
        return CountingInMemoryStorage(base_url=storage.base_url)
    _, _, kwargs = storage.deconstruct()
    return counting_s3(kwargs)


class ReadLog:
    """A file wrapper that records the size asked for and got by each read."""

    def __init__(self, file: Any, log: list[tuple[int, int]]) -> None:
        self._file = file
        self._log = log

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._file.read(size)
        self._log.append((size, len(data)))
        return data

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._file, attr)


class ReadLoggingFileSystemStorage(FileSystemStorage):
    """A FileSystemStorage whose opened files log every read in ``reads``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads: list[tuple[int, int]] = []

    def _open(self, name: str, mode: str = "rb") -> File:  # type: ignore[type-arg]
        opened = super()._open(name, mode)
        return File(ReadLog(opened.file, self.reads), opened.name)


def fs_pair(local: Path, remote: Path, key: str, **kwargs: Any) -> QueuedStorage:
    """A FileSystem -> FileSystem QueuedStorage."""
    return QueuedStorage(
        local=FileSystemStorage(location=local, base_url="/local/"),
        remote=FileSystemStorage(location=remote, base_url="/remote/"),
        key=key,
        **kwargs,
    )


@contextmanager
def recording(sender: Any, *only: Signal) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Record ``(signal name, keywords)`` of the signals ``sender`` sends
    (all six, or ``only`` these) while the block runs."""
    events: list[tuple[str, dict[str, Any]]] = []
    with ExitStack() as stack:
        for signal in only or ALL_SIGNALS:

            def receiver(sender: Any, _name: str = str(signal.name), **kwargs: Any) -> None:
                events.append((_name, kwargs))

            stack.enter_context(signal.connected_to(receiver, sender=sender))
        yield events


def names_of(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in events]
