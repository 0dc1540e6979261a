"""Transfers in the calling process, when the transaction commits."""

from __future__ import annotations

from ..transfer import run_transfer
from . import Runner


class ImmediateRunner(Runner):
    """Runs the transfer at once, and its retries at once, without waiting.

    For tests, development, and sites that can afford the wait.
    """

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        while run_transfer(key, name).retry:
            pass
