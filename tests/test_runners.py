"""Runners: the immediate one, Django's Tasks framework (django.tasks with
its ImmediateBackend), and what they share. The Celery runner has its own
tests (tests/integration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import override_settings
from django.utils.module_loading import import_string

from storage_hooks import Status
from storage_hooks.models import StoredFile
from storage_hooks.runners import Runner, get_runner, queue_name, retry_delay
from storage_hooks.runners import celery as celery_runner
from storage_hooks.runners.celery import publisher
from storage_hooks.runners.django_tasks import TasksRunner
from storage_hooks.runners.immediate import ImmediateRunner
from storage_hooks.storage import QueuedStorage

from .testapp.storages import names_of, recording

IMMEDIATE_BACKEND = "django.tasks.backends.immediate.ImmediateBackend"
TASKS = {"default": {"BACKEND": IMMEDIATE_BACKEND, "QUEUES": ["storage_hooks"]}}


class RecordingRunner(Runner):
    """Records what it is asked to run, and runs nothing."""

    calls: ClassVar[list[tuple[str, str, str, float]]] = []

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        self.calls.append((key, name, host, countdown))


class BrokenRunner(Runner):
    """A runner whose broker is down."""

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        raise ConnectionError("broker down")


def block(remote_dir: Path) -> None:
    (remote_dir / "sub").write_bytes(b"a file where the remote needs a directory")


# -- choosing a runner ----------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "cls"),
    [
        ("immediate", ImmediateRunner),
        ("tasks", TasksRunner),
        ("tests.test_runners.RecordingRunner", RecordingRunner),
    ],
)
def test_the_runner_setting_names_a_builtin_or_a_path(setting: str, cls: type) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": setting}):
        assert type(get_runner()) is cls


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("rq", r"cannot be imported .*Use 'celery', 'tasks', 'immediate' or a dotted path"),
        ("tests.test_runners.block", "is not a Runner class"),
    ],
)
def test_a_bad_runner_setting_is_explained(setting: str, message: str) -> None:
    with (
        override_settings(STORAGE_HOOKS={"RUNNER": setting}),
        pytest.raises(ImproperlyConfigured, match=message),
    ):
        get_runner()


@pytest.mark.django_db(transaction=True)
def test_a_runner_that_cannot_take_the_transfer_leaves_it_queued(
    fs_storage: QueuedStorage, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "tests.test_runners.BrokenRunner"}):
        name = fs_storage.save("a.txt", ContentFile(b"x"))
    assert fs_storage.status(name) == Status.QUEUED
    assert "Could not queue the transfer of 'a.txt'" in caplog.text
    assert "ConnectionError: broker down" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_runner_gets_only_the_key_and_the_name(fs_storage: QueuedStorage) -> None:
    RecordingRunner.calls.clear()
    with override_settings(
        STORAGE_HOOKS={"RUNNER": "tests.test_runners.RecordingRunner", "HOSTNAME": "web-1"}
    ):
        name = fs_storage.save("a.txt", ContentFile(b"x"))
    assert RecordingRunner.calls == [(fs_storage.key, name, "web-1", 0)]
    assert StoredFile.objects.get(storage_key=fs_storage.key, name=name).host == "web-1"


# -- shared helpers -------------------------------------------------------------


def test_retry_delay_grows_from_retry_delay_with_jitter_and_a_cap() -> None:
    with override_settings(STORAGE_HOOKS={"RETRY_DELAY": 10, "RETRY_DELAY_MAX": 35}):
        for _ in range(50):
            assert 5 <= retry_delay(1) <= 10
            assert 10 <= retry_delay(2) <= 20
            assert 17.5 <= retry_delay(3) <= 35
            assert 17.5 <= retry_delay(10) <= 35


def test_queue_name_with_and_without_host_queues() -> None:
    with override_settings(STORAGE_HOOKS={"QUEUE": "files"}):
        assert queue_name("web-1") == "files"
    with override_settings(STORAGE_HOOKS={"QUEUE": "files", "HOST_QUEUES": True}):
        assert queue_name("web-1") == "files.web-1"


# -- immediate --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_immediate_runs_when_the_transaction_commits(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    with transaction.atomic():
        name = fs_storage.save("a.txt", ContentFile(b"x"))
        assert fs_storage.status(name) == Status.QUEUED
        assert not (remote_dir / name).exists()
    assert fs_storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"x"


@pytest.mark.django_db(transaction=True)
def test_immediate_retries_at_once_without_waiting(
    fs_storage: QueuedStorage, remote_dir: Path
) -> None:
    block(remote_dir)
    settings = {"RUNNER": "immediate", "RETRIES": 3, "RETRY_DELAY": 60}
    started = time.monotonic()
    with override_settings(STORAGE_HOOKS=settings):
        name = fs_storage.save("sub/a.txt", ContentFile(b"x"))
    elapsed = time.monotonic() - started
    assert StoredFile.objects.get(storage_key=fs_storage.key, name=name).attempts == 4
    assert fs_storage.status(name) == Status.FAILED
    assert elapsed < 5  # four attempts, not minutes of delays


# -- django.tasks -------------------------------------------------------------------


@pytest.fixture
def tasks_runner() -> Any:
    pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0+")
    with override_settings(TASKS=TASKS, STORAGE_HOOKS={"RUNNER": "tasks", "RETRIES": 2}):
        yield


@pytest.fixture
def enqueued() -> Any:
    pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0+")
    from django.tasks.signals import task_enqueued

    results: list[Any] = []

    def record(sender: Any, *, task_result: Any, **kwargs: Any) -> None:
        results.append(task_result)

    task_enqueued.connect(record)
    yield results
    task_enqueued.disconnect(record)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("tasks_runner")
def test_tasks_runner_enqueues_at_commit_on_the_queue(
    fs_storage: QueuedStorage, remote_dir: Path, enqueued: list[Any]
) -> None:
    with recording(fs_storage) as events, transaction.atomic():
        name = fs_storage.save("a.txt", ContentFile(b"x"))
        assert enqueued == []
        assert names_of(events) == ["saved_locally"]
    assert len(enqueued) == 1
    result = enqueued[0]
    assert result.task.queue_name == "storage_hooks"
    assert result.task.module_path == "storage_hooks.runners.django_tasks.transfer"
    assert json.loads(json.dumps(result.args)) == [fs_storage.key, name]
    assert result.kwargs == {}
    assert result.return_value == "done"
    assert fs_storage.status(name) == Status.REMOTE
    assert (remote_dir / name).read_bytes() == b"x"
    assert names_of(events) == [
        "saved_locally",
        "transfer_queued",
        "transfer_started",
        "transferred",
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("tasks_runner")
def test_tasks_runner_retries_as_new_tasks(
    fs_storage: QueuedStorage, remote_dir: Path, enqueued: list[Any]
) -> None:
    block(remote_dir)
    name = fs_storage.save("sub/a.txt", ContentFile(b"x"))
    assert len(enqueued) == 3  # RETRIES + 1 attempts, each its own task
    assert [r.return_value for r in enqueued] == ["retry", "retry", "failed"]
    assert fs_storage.status(name) == Status.FAILED


def test_the_task_is_where_a_worker_looks_for_it(tasks_runner: Any) -> None:
    from django.tasks import Task

    found = import_string("storage_hooks.runners.django_tasks.transfer")
    assert isinstance(found, Task)
    assert found.module_path == "storage_hooks.runners.django_tasks.transfer"
    assert found.func.__name__ == "transfer"


def test_the_tasks_module_imports_when_queues_lack_default() -> None:
    pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0+")
    code = (
        "from django.conf import settings\n"
        f"settings.configure(TASKS={TASKS!r}, STORAGE_HOOKS={{'RUNNER': 'tasks'}},\n"
        "    INSTALLED_APPS=['storage_hooks'])\n"
        "import django; django.setup()\n"
        "from storage_hooks.runners.django_tasks import TasksRunner, get_task\n"
        "print(get_task().queue_name, TasksRunner().check())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["storage_hooks", "[]"]


def test_tasks_check_names_the_missing_queue() -> None:
    pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0+")
    tasks = {"default": {"BACKEND": IMMEDIATE_BACKEND, "QUEUES": ["default"]}}
    with override_settings(TASKS=tasks, STORAGE_HOOKS={"RUNNER": "tasks"}):
        assert TasksRunner().check() == [
            "RUNNER is 'tasks' but the default Tasks backend does not allow the queue "
            "'storage_hooks': add it to TASKS['default']['QUEUES']."
        ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("publish", ["inline", "background"])
def test_an_unreachable_broker_is_named_with_the_way_to_queue_again(
    fs_storage: QueuedStorage, caplog: pytest.LogCaptureFixture, publish: str
) -> None:
    """Whether the request sends the message or the publisher thread does,
    a broker that cannot be reached is logged (its address, no password)
    and the file stays QUEUED."""
    from celery import Celery

    from tests import services

    port = services.free_port()
    app = Celery("unreachable", set_as_current=False)
    app.conf.broker_url = f"redis://:hunter2@127.0.0.1:{port}/0"
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    app.conf.task_publish_retry = False
    from celery import _state

    before = _state.get_current_app()
    app.set_current()
    try:
        with override_settings(STORAGE_HOOKS={"RUNNER": "celery", "PUBLISH": publish}):
            name = fs_storage.save("a.txt", ContentFile(b"x"))
            assert publisher.drain(30)
    finally:
        _state._set_current_app(before)
        app.close()
    assert fs_storage.status(name) == Status.QUEUED
    assert f"127.0.0.1:{port}" in caplog.text
    assert "hunter2" not in caplog.text
    assert "retry --stuck-after 0' queues it now" in caplog.text


def test_no_celery_app_is_a_check_error(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import _state
    from django.core.checks import run_checks

    settings.STORAGE_HOOKS = {"RUNNER": "celery"}
    before = _state.get_current_app()
    # As in a project whose __init__ imports no app: Celery falls back to
    # an app of its own (celery._state, Celery 5.4-5.7).
    monkeypatch.setattr(_state, "default_app", None)
    monkeypatch.setattr(_state, "_apps", weakref.WeakSet())
    monkeypatch.setattr(celery_runner, "_at_setup", [])
    _state._set_current_app(None)
    try:
        errors = [e for e in run_checks() if e.id == "storage_hooks.E002"]
    finally:
        _state._set_current_app(before)
    assert len(errors) == 1
    assert "this process has no Celery app" in errors[0].msg
    assert "proj/__init__.py" in errors[0].msg


THREADED_PROJECT = """
import os, sys, threading, types
from celery import Celery

# proj/__init__.py imports proj/celery.py, as Celery's Django guide says.
app = Celery("proj", broker="redis://127.0.0.1:1/0", set_as_current=True)
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["storage_hooks"],
    STORAGE_HOOKS={"RUNNER": "celery"},
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
)
import django
django.setup()
from storage_hooks.runners.celery import _app
seen = []
def in_a_thread():
    request = threading.Thread(target=lambda: seen.append(_app().main))
    request.start(); request.join()
in_a_thread()
import storage_hooks.runners.celery as runner
runner._at_setup.clear()  # a process that imported its app only later
in_a_thread()
print(*seen, _app().main)
"""


def test_request_threads_send_through_the_projects_celery_app() -> None:
    """Celery's current app is per thread: in a request thread of a threaded
    server (and in the publisher thread) Celery would answer with its
    fallback app, which sends to amqp://guest@localhost//. The runner uses
    the project's app, the one current when Django set up."""
    result = subprocess.run(
        [sys.executable, "-c", THREADED_PROJECT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["proj", "proj", "proj"]
