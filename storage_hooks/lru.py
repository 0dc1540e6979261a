"""A small bounded, expiring, thread-safe memory (FallbackStorage's url memory)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class UrlMemory:
    """Where each name was found: a bounded LRU of backend indexes (-1: in no
    backend) whose entries expire after ``ttl`` seconds (None: never)."""

    def __init__(self, size: int, ttl: float | None) -> None:
        self.size, self.ttl = size, ttl
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> int | None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or (self.ttl is not None and time.monotonic() - entry[1] >= self.ttl):
                self._entries.pop(name, None)
                return None
            self._entries.move_to_end(name)
            return entry[0]

    def put(self, name: str, index: int) -> None:
        with self._lock:
            self._entries[name] = (index, time.monotonic())
            self._entries.move_to_end(name)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._entries.clear()
            else:
                self._entries.pop(name, None)
