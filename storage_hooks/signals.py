"""The lifecycle signals of a file saved through a QueuedStorage.

They belong to storage_hooks' own blinker namespace; connect receivers to
them, don't send them. Every signal is sent with the ``QueuedStorage`` as
sender, so ``signal.connect(fn, sender=storage)`` scopes a receiver to one
storage. Receivers take ``(sender, **kwargs)`` and must accept keywords they
don't use: more may be added. Receivers run in the order they were connected
(a storage's hooks connect when it first saves or transfers).

What an exception in a receiver does:

* ``transfer_started``: it fails that attempt, which is retried like any
  other failure. This is the preprocessing point, so a broken preprocessor
  must not let the file go out half-done.
* every other signal: the exception is logged (logger ``storage_hooks``)
  and the remaining receivers still run. The event it reports has already
  happened and is recorded in the ledger; a receiver cannot undo it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from blinker import Namespace, Signal

logger = logging.getLogger("storage_hooks")

_signals = Namespace()

#: Sent by the saving process right after the local write, before the
#: transaction commits. Keywords: ``name``, ``size``, ``checksum``.
saved_locally = _signals.signal("saved_locally")

#: Sent when a transfer is handed to the runner (after commit), just before
#: the runner gets it, so always before the transfer runs. If the runner
#: cannot take it (broker down), that is logged and the file stays QUEUED.
#: Keywords: ``name``.
transfer_queued = _signals.signal("transfer_queued")

#: Sent by the worker before the copy starts; the file is still local.
#: Receivers may preprocess it (see :class:`~storage_hooks.hooks.Thumbnails`).
#: Keywords: ``name``, ``attempt`` (1 for the first).
#: A receiver that raises fails the attempt.
transfer_started = _signals.signal("transfer_started")

#: Sent by the worker once the remote copy is verified and recorded.
#: Keywords: ``name``, ``size``, ``checksum`` (SHA-256, hex), ``duration``
#: (seconds the copy took).
transferred = _signals.signal("transferred")

#: Sent by the worker after a failed attempt. Keywords: ``name``,
#: ``exception``, ``attempt``, ``will_retry`` (False once retries are
#: exhausted or the failure cannot be retried, e.g. a name conflict).
transfer_failed = _signals.signal("transfer_failed")

#: Sent after the local copy of a transferred file was removed.
#: Keywords: ``name``.
local_deleted = _signals.signal("local_deleted")

__all__ = [
    "local_deleted",
    "saved_locally",
    "transfer_failed",
    "transfer_queued",
    "transfer_started",
    "transferred",
]


def receivers_in_order(signal: Signal, sender: Any) -> list[Callable[..., Any]]:
    """The receivers of ``signal`` for ``sender``, in the order they were
    connected (blinker itself promises no order). So a receiver connected
    in ``AppConfig.ready()`` sees ``transferred`` before a hook connected
    later acts on it (DeleteLocal, sending ``local_deleted``)."""
    found = list(signal.receivers_for(sender))
    if len(found) < 2:
        return found
    rank: dict[Any, int] = {}
    for position, ref in enumerate(signal.receivers.values()):
        receiver = ref() if isinstance(ref, weakref.ref) else ref
        try:
            rank.setdefault(receiver, position)
        except TypeError:  # an unhashable callable: leave it where it is
            continue
    try:
        return sorted(found, key=lambda receiver: rank.get(receiver, len(rank)))
    except TypeError:
        return found


def send(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Call every receiver in connection order; what one raises propagates
    (``transfer_started``: it fails the attempt)."""
    if signal.receivers:
        for receiver in receivers_in_order(signal, sender):
            receiver(sender, **kwargs)


def send_robust(signal: Signal, sender: Any, **kwargs: Any) -> None:
    """Call every receiver in connection order; log, don't raise, what one
    of them raises."""
    if not signal.receivers:
        return
    for receiver in receivers_in_order(signal, sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            logger.exception(
                "A receiver of storage_hooks.signals.%s raised for %r",
                getattr(signal, "name", signal),
                kwargs.get("name"),
            )
