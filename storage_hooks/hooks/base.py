from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.deconstruct import deconstructible

if TYPE_CHECKING:
    from ..storage import QueuedStorage


@deconstructible
class Hook:
    """Base class of hooks.

    ``connect(storage)`` is called once for each storage the hook is given
    to; connect receivers there, scoped with ``sender=storage``. Hook
    instances are deconstructible, so a storage using them can be written
    into a migration.

    A receiver must be kept alive by the hook (blinker holds receivers
    weakly): connect bound methods of the hook, as the built-in hooks do.
    """

    #: Receivers that are methods of a hook run after the other receivers
    #: of a signal (see :mod:`storage_hooks.signals`).
    is_storage_hook = True

    def connect(self, storage: QueuedStorage) -> None:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.deconstruct() == other.deconstruct()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        _, args, kwargs = self.deconstruct()  # type: ignore[attr-defined]
        parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"{type(self).__name__}({', '.join(parts)})"
