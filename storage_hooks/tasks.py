"""The Celery task; ``app.autodiscover_tasks()`` finds it here.

Its safety settings are on the task, not left to the project's Celery
configuration:

* ``acks_late`` and ``reject_on_worker_lost``: the message is acknowledged
  only after the attempt, so a worker that dies before it claimed the file
  leaves the message on the broker for another worker;
* ``ignore_result``: nothing is written to a result backend;
* a failed attempt is retried by a new message with a growing, jittered
  countdown (see :func:`storage_hooks.runners.retry_delay`), sent only after
  the ledger recorded the failure;
* a ledger database that cannot be reached (a restart, a lock timeout) is
  not a failed attempt: nothing was recorded, so the same message is sent
  again later, at most ``RETRIES`` times, with the same backoff.

Running the same message twice, or two copies at once, is harmless: the
ledger lets only one worker claim a queued file, and the others skip it. A
worker killed mid-copy leaves its file ``TRANSFERRING``; ``manage.py
storage_hooks retry`` queues it again once ``STUCK_AFTER`` has passed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from celery import shared_task
from django.db import DatabaseError

from .batching import run_batch
from .conf import conf
from .runners import retry_delay, schedule_retry
from .signals import logger
from .transfer import run_transfer

#: The safety settings of both transfer tasks (see the module's docstring).
SAFE: dict[str, Any] = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "serializer": "json",
}


def _send_again(task: Any, what: str, exc: BaseException | None, **options: Any) -> BaseException:
    """The retry of a message whose files could not reach the ledger
    (nothing was recorded, so it is not an attempt): the same back-off as a
    failed attempt, at most ``RETRIES`` times. ``options`` go to
    ``task.retry`` (``args`` to send fewer files than the message had)."""
    retries = int(task.request.retries or 0)
    logger.warning(
        "The ledger could not be reached while transferring %s%s; trying again later (%s of %s).",
        what,
        f" ({exc})" if exc is not None else "",
        retries + 1,
        conf.RETRIES,
    )
    return task.retry(
        exc=exc, countdown=retry_delay(retries + 1), max_retries=int(conf.RETRIES), **options
    )


@shared_task(name="storage_hooks.transfer", **SAFE)
def transfer(self: Any, key: str, name: str) -> str:
    """Make one attempt at transferring ``name`` of the storage ``key``.

    Returns what happened (``done``, ``skipped``, ``retry`` or ``failed``),
    for the worker's log.
    """
    try:
        outcome = run_transfer(key, name)
    except DatabaseError as exc:
        raise _send_again(self, repr(name), exc) from exc
    schedule_retry(key, name, outcome)
    return outcome.kind


@shared_task(name="storage_hooks.transfer_batch", **SAFE)
def transfer_batch(self: Any, key: str, names: list[str]) -> dict[str, int]:
    """Make one attempt at each of ``names`` of the storage ``key``,
    ``BATCH_THREADS`` at a time; every file is claimed, proven, recorded,
    signalled and retried on its own, as with :func:`transfer`.

    The message is acknowledged after every file had its attempt (a worker
    lost midway leaves it for another worker, whose claims skip the files
    already done). Files whose attempt could not reach the ledger are sent
    again in one message, with the same back-off as :func:`transfer`.
    Returns how many files had each outcome, for the worker's log.
    """
    result = run_batch(key, names)
    for name, outcome in result.outcomes:
        schedule_retry(key, name, outcome)
    if result.error is not None:
        logger.error("A transfer of the batch broke off:", exc_info=result.error)
    if result.unreachable:
        what = f"{len(result.unreachable)} files ({result.unreachable[0]!r}, ...)"
        raise _send_again(self, what, None, args=(key, result.unreachable))
    if result.error is not None:
        raise result.error  # a bug, not a transfer failure: the task fails visibly
    return dict(Counter(outcome.kind for _, outcome in result.outcomes))


@shared_task(name="storage_hooks.retry_stuck", ignore_result=True)
def retry_stuck(stuck_after: float | None = None) -> int:
    """Re-queue failed transfers and those stuck longer than ``stuck_after``
    seconds (default: STUCK_AFTER), as ``manage.py storage_hooks retry``
    does. Schedule it with Celery beat so lost messages heal themselves.
    Returns how many files were queued again."""
    from .maintenance import retry_stuck as run

    return len(run(stuck_after).requeued)
