"""Transfers on Django's own Tasks framework (``django.tasks``, Django 6.0+;
the ``django-tasks`` package gives it to Django 5.2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from ..transfer import run_transfer
from . import Runner, queue_name, schedule_retry

try:
    from django.tasks import default_task_backend, task
except ImportError:  # Django < 6.0
    try:
        from django_tasks import default_task_backend, task  # type: ignore[no-redef]
    except ImportError:
        task = None  # type: ignore[assignment]


def attempt(key: str, name: str) -> str:
    """Make one attempt at transferring ``name`` of the storage ``key``."""
    outcome = run_transfer(key, name)
    schedule_retry(key, name, outcome)
    return outcome.kind


# The Task wrapping ``attempt`` is this module's attribute ``transfer`` (the
# path a Tasks worker imports), made on first use: making a Task checks its
# queue against the backend's QUEUES, and the QUEUE setting must not be read
# at import time. A lazily made module attribute is what PEP 562's module
# ``__getattr__`` is for.
attempt.__name__ = attempt.__qualname__ = "transfer"
_tasks: dict[str, Any] = {}


def get_task() -> Any:
    """The Task that runs one transfer attempt, in the QUEUE setting's queue."""
    if task is None:
        raise RuntimeError("RUNNER 'tasks' needs Django 6.0+ or the django-tasks package.")
    if "transfer" not in _tasks:
        _tasks["transfer"] = task(queue_name=queue_name(""))(attempt)
    return _tasks["transfer"]


def __getattr__(attr: str) -> Any:
    if attr == "transfer":
        return get_task()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


class TasksRunner(Runner):
    """Enqueues ``transfer`` on the default Tasks backend, in the QUEUE
    setting's queue (add it to the backend's ``QUEUES``). Retries wait when
    the backend can defer tasks, and run at once when it cannot."""

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        options: dict[str, Any] = {"queue_name": queue_name(host)}
        if countdown and default_task_backend.supports_defer:
            options["run_after"] = timezone.now() + timedelta(seconds=countdown)
        get_task().using(**options).enqueue(key, name)

    def check(self) -> list[str]:
        if task is None:
            return ["RUNNER is 'tasks', which needs Django 6.0+ or the django-tasks package."]
        queues = getattr(default_task_backend, "queues", None)
        wanted = queue_name("")
        if queues and wanted not in queues:
            return [
                f"RUNNER is 'tasks' but the default Tasks backend does not allow the queue "
                f"{wanted!r}: add it to TASKS['default']['QUEUES']."
            ]
        return []
