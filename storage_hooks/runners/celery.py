"""Transfers as Celery tasks (the task is ``storage_hooks.tasks.transfer``)."""

from __future__ import annotations

from typing import Any

from ..conf import conf
from . import Runner, queue_name


class CeleryRunner(Runner):
    """Sends the task ``storage_hooks.transfer`` to the QUEUE setting's queue,
    or with ``HOST_QUEUES`` to ``"<QUEUE>.<host>"``, the queue of the host
    that saved the file.

    The message body is JSON: the storage key and the file name, nothing
    else. No ``task_routes`` entry is needed: the queue is chosen here. A
    broker that cannot be reached makes ``enqueue`` raise (after Celery's own
    publish retries); the storage logs it and the file waits, ``QUEUED``, for
    ``manage.py storage_hooks retry``.
    """

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        from ..tasks import transfer  # Celery is optional: imported when it is the runner

        options: dict[str, Any] = {"queue": queue_name(host), "serializer": "json"}
        if countdown:
            options["countdown"] = countdown
        transfer.apply_async(args=(key, name), **options)

    def enqueue_many(self, key: str, names: list[str], *, host: str) -> None:
        """One ``storage_hooks.transfer_batch`` message per ``BATCH_SIZE``
        names (``storage_hooks.transfer`` for a name alone)."""
        from ..batching import chunks
        from ..tasks import transfer, transfer_batch

        options: dict[str, Any] = {"queue": queue_name(host), "serializer": "json"}
        for chunk in chunks(names, conf.BATCH_SIZE):
            if len(chunk) == 1:
                transfer.apply_async(args=(key, chunk[0]), **options)
            else:
                transfer_batch.apply_async(args=(key, chunk), **options)

    def describe(self) -> str:
        from celery import current_app

        try:
            broker = current_app.connection_for_write().as_uri()  # password masked
        except Exception:  # a broken broker URL: say what is configured
            broker = str(current_app.conf.broker_url)
        app = current_app.main or "no Celery app"
        return f"Celery ({app}) at broker {broker}"

    def check(self) -> list[str]:
        try:
            from celery import _state
        except ImportError:
            return ["RUNNER is 'celery' but Celery is not installed: pip install celery."]
        # Celery's own fallback app (private ``celery._state``, checked with
        # Celery 5.4-5.7): what tasks go through when the project made none.
        app = _state.get_current_app()
        if app.main == "default" and not app.conf.broker_url:
            return [
                "RUNNER is 'celery' but this process has no Celery app: transfers would go to "
                "Celery's default broker (amqp://guest@localhost//). Create proj/celery.py "
                "and import its app in proj/__init__.py (see 'The Celery app' in the "
                "getting-started docs), or choose another RUNNER."
            ]
        return []
