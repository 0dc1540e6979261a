"""Sending transfer messages off the request: one publisher thread per process.

The durable record of a save is its ledger row, committed with the saving
transaction; the Celery message only says "look at it now". So the request
does not have to wait for the message: it hands the names to this process's
publisher thread and returns, and the thread sends them a moment later.

Nothing can be lost that was not already at risk: a process that dies
before its thread sent a message leaves the row ``QUEUED``, exactly as a
broker that cannot be reached does, and ``manage.py storage_hooks retry``
(or the ``retry_stuck`` task run by beat) queues it again after
``STUCK_AFTER``. At interpreter exit the thread is given
``DRAIN_TIMEOUT`` seconds to send what it holds.

Names handed over while the thread is sending wait and go together, grouped
by Celery app, storage and queue, in messages of up to ``BATCH_SIZE`` names:
a burst of saves from separate requests becomes batch messages, while a lone
save finds the thread idle and is sent at once.

The thread also deletes the stale cache entries of the names of new rows
(handed over with :func:`storage_hooks.statecache.drop_later`, which calls
:meth:`Publisher.wake`), so that the request does not wait for that round
trip either.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("storage_hooks")

#: Seconds the thread is given at interpreter exit to send what it holds.
DRAIN_TIMEOUT = 10.0

#: In a burst, the thread sends at most once per this many seconds: what
#: arrives meanwhile goes in the next messages. A name handed over when the
#: last send is longer ago than this is sent at once.
BURST_WINDOW = 0.05

#: (Celery app, storage key, queue) -> the names waiting for a message.
Pending = dict[tuple[Any, str, str], list[str]]
#: What sends one group's names; it raises when the broker cannot take them.
Send = Callable[[Any, str, list[str], str], None]


class Publisher:
    """The publisher thread of one process, started on first use (again in
    a forked child, which must not send its parent's names)."""

    def __init__(
        self,
        send: Send,
        describe: Callable[[Any], str],
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._send = send
        self._describe = describe
        self._before_send = before_send
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: Pending = {}
        self._woken = False
        self._sending = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._last_send = -BURST_WINDOW

    def submit(self, app: Any, key: str, names: list[str], queue: str) -> None:
        """Send ``names`` of the storage ``key`` to ``queue`` through the
        Celery ``app``, from the publisher thread."""
        if self._pid != os.getpid():
            self._reset()  # a forked child: its parent sends what was pending
        with self._lock:
            self._pending.setdefault((app, key, queue), []).extend(names)
            self._start()
            self._changed.notify_all()

    def wake(self) -> None:
        """Have the thread run ``before_send`` (cache entries were handed
        over to be deleted), at once unless it is busy."""
        if self._pid != os.getpid():
            self._reset()
        with self._lock:
            self._woken = True
            self._start()
            self._changed.notify_all()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="storage_hooks-publisher", daemon=True
            )
            self._thread.start()
            atexit.register(self.drain, DRAIN_TIMEOUT)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every name handed over so far was sent (or its failure
        logged); False if ``timeout`` seconds passed first."""
        if self._pid != os.getpid():
            return True  # a forked child (whose copy of the lock may be held)
        with self._lock:
            return self._changed.wait_for(
                lambda: not self._pending and not self._woken and not self._sending, timeout
            )

    def _run(self) -> None:
        while True:
            with self._lock:
                self._sending = False
                self._changed.notify_all()
                self._changed.wait_for(lambda: bool(self._pending or self._woken))
                self._sending = True
                self._woken = False
                taken: Pending = {}
                if self._pending:
                    # In a burst: let the names of the window gather.
                    wait = self._last_send + BURST_WINDOW - time.monotonic()
                    if wait > 0:
                        self._lock.release()
                        try:
                            time.sleep(wait)
                        finally:
                            self._lock.acquire()
                    taken, self._pending = self._pending, {}
                    self._last_send = time.monotonic()
            self._before_send_logged()
            for (app, key, queue), names in taken.items():
                self._send_logged(app, key, list(dict.fromkeys(names)), queue)

    def _before_send_logged(self) -> None:
        if self._before_send is None:
            return
        try:
            self._before_send()
        except Exception:  # the cache is an accelerator; statecache logs its own errors
            logger.exception("The publisher thread could not delete the cache entries it held.")

    def _send_logged(self, app: Any, key: str, names: list[str], queue: str) -> None:
        try:
            self._send(app, key, names, queue)
        except Exception:
            from . import log_not_queued

            log_not_queued(names, self._describe(app))
