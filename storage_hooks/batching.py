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
``BATCH_THREADS`` at a time, with the steps of
:func:`~storage_hooks.transfer.run_transfer`: every file is preprocessed,
signalled, proven, retried and cleaned up on its own, exactly as when it
comes alone. What is shared are the statements: the files are claimed
several at a time with one statement, and the copies proven meanwhile are
recorded with one (:class:`_Batch`), each row still only by the attempt
that claimed it.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, close_old_connections, connections, transaction

from . import ledger
from .conf import conf
from .registry import get_storage
from .transfer import Outcome, Proven, attempt, settle

logger = logging.getLogger("storage_hooks")

if TYPE_CHECKING:
    from .models import StoredFile
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
    names = list(dict.fromkeys(names))
    count = max(1, min(int(threads or conf.BATCH_THREADS), len(names)))
    try:
        storage = get_storage(key)
        # Before any claim, as in run_transfer: a hook that cannot be built
        # must not leave the files TRANSFERRING.
        storage.connect_hooks()
    except Exception as exc:
        result.error = exc
        return result
    batch = _Batch(storage, names, count, result)
    if count == 1:
        batch.work()
        return result

    def in_pool_thread() -> None:
        _usable_connections()
        try:
            batch.work()
        finally:
            _settle_connections()

    futures = [_pool().submit(in_pool_thread) for _ in range(count)]
    wait(futures)  # every thread's share, whatever one of them raised
    for done in futures:
        if (raised := done.exception()) is not None and result.error is None:
            result.error = raised
    return result


def _usable_connections() -> None:
    """Before a batch, in a kept thread: the thread's database connections
    as a request would find them (closed past CONN_MAX_AGE), and any that
    broke while the thread was idle (a server restart) replaced."""
    close_old_connections()
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()


def _settle_connections() -> None:
    """After a batch: connections closed as after a request; one left in a
    transaction (a receiver that entered ``atomic`` and never left) is
    closed, so rolled back, and dropped: the next batch gets a new one."""
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            logger.error(
                "A batch thread's connection %r was left in a transaction (by a receiver or "
                "hook); it is rolled back and closed.",
                connection.alias,
            )
            connection.close()
            del connections[connection.alias]
    close_old_connections()


#: Threads of this process that work on batches, kept between messages: a
#: storage's per-thread clients (django-storages builds a boto3 resource in
#: each thread that calls it) are built once, not for every message.
#: Threads are added while every one is busy (batches of concurrent tasks),
#: up to ``_POOL_MAX``.
_POOL_MAX = 256
_pools: list[ThreadPoolExecutor] = []
_pools_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child makes its own threads (and its lock is free)."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _pool() -> ThreadPoolExecutor:
    with _pools_lock:
        if not _pools:
            _pools.append(ThreadPoolExecutor(_POOL_MAX, thread_name_prefix="storage_hooks-batch"))
        return _pools[0]


class _Batch:
    """The files of one message, attempted by up to ``size`` threads.

    Claims: the thread that finds no claimed file left claims the next
    ``size`` names in one statement (:func:`~storage_hooks.ledger.claim_many`);
    claiming no further ahead keeps a worker lost midway from leaving more
    files TRANSFERRING (until ``STUCK_AFTER``) than it was working on.

    Records (group commit): a thread whose copy is proven records it at once
    unless another thread is recording; then it leaves the copy to that
    thread, which records every copy proven meanwhile in one statement
    (:func:`~storage_hooks.ledger.mark_remote_many`) before it goes on. A
    lone copy waits for nothing; under load the records group themselves.
    Each file is then settled on its own (``transferred``, or the clean-up of
    a copy whose row was lost); failures are recorded per file."""

    def __init__(
        self, storage: QueuedStorage, names: list[str], size: int, result: BatchResult
    ) -> None:
        self.storage, self.names, self.size, self.result = storage, names, size, result
        self.claimed: collections.deque[StoredFile] = collections.deque()
        self.claiming = threading.Lock()
        self.proven: list[Proven] = []
        self.recording = False
        self.handing = threading.Lock()

    def work(self) -> None:
        while (row := self._next()) is not None:
            self._guarded([row.name], self._attempt, row)

    def _next(self) -> StoredFile | None:
        with self.claiming:
            while not self.claimed and self.names:
                chunk, self.names = self.names[: self.size], self.names[self.size :]
                self._guarded(chunk, self._claim, chunk)
            return self.claimed.popleft() if self.claimed else None

    def _claim(self, chunk: list[str]) -> None:
        rows = ledger.claim_many(self.storage.key, chunk)
        self.claimed.extend(rows)
        taken = {row.name for row in rows}
        self.result.outcomes.extend((n, Outcome("skipped")) for n in chunk if n not in taken)

    def _attempt(self, row: StoredFile) -> None:
        done = attempt(self.storage, row)
        if isinstance(done, Outcome):
            self.result.outcomes.append((row.name, done))
        else:
            self._hand(done)

    def _hand(self, proven: Proven) -> None:
        with self.handing:
            self.proven.append(proven)
            if self.recording:
                return  # the recording thread takes it with its next group
            self.recording = True
        while group := self._take():
            self._guarded([p.row.name for p in group], self._record, group)

    def _take(self) -> list[Proven]:
        """The copies proven since the last record; the recording ends
        (under the same lock as a hand-over) when there are none."""
        with self.handing:
            group, self.proven = self.proven, []
            self.recording = bool(group)
            return group

    def _record(self, group: list[Proven]) -> None:
        recorded = ledger.mark_remote_many((p.row, p.copy.identity) for p in group)
        for proven in group:
            self._guarded([proven.row.name], self._settle, proven, proven.row.pk in recorded)

    def _settle(self, proven: Proven, recorded: bool) -> None:
        outcome = settle(self.storage, proven, recorded=recorded)
        self.result.outcomes.append((proven.row.name, outcome))

    def _guarded(self, names: list[str], step: Callable[..., None], *args: Any) -> None:
        """Run one step for ``names``: a ledger out of reach makes them
        unreachable (nothing recorded), any other error is kept for the end."""
        try:
            step(*args)
        except DatabaseError:
            self.result.unreachable.extend(names)
        except Exception as exc:
            self.result.error = self.result.error or exc
