from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import signals
from ..localfiles import check_inside_root
from .base import Hook

if TYPE_CHECKING:
    from ..storage import QueuedStorage


class DeleteLocal(Hook):
    """Delete the local copy once the remote copy is verified.

    It listens to ``transferred``, which is sent only after verification
    and only once per file, so it never deletes early and never twice.
    Sends ``local_deleted``.
    """

    def connect(self, storage: QueuedStorage) -> None:
        signals.transferred.connect(self.delete_local, sender=storage)

    def delete_local(self, storage: QueuedStorage, *, name: str, **kwargs: Any) -> None:
        check_inside_root(storage.local, name)  # never deletes through a symlink
        storage.local.delete(name)
        signals.send_robust(signals.local_deleted, storage, name=name)
