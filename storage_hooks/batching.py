"""Many small files per message: both ends of a batch.

**Publishing.** Every save registers an ``on_commit`` callback, as a lone
save always did; the name also waits in a buffer of the saving thread, per
ledger database. The first of those callbacks to run when the transaction
commits hands every name of the buffer to the runner, grouped by storage and
host (:meth:`Runner.enqueue_many`: one message per ``BATCH_SIZE`` names with
Celery); the callbacks after it find the buffer empty. A lone save in
autocommit is handed over at once, alone: nothing waits for company.

Why a name cannot be left behind: a name is in the buffer only if its save
registered a callback in the same transaction, and that callback is dropped
only if the save is rolled back, row and all. What a rolled-back transaction
left in the buffer is dropped by the next save; the names of a rolled-back
savepoint ride along with the rest of their transaction, and their messages
find no QUEUED row and are skipped, as a duplicate delivery is.

**Running.** :func:`run_batch` makes one attempt at each file of a message,
``BATCH_THREADS`` at a time, through :func:`~storage_hooks.transfer.run_transfer`:
every file is claimed, preprocessed, signalled, proven and recorded on its
own, exactly as when it comes alone; only the message is shared.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from django.db import DatabaseError, connections, transaction

from . import ledger
from .conf import conf
from .transfer import Outcome, run_transfer

if TYPE_CHECKING:
    from .storage import QueuedStorage

#: Per database alias: the names waiting for its commit, per storage and host.
Buffer = dict[tuple[str, str | None], tuple["QueuedStorage", list[str]]]
_local = threading.local()


def _buffer(using: str) -> Buffer:
    buffers: dict[str, Buffer] = _local.__dict__.setdefault("buffers", {})
    return buffers.setdefault(using, {})


def enqueue_on_commit(storage: QueuedStorage, name: str, host: str | None) -> None:
    """Hand ``name`` to the runner once the ledger's transaction commits,
    together with the other names queued by the same transaction."""
    using = ledger.db_alias()
    if not transaction.get_connection(using).in_atomic_block:
        storage.enqueue(name, host=host)
        return
    buffer = _buffer(using)
    if buffer and not _flush_pending(using):
        buffer.clear()  # left by a transaction that rolled back
    buffer.setdefault((storage.key, host), (storage, []))[1].append(name)
    transaction.on_commit(partial(flush, using), using=using)


def _flush_pending(using: str) -> bool:
    """Whether a :func:`flush` waits for this transaction's commit.
    Django's ``run_on_commit`` holds ``(savepoint ids, callback, robust)``
    entries (Django 4.2-6.1); a rollback empties it."""
    for entry in transaction.get_connection(using).run_on_commit:
        func = entry[1]
        if getattr(func, "func", None) is flush:
            return True
    return False


def flush(using: str) -> None:
    """Hand every name waiting for ``using``'s commit to the runner."""
    buffer = _buffer(using)
    taken = list(buffer.items())
    buffer.clear()
    for (_, host), (storage, names) in taken:
        storage.enqueue_many(list(dict.fromkeys(names)), host=host)


def chunks(names: list[str], size: int) -> Iterator[list[str]]:
    """``names`` in lists of at most ``size`` (all in one for size < 1)."""
    step = size if size >= 1 else len(names) or 1
    for start in range(0, len(names), step):
        yield names[start : start + step]


# -- the worker's end ---------------------------------------------------------


class BatchResult:
    """What :func:`run_batch` did: each file's outcome, the files whose
    attempt could not reach the ledger (nothing recorded: send them again),
    and the first unexpected error (raised after every file had its turn)."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[str, Outcome]] = []
        self.unreachable: list[str] = []
        self.error: BaseException | None = None


def run_batch(key: str, names: list[str], threads: int | None = None) -> BatchResult:
    """One attempt at each of ``names`` of the storage ``key``, ``threads``
    (default ``BATCH_THREADS``) at a time."""
    result = BatchResult()
    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in dict.fromkeys(names):
        work.put(name)
    count = max(1, min(int(threads or conf.BATCH_THREADS), len(names)))

    def attempt_each() -> None:
        while True:
            try:
                name = work.get_nowait()
            except queue.Empty:
                return
            try:
                result.outcomes.append((name, run_transfer(key, name)))
            except DatabaseError:
                result.unreachable.append(name)
            except Exception as exc:
                result.error = result.error or exc

    def in_own_thread() -> None:
        try:
            attempt_each()
        finally:
            connections.close_all()  # this thread's; the worker's own stay open

    if count == 1:
        attempt_each()
        return result
    started = [threading.Thread(target=in_own_thread, daemon=True) for _ in range(count)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return result
