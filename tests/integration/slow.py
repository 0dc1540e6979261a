"""A FileSystemStorage whose reads take time, to catch a transfer mid-copy."""

from __future__ import annotations

import io
import time
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage


class SlowFile(io.FileIO):
    """A file opened for reading that delivers ``rate`` bytes per second."""

    def __init__(self, path: str, rate: int) -> None:
        super().__init__(path, "rb")
        self.rate = rate

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        time.sleep(len(data or b"") / self.rate)
        return data or b""

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer) or 0
        time.sleep(count / self.rate)
        return count


class SlowFileSystemStorage(FileSystemStorage):
    """``bytes_per_second=0`` (the default) reads at full speed."""

    def __init__(self, *, bytes_per_second: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bytes_per_second = bytes_per_second

    def _open(self, name: str, mode: str = "rb") -> File:  # type: ignore[type-arg]
        if not self.bytes_per_second or mode != "rb":
            return super()._open(name, mode)
        return File(SlowFile(self.path(name), self.bytes_per_second))
