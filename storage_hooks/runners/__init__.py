"""Runners hand transfers to something that runs them.

A runner is a small object with one method::

    class MyRunner(Runner):
        def enqueue(self, key, name, *, host, countdown=0):
            ...  # arrange for storage_hooks.transfer.run_transfer(key, name)

``enqueue`` is called after the saving transaction commits. Its payload is
the storage key and the file name, nothing else (JSON-friendly, no paths or
credentials). The job it schedules calls :func:`run_transfer` and, when the
outcome says ``retry``, calls :func:`schedule_retry`. ``STORAGE_HOOKS
["RUNNER"]`` names a built-in runner or a dotted path to a Runner class.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from functools import cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import conf
from ..transfer import Outcome

BUILTIN = {
    "celery": "storage_hooks.runners.celery.CeleryRunner",
    "tasks": "storage_hooks.runners.django_tasks.TasksRunner",
    "immediate": "storage_hooks.runners.immediate.ImmediateRunner",
}


class Runner(ABC):
    """Schedules transfers. Subclass it for another queue."""

    @abstractmethod
    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        """Arrange for ``run_transfer(key, name)`` to run, ``countdown``
        seconds from now at the earliest, on a worker that can read the
        local copy (``host`` saved it)."""

    def enqueue_many(self, key: str, names: list[str], *, host: str) -> None:
        """Arrange for a transfer of each of ``names`` (queued by one
        transaction). One ``enqueue`` per name unless a runner can do better
        (the Celery runner sends one message per ``BATCH_SIZE`` names)."""
        for name in names:
            self.enqueue(key, name, host=host)

    def background(self) -> Any:
        """The publisher thread that sends this runner's messages after the
        request (a :class:`~storage_hooks.runners.publisher.Publisher`), or
        None when they are sent before ``enqueue`` returns. The stale cache
        entries of new rows' names are handed to it, to be deleted off the
        request (:func:`storage_hooks.statecache.drop_later`)."""
        return None

    def check(self) -> list[str]:
        """Problems with this runner's configuration, for ``manage.py check``."""
        return []

    def describe(self) -> str:
        """Where this runner sends transfers, for log messages (no secrets)."""
        return type(self).__name__


def runner_path() -> str:
    return BUILTIN.get(conf.RUNNER, conf.RUNNER)


@cache
def _runner_class(path: str) -> type[Runner]:
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"STORAGE_HOOKS['RUNNER'] = {conf.RUNNER!r} cannot be imported ({exc}). Use "
            f"{', '.join(map(repr, BUILTIN))} or a dotted path to a Runner subclass."
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        raise ImproperlyConfigured(f"STORAGE_HOOKS['RUNNER'] = {path!r} is not a Runner class.")
    return cls


def get_runner() -> Runner:
    """The configured runner (read each time, so override_settings works)."""
    return _runner_class(runner_path())()


def retry_delay(attempt: int) -> float:
    """Seconds to wait before the attempt after ``attempt``: exponential from
    RETRY_DELAY, capped at RETRY_DELAY_MAX, with jitter so failed transfers
    don't all come back at the same moment."""
    delay = min(float(conf.RETRY_DELAY) * 2 ** max(attempt - 1, 0), float(conf.RETRY_DELAY_MAX))
    return delay * random.uniform(0.5, 1.0)


def queue_name(host: str) -> str:
    """The queue a transfer goes to: QUEUE, or QUEUE.<host> with HOST_QUEUES."""
    if conf.HOST_QUEUES and host:
        return f"{conf.QUEUE}.{host}"
    return str(conf.QUEUE)


def log_not_queued(names: list[str], where: str) -> None:
    """Log, with the traceback being handled, that ``names`` could not be
    handed to ``where``: their rows stay QUEUED for ``retry``."""
    from ..signals import logger

    what = repr(names[0]) if len(names) == 1 else f"{len(names)} files ({names[0]!r}, ...)"
    logger.exception(
        "Could not queue the transfer of %s through %s; the ledger keeps it QUEUED. "
        "'manage.py storage_hooks retry --stuck-after 0' queues it now; a periodic "
        "'retry' does after STUCK_AFTER (%ss).",
        what,
        where,
        conf.STUCK_AFTER,
    )


def schedule_retry(key: str, name: str, outcome: Outcome) -> None:
    if outcome.retry:
        get_runner().enqueue(key, name, host=outcome.host, countdown=retry_delay(outcome.attempt))
