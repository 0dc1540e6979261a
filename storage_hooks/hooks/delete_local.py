from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import signals
from .base import Hook

if TYPE_CHECKING:
    from ..storage import QueuedStorage


class DeleteLocal(Hook):
    """Delete the local copy once the remote copy is proven.

    It listens to ``transferred``, which is sent only after the proof and
    only once per file, so it never deletes early and never twice. The
    deletion holds the file's ledger row, so a concurrent delete and save
    of the same name can never lose the newer file; a file deleted or
    replaced meanwhile is left alone. Sends ``local_deleted``.
    """

    def connect(self, storage: QueuedStorage) -> None:
        signals.transferred.connect(self.delete_local, sender=storage)

    def delete_local(
        self, storage: QueuedStorage, *, name: str, checksum: str | None = None, **kwargs: Any
    ) -> None:
        if storage.remove_local_copy(name, checksum=checksum):
            signals.send(signals.local_deleted, storage, name=name)
