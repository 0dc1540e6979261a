"""Preprocess: hooks that transform, or refuse, the original before it leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Hook

if TYPE_CHECKING:
    from django.core.files import File

    from ..storage import QueuedStorage


class Preprocess(Hook):
    """Base class of hooks that change the original file before its transfer.

    Implement :meth:`process`. The transfer calls it in the worker, at
    ``transfer_started`` (just before that signal's receivers run), once per
    file, in the order of the storage's ``hooks``; each preprocessor gets
    what the one before it returned. When the chain has run, the library
    replaces the local copy with the result (written aside, then moved into
    place) and records its size and SHA-256 in the ledger, so the transfer
    is proven against the processed bytes. A retry after the chain succeeded
    does not run it again.

    Raise :class:`storage_hooks.exceptions.Rejected` to refuse the file for
    good; any other exception fails the attempt (it is retried, and the
    local original is left as it was).
    """

    def connect(self, storage: QueuedStorage) -> None:
        # Nothing to connect: the transfer runs preprocessors itself, as a
        # step of its own, so that their order and "once per file" hold.
        return None

    def process(self, storage: QueuedStorage, name: str, file: File) -> Any:
        """Return the new content (a ``File``, ``ContentFile`` or ``bytes``)
        for the file ``name``, or ``None`` to keep it as it is. ``file`` is
        open for reading, at position 0."""
        raise NotImplementedError
