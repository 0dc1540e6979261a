"""System checks (storage_hooks.checks): each misconfiguration has its id
and a message that says what to do."""

from __future__ import annotations

import gc
from io import StringIO
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.files.storage import storages
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from storage_hooks.checks import check_installed
from storage_hooks.storage import QueuedStorage

MEMORY = "django.core.files.storage.InMemoryStorage"
TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


def ours() -> list[Any]:
    """The messages of storage_hooks' checks, for what exists right now."""
    gc.collect()  # storages other tests built and dropped must not count
    return [m for m in run_checks() if str(m.id).startswith("storage_hooks.")]


def ids(messages: list[Any]) -> list[str]:
    return [str(m.id) for m in messages]


def with_media(**options: Any) -> override_settings:
    media = {"BACKEND": "storage_hooks.QueuedStorage", "OPTIONS": options}
    return override_settings(STORAGES={**storages.backends, "media": media})


def test_a_sound_configuration_passes() -> None:
    with with_media(local=MEMORY, remote=MEMORY, hooks=["storage_hooks.hooks.DeleteLocal"]):
        assert ours() == []
        call_command("check", stdout=StringIO())


def test_e001_an_unknown_key() -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "RETRYS": 3}):
        [message] = ours()
    assert message.id == "storage_hooks.E001"
    assert message.msg == "STORAGE_HOOKS has an unknown key 'RETRYS'."
    assert "RETRIES" in message.hint


@pytest.mark.parametrize(
    ("runner", "text"),
    [
        ("rq", "'rq' cannot be imported"),
        ("tests.test_checks.ids", "is not a Runner class"),
    ],
)
def test_e002_an_unknown_runner(runner: str, text: str) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": runner}):
        [message] = ours()
    assert message.id == "storage_hooks.E002"
    assert text in message.msg


def test_e002_a_tasks_queue_the_backend_refuses() -> None:
    pytest.importorskip("django.tasks", reason="django.tasks is Django 6.0+")
    tasks = {"default": {**TASKS["default"], "QUEUES": ["default"]}}
    with override_settings(TASKS=tasks, STORAGE_HOOKS={"RUNNER": "tasks"}):
        [message] = ours()
    assert message.id == "storage_hooks.E002"
    assert "add it to TASKS['default']['QUEUES']" in message.msg


def test_e003_a_cache_alias_that_does_not_exist() -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "CACHE": "ledger"}):
        [message] = ours()
    assert message.id == "storage_hooks.E003"
    assert "'ledger', which is not an alias of CACHES" in message.msg
    assert message.hint == "Use one of: default."


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"local": MEMORY}, "has a bad remote: No remote storage was given"),
        ({"remote": MEMORY}, "has a bad local: No local storage was given"),
        ({"local": MEMORY, "remote": "s3"}, "'s3' is not an alias of settings.STORAGES"),
        (
            {"local": MEMORY, "remote": MEMORY, "hooks": ["myproject.hooks.Resize"]},
            "has a bad hooks: The hook 'myproject.hooks.Resize' cannot be imported",
        ),
        ({"local": MEMORY, "remote": MEMORY, "colour": "red"}, "cannot be built"),
    ],
)
def test_e004_a_queued_storage_in_storages_that_cannot_work(
    options: dict[str, Any], text: str
) -> None:
    with with_media(**options):
        messages = ours()
    assert ids(messages) == ["storage_hooks.E004"]
    assert text in messages[0].msg
    assert "media" in messages[0].msg


def test_e004_a_storage_built_in_code() -> None:
    storage = QueuedStorage(local=MEMORY, remote="nowhere.Storage", key="documents")
    messages = ours()
    assert ids(messages) == ["storage_hooks.E004"]
    assert messages[0].msg.startswith("The QueuedStorage 'documents' has a bad remote:")
    del storage


@pytest.mark.parametrize(
    ("setting", "text"),
    [
        ({"RETRIES": -1}, "STORAGE_HOOKS['RETRIES'] must be a number >= 0, not -1."),
        ({"RETRY_DELAY": "60"}, "STORAGE_HOOKS['RETRY_DELAY'] must be a number >= 0, not '60'."),
        ({"STUCK_AFTER": True}, "STORAGE_HOOKS['STUCK_AFTER'] must be a number >= 0, not True."),
        ({"QUEUE": ""}, "STORAGE_HOOKS['QUEUE'] must be a non-empty string, not ''."),
        (
            {"DATABASE": "ledger"},
            "STORAGE_HOOKS['DATABASE'] is 'ledger', which is not an alias of DATABASES.",
        ),
    ],
)
def test_e005_a_bad_value(setting: dict[str, Any], text: str) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", **setting}):
        [message] = ours()
    assert message.id == "storage_hooks.E005"
    assert message.msg == text


def test_e005_storage_hooks_must_be_a_dict() -> None:
    with override_settings(STORAGE_HOOKS=[("RUNNER", "immediate")]):
        messages = ours()
    assert "storage_hooks.E005" in ids(messages)
    assert "STORAGE_HOOKS must be a dict." in [m.msg for m in messages]


def test_e006_the_app_is_missing() -> None:
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "tests.testapp"]
    with override_settings(INSTALLED_APPS=apps):
        [message] = check_installed()
        assert message in run_checks()
    assert message.id == "storage_hooks.E006"
    assert "'storage_hooks' is not in INSTALLED_APPS" in message.msg
    assert "manage.py migrate" in message.hint
    assert check_installed() == []


def test_manage_py_check_fails_on_an_error() -> None:
    with (
        override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "RETRYS": 3}),
        pytest.raises(SystemCheckError, match=r"storage_hooks\.E001"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())
