"""The lifecycle signals of a file saved through a QueuedStorage.

They belong to storage_hooks' own blinker namespace; connect receivers to
them, don't send them. Every signal is sent with the ``QueuedStorage`` as
sender, so ``signal.connect(fn, sender=storage)`` scopes a receiver to one
storage. Receivers take ``(sender, **kwargs)`` and must accept keywords they
don't use: more may be added.

They are plain blinker signals sent with blinker's own ``send``, so
blinker's API works as documented (``muted()``, ``connected_to()``, weak
receivers). Two things are set through blinker's seams:

* **Order**: receivers are stored in an insertion-ordered set (blinker's
  ``set_class``), so they run in the order they were connected: those
  connected for any sender first, then those of the sending storage; the
  receivers of hooks (methods of ``storage_hooks.hooks.Hook`` objects) run
  after all others, in hook order. So a receiver of ``transferred`` can
  still read the local copy before ``DeleteLocal`` removes it.
* **Errors** (``receivers_for`` wraps each receiver of a robust signal):

  * ``transfer_started``: an exception fails that attempt, which is retried
    like any other failure (``Rejected`` refuses the file for good). This
    is the preprocessing point, so a broken preprocessor must not let the
    file go out half-done.
  * every other signal: the exception is logged (logger ``storage_hooks``)
    and the remaining receivers still run. The event it reports has already
    happened and is recorded in the ledger; a receiver cannot undo it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Iterator, MutableSet
from typing import Any

from blinker import ANY, NamedSignal, Namespace

logger = logging.getLogger("storage_hooks")


class _OrderedSet(MutableSet[Any]):
    """A set that iterates in insertion order (blinker's ``set_class``)."""

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items: dict[Any, None] = dict.fromkeys(items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Any) -> None:
        self._items[item] = None

    def discard(self, item: Any) -> None:
        self._items.pop(item, None)

    def copy(self) -> _OrderedSet:
        return _OrderedSet(self._items)

    def __or__(self, other: Iterable[Any]) -> _OrderedSet:
        return _OrderedSet([*self._items, *other])


class LifecycleSignal(NamedSignal):
    """A blinker signal whose receivers run in connection order and, unless
    ``propagate``, whose receivers' exceptions are logged, not raised."""

    set_class = _OrderedSet  # type: ignore[assignment]

    def __init__(self, name: str, doc: str | None = None, *, propagate: bool = False) -> None:
        super().__init__(name, doc)
        self.propagate = propagate

    def receivers_for(self, sender: Any) -> Generator[Callable[..., Any], None, None]:
        # Hooks' receivers run after the others: a receiver of
        # ``transferred`` can still read the local copy that DeleteLocal
        # then removes, and Thumbnails see what receivers of
        # ``transfer_started`` made of the original.
        found = list(super().receivers_for(sender))
        ordered = [r for r in found if not _of_hook(r)] + [r for r in found if _of_hook(r)]
        for receiver in ordered:
            yield receiver if self.propagate else self._guarded(receiver)

    def _guarded(self, receiver: Callable[..., Any]) -> Callable[..., Any]:
        def call(sender: Any, /, **kwargs: Any) -> Any:
            try:
                return receiver(sender, **kwargs)
            except Exception:
                logger.exception(
                    "A receiver of storage_hooks.signals.%s raised for %r",
                    self.name,
                    kwargs.get("name"),
                )
                return None

        return call


def _of_hook(receiver: Any) -> bool:
    return bool(getattr(getattr(receiver, "__self__", None), "is_storage_hook", False))


class _Namespace(Namespace):
    def signal(self, name: str, doc: str | None = None, *, propagate: bool = False) -> Any:
        if name not in self:
            self[name] = LifecycleSignal(name, doc, propagate=propagate)
        return self[name]


#: The library's own namespace (not blinker's default one).
_signals = _Namespace()

#: Sent by the saving process right after the local write, before the
#: transaction commits. Keywords: ``name``, ``size``, ``checksum``.
saved_locally = _signals.signal("saved_locally")

#: Sent when a transfer is handed to the runner (after commit), just before
#: the runner gets it, so always before the transfer runs. If the runner
#: cannot take it (broker down), that is logged and the file stays QUEUED.
#: Keywords: ``name``.
transfer_queued = _signals.signal("transfer_queued")

#: Sent by the worker before the copy starts (after the storage's
#: preprocessors ran); the file is still local. Receivers may change it with
#: ``storage.replace_local(name, content)`` or refuse it by raising
#: ``storage_hooks.exceptions.Rejected``. Keywords: ``name``, ``attempt``
#: (1 for the first). A receiver that raises fails the attempt.
transfer_started = _signals.signal("transfer_started", propagate=True)

#: Sent by the worker once the remote copy is proven equal and recorded.
#: Keywords: ``name``, ``size``, ``checksum`` (SHA-256, hex, of the bytes on
#: the remote), ``duration`` (seconds the copy took), ``proof`` (how the copy
#: was proven: "checksum", "readback" or "size").
transferred = _signals.signal("transferred")

#: Sent by the worker after a failed attempt. Keywords: ``name``,
#: ``exception``, ``attempt``, ``will_retry`` (False once retries are
#: exhausted or the failure cannot be retried, e.g. a name conflict or
#: ``Rejected``).
transfer_failed = _signals.signal("transfer_failed")

#: Sent after the local copy of a transferred file was removed.
#: Keywords: ``name``.
local_deleted = _signals.signal("local_deleted")

__all__ = [
    "ANY",
    "LifecycleSignal",
    "local_deleted",
    "saved_locally",
    "transfer_failed",
    "transfer_queued",
    "transfer_started",
    "transferred",
]


def send(signal: Any, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` with blinker's own ``send`` (muting, order and the
    signal's error policy apply)."""
    signal.send(sender, **kwargs)


#: The same: the error policy belongs to the signal.
send_robust = send
