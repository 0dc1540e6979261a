"""Transfers as Celery tasks (the task is ``storage_hooks.tasks.transfer``)."""

from __future__ import annotations

from typing import Any

from .. import statecache
from ..conf import conf
from . import Runner, queue_name
from .publisher import Publisher

TRANSFER = "storage_hooks.transfer"
TRANSFER_BATCH = "storage_hooks.transfer_batch"


class CeleryRunner(Runner):
    """Sends the task ``storage_hooks.transfer`` to the QUEUE setting's queue,
    or with ``HOST_QUEUES`` to ``"<QUEUE>.<host>"``, the queue of the host
    that saved the file.

    The message body is JSON: the storage key and the file name, nothing
    else. No ``task_routes`` entry is needed: the queue is chosen here.

    With ``PUBLISH = "background"`` (the default) the messages are sent by
    the process's publisher thread (:mod:`storage_hooks.runners.publisher`),
    so a request does not wait for the broker; with ``"inline"``, and when
    Celery runs tasks eagerly, they are sent before ``enqueue`` returns. A
    broker that cannot be reached makes an inline ``enqueue`` raise (after
    Celery's own publish retries) and the publisher thread log; either way
    the file waits, ``QUEUED``, for ``manage.py storage_hooks retry``.
    """

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        if countdown:
            _app().tasks[TRANSFER].apply_async(
                args=(key, name), queue=queue_name(host), serializer="json", countdown=countdown
            )
        else:
            self.enqueue_many(key, [name], host=host)

    def enqueue_many(self, key: str, names: list[str], *, host: str) -> None:
        """One ``storage_hooks.transfer_batch`` message per ``BATCH_SIZE``
        names (``storage_hooks.transfer`` for a name alone)."""
        app = _app()
        if _in_background(app):
            publisher.submit(app, key, names, queue_name(host))
        else:
            send(app, key, names, queue_name(host))

    def background(self) -> Publisher | None:
        return publisher if _in_background(_app()) else None

    def describe(self) -> str:
        return describe(_app())

    def check(self) -> list[str]:
        try:
            import celery  # noqa: F401
        except ImportError:
            return ["RUNNER is 'celery' but Celery is not installed: pip install celery."]
        # What tasks go through when the project made no app.
        if is_fallback(_app()):
            return [
                "RUNNER is 'celery' but this process has no Celery app: transfers would go to "
                "Celery's default broker (amqp://guest@localhost//). Create proj/celery.py "
                "and import its app in proj/__init__.py (see 'The Celery app' in the "
                "getting-started docs), or choose another RUNNER."
            ]
        return []


def _in_background(app: Any) -> bool:
    """Whether ``app``'s messages go through the publisher thread."""
    return conf.PUBLISH == "background" and not app.conf.task_always_eager


def _app() -> Any:
    """The project's Celery app, with the transfer tasks registered.

    Celery's current app is per thread: in a thread that did not create
    the app (a request thread of a threaded server, the publisher thread)
    Celery answers with a fallback app of its own, which sends to
    ``amqp://guest@localhost//``. So the calling thread's app is taken only
    if it is not that fallback; then the app that was current when Django
    set up (the project's, imported by its ``__init__.py``); then the only
    app the process has made."""
    from celery import _state

    from .. import tasks  # noqa: F401  (registers the tasks; Celery is optional)

    app = _state.get_current_app()
    if not is_fallback(app):
        return app
    if _at_setup and not is_fallback(_at_setup[0]):
        return _at_setup[0]
    state: Any = _state  # private names, not in Celery's type stubs
    made = [other for other in state._get_active_apps() if not is_fallback(other)]
    return made[0] if len(made) == 1 else app


#: The Celery app current in the thread that set Django up (see _app).
_at_setup: list[Any] = []


def remember_app() -> None:
    """Remember the app current now (called from ``AppConfig.ready``)."""
    try:
        from celery import _state
    except ImportError:
        return
    state: Any = _state  # private names, not in Celery's type stubs
    app = state._tls.current_app or state.default_app
    if app is not None and not is_fallback(app):
        _at_setup[:] = [app]


def is_fallback(app: Any) -> bool:
    """Whether ``app`` is Celery's own fallback app (private
    ``celery._state``, checked with Celery 5.4-5.7), not one a project made."""
    return bool(app.main == "default" and not app.conf.broker_url)


def send(app: Any, key: str, names: list[str], queue: str) -> None:
    """Send ``names`` of the storage ``key`` to ``queue`` now, in messages
    of up to ``BATCH_SIZE`` names."""
    from ..batching import chunks

    for chunk in chunks(names, conf.BATCH_SIZE):
        if len(chunk) == 1:
            app.tasks[TRANSFER].apply_async(args=(key, chunk[0]), queue=queue, serializer="json")
        else:
            app.tasks[TRANSFER_BATCH].apply_async(args=(key, chunk), queue=queue, serializer="json")


def describe(app: Any) -> str:
    """Where ``app`` sends messages (the broker's password masked)."""
    try:
        broker = app.connection_for_write().as_uri()
    except Exception:  # a broken broker URL: say what is configured
        broker = str(app.conf.broker_url)
    return f"Celery ({app.main or 'no Celery app'}) at broker {broker}"


#: This process's publisher thread (``PUBLISH = "background"``).
publisher = Publisher(send, describe, statecache.drop_held)
