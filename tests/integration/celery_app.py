"""The Celery app of the worker the integration tests start.

It is set up the way the Celery documentation tells a Django project to, so
the tests prove that ``app.autodiscover_tasks()`` finds the library's task.
It also records what happens in the worker (storage_hooks' signals and
Celery's task events) in a Redis list the test process reads.
"""

from __future__ import annotations

import json
import os
import time
from functools import cache
from typing import Any

import redis
from celery import Celery
from celery import signals as celery_signals
from django.dispatch import receiver

from storage_hooks import signals

from .config import Deployment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integration.settings")

app = Celery("storage_hooks_it")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@cache
def _deployment() -> Deployment:
    return Deployment.from_env()


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(_deployment().redis_url)


def record(event: str, **data: Any) -> None:
    """Append an event to the session's Redis list."""
    data.update(event=event, pid=os.getpid(), at=time.time())
    _redis().rpush(_deployment().events_key, json.dumps(data, default=repr))


def _on_signal(event: str) -> Any:
    def receiver(sender: Any, **kwargs: Any) -> None:
        fields = {k: v for k, v in kwargs.items() if k in ("name", "attempt", "will_retry")}
        if "exception" in kwargs:
            fields["exception"] = f"{type(kwargs['exception']).__name__}: {kwargs['exception']}"
        record(event, key=sender.key, **fields)

    return receiver


for _signal in (
    signals.transfer_started,
    signals.transferred,
    signals.transfer_failed,
    signals.local_deleted,
):
    _signal.connect(_on_signal(_signal.name), weak=False)


@celery_signals.worker_ready.connect
def _ready(sender: Any = None, **kwargs: Any) -> None:
    record("worker_ready", hostname=getattr(sender, "hostname", ""))


@celery_signals.task_prerun.connect
def _task_started(task: Any = None, args: Any = None, **kwargs: Any) -> None:
    record("task_prerun", task=task.name, args=list(args or ()), queue=_queue_of(task))


@celery_signals.task_postrun.connect
def _task_done(task: Any = None, args: Any = None, retval: Any = None, **kwargs: Any) -> None:
    record(
        "task_postrun", task=task.name, args=list(args or ()), retval=retval, queue=_queue_of(task)
    )


try:
    from django.tasks.signals import task_finished
except ImportError:  # Django < 6.0
    pass
else:
    # The db_worker of django.tasks loads these settings too: its tasks are
    # recorded like Celery's.
    @receiver(task_finished)
    def _django_task_done(sender: Any, task_result: Any, **kwargs: Any) -> None:
        retval = task_result.return_value if task_result.status == "SUCCESSFUL" else None
        record(
            "task_postrun",
            task=task_result.task.module_path,
            args=list(task_result.args),
            retval=retval,
            queue=task_result.task.queue_name,
        )


@celery_signals.task_retry.connect
def _task_retried(request: Any = None, reason: Any = None, **kwargs: Any) -> None:
    record("task_retry", reason=str(reason))


def _queue_of(task: Any) -> str:
    info = getattr(task.request, "delivery_info", None) or {}
    return str(info.get("routing_key", ""))
