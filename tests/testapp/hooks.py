"""Hooks the tests (and the docs' example) use, importable by dotted path."""

from __future__ import annotations

import logging
from typing import Any

from storage_hooks import signals
from storage_hooks.hooks import Hook

log = logging.getLogger(__name__)


class LogSlowTransfers(Hook):
    """Log every transfer that took longer than ``seconds`` (the example of
    "Writing a hook" in the docs)."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds

    def connect(self, storage: Any) -> None:
        signals.transferred.connect(self.check, sender=storage)

    def check(self, storage: Any, *, name: str, duration: float, **kwargs: Any) -> None:
        if duration > self.seconds:
            log.warning("%s took %.1fs to reach the remote", name, duration)


class Recorder(Hook):
    """Records ``(storage key, name)`` of every transferred file, and the
    storages it was connected to."""

    def __init__(self) -> None:
        self.connected: list[Any] = []
        self.seen: list[tuple[str, str]] = []

    def connect(self, storage: Any) -> None:
        self.connected.append(storage)
        signals.transferred.connect(self.on_transferred, sender=storage)

    def on_transferred(self, storage: Any, *, name: str, **kwargs: Any) -> None:
        self.seen.append((storage.key, name))


#: A hook instance, for ``hooks=["tests.testapp.hooks.recorder"]``.
recorder = Recorder()
