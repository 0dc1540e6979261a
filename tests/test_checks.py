"""System checks (storage_hooks.checks): each misconfiguration has its id
and a message that says what to do."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.files.storage import FileSystemStorage, InMemoryStorage, storages
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.utils.deconstruct import deconstructible

from storage_hooks.checks import check_installed
from storage_hooks.models import KEY_MAX_LENGTH
from storage_hooks.storage import QueuedStorage

# Django's model checks ask the database what it supports (JSONField).
pytestmark = pytest.mark.django_db

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
    shared = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(TASKS=tasks, CACHES=shared, STORAGE_HOOKS={"RUNNER": "tasks"}):
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
        (
            {"CACHE_TIMEOUT": float("nan")},
            "STORAGE_HOOKS['CACHE_TIMEOUT'] must be a number >= 0, not nan.",
        ),
        (
            {"LOG_CACHE_ERRORS_EVERY": None},
            "STORAGE_HOOKS['LOG_CACHE_ERRORS_EVERY'] must be a number >= 0, not None.",
        ),
    ],
)
def test_e007_a_count_or_delay_that_is_no_number(setting: dict[str, Any], text: str) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", **setting}):
        [message] = ours()
    assert message.id == "storage_hooks.E007"
    assert message.msg == text


@pytest.mark.parametrize(
    ("setting", "number", "text"),
    [
        ({"QUEUE": ""}, 9, "STORAGE_HOOKS['QUEUE'] must be a non-empty string, not ''."),
        (
            {"CONDITIONAL_WRITES": "yes"},
            10,
            "STORAGE_HOOKS['CONDITIONAL_WRITES'] must be True, False or \"only\", not 'yes'.",
        ),
        (
            {"DATABASE": "ledger"},
            11,
            "STORAGE_HOOKS['DATABASE'] is 'ledger', which is not an alias of DATABASES.",
        ),
        (
            {"PROOF": "md5"},
            12,
            "STORAGE_HOOKS['PROOF'] must be one of 'auto', 'readback', 'size', not 'md5'.",
        ),
        (
            {"HOST_QUEUES": "yes"},
            13,
            "STORAGE_HOOKS['HOST_QUEUES'] must be True or False, not 'yes'.",
        ),
        (
            {"HOSTNAME": ""},
            13,
            "STORAGE_HOOKS['HOSTNAME'] must be a non-empty string or None, not ''.",
        ),
    ],
)
def test_each_bad_value_has_its_own_id(setting: dict[str, Any], number: int, text: str) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", **setting}):
        [message] = ours()
    assert message.id == f"storage_hooks.E{number:03d}"
    assert message.msg == text


@pytest.mark.parametrize("proof", ["auto", "readback", "size"])
def test_every_proof_is_accepted(proof: str) -> None:
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "PROOF": proof}):
        assert ours() == []


def test_e005_storage_hooks_must_be_a_dict() -> None:
    with override_settings(STORAGE_HOOKS=[("RUNNER", "immediate")]):
        messages = ours()
    assert ids(messages) == ["storage_hooks.E005"]
    assert messages[0].msg == "STORAGE_HOOKS must be a dict."


def test_silencing_one_id_keeps_the_others() -> None:
    setting = {"RUNNER": "immediate", "RETRIES": -1, "QUEUE": "", "PROOF": "md5"}
    with override_settings(STORAGE_HOOKS=setting, SILENCED_SYSTEM_CHECKS=["storage_hooks.E009"]):
        messages = [m for m in ours() if not m.is_silenced()]
    assert sorted(ids(messages)) == ["storage_hooks.E007", "storage_hooks.E012"]


# -- the cache must be shared when another process transfers ---------------

LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
FILES = {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": "/tmp/x"}
DUMMY = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
REDIS = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://nowhere"}
DATABASE = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache"}


@pytest.mark.parametrize("cache", [LOCMEM, FILES, DUMMY, REDIS])
def test_any_cache_will_do_for_the_immediate_runner(cache: dict[str, str]) -> None:
    with override_settings(CACHES={"default": cache}, STORAGE_HOOKS={"RUNNER": "immediate"}):
        assert ours() == []


def test_e014_a_per_process_cache_with_a_worker() -> None:
    with override_settings(CACHES={"default": LOCMEM}, STORAGE_HOOKS={"RUNNER": "celery"}):
        [message] = ours()
    assert message.id == "storage_hooks.E014"
    assert message.msg.startswith("CACHES['default'] is a LocMemCache, which each process")
    assert "Redis" in message.hint


def test_e014_names_the_cache_storage_hooks_uses() -> None:
    caches = {"default": REDIS, "ledger": LOCMEM}
    setting = {"RUNNER": "celery", "CACHE": "ledger"}
    with override_settings(CACHES=caches, STORAGE_HOOKS=setting):
        assert [(m.id, m.msg[:30]) for m in ours()] == [
            ("storage_hooks.E014", "CACHES['ledger'] is a LocMemCa")
        ]
    with override_settings(CACHES=caches, STORAGE_HOOKS={**setting, "CACHE": "default"}):
        assert ours() == []


def test_e014_a_runner_of_ones_own_that_is_no_immediate_one() -> None:
    runner = "storage_hooks.runners.celery.CeleryRunner"
    with override_settings(CACHES={"default": LOCMEM}, STORAGE_HOOKS={"RUNNER": runner}):
        assert ids(ours()) == ["storage_hooks.E014"]
    runner = "storage_hooks.runners.immediate.ImmediateRunner"
    with override_settings(CACHES={"default": LOCMEM}, STORAGE_HOOKS={"RUNNER": runner}):
        assert ours() == []


def test_w002_a_file_cache_is_shared_on_one_host_only() -> None:
    with override_settings(CACHES={"default": FILES}, STORAGE_HOOKS={"RUNNER": "celery"}):
        [message] = ours()
    assert message.id == "storage_hooks.W002"
    assert "one host only" in message.msg


@pytest.mark.parametrize("cache", [DUMMY, REDIS, DATABASE])
def test_shared_caches_and_no_cache_pass_with_a_worker(cache: dict[str, str]) -> None:
    with override_settings(CACHES={"default": cache}, STORAGE_HOOKS={"RUNNER": "celery"}):
        assert ours() == []


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


# -- storages: keys, local roots, credentials --------------------------------


def test_e008_a_key_the_ledger_cannot_hold() -> None:
    key = "k" * (KEY_MAX_LENGTH + 1)
    storage = QueuedStorage(local=MEMORY, remote=MEMORY, key=key)
    [message] = ours()
    assert message.id == "storage_hooks.E008"
    assert f"is {KEY_MAX_LENGTH + 1} characters long" in message.msg
    assert f"up to {KEY_MAX_LENGTH}" in message.msg
    del storage
    fits = QueuedStorage(local=MEMORY, remote=MEMORY, key="k" * KEY_MAX_LENGTH)
    assert ours() == []
    del fits


def test_w003_a_storage_with_neither_alias_nor_key() -> None:
    storage = QueuedStorage(local=MEMORY, remote=MEMORY)
    [message] = ours()
    assert message.id == "storage_hooks.W003"
    assert message.msg.startswith(f"The QueuedStorage {storage.key!r} has neither a STORAGES")
    assert "key='photos'" in message.hint
    assert "storages['photos']" in message.hint
    del storage


def test_an_alias_or_a_key_names_a_storage() -> None:
    named = QueuedStorage(local=MEMORY, remote=MEMORY, key="documents")
    with with_media(local=MEMORY, remote=MEMORY):
        assert storages["media"].key == "media"
        assert ours() == []
    del named


def unsafe(location: Path | str, **settings: Any) -> list[Any]:
    local = FileSystemStorage(location=location)
    storage = QueuedStorage(local=local, remote=MEMORY, key="uploads")
    with override_settings(**settings):
        messages = ours()
    del storage
    return messages


def test_e015_the_working_directory_as_local_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    [message] = unsafe(tmp_path)
    assert message.id == "storage_hooks.E015"
    assert f"keeps its files in {tmp_path}, which is the working directory" in message.msg
    assert "BASE_DIR / 'media'" in message.hint
    [message] = unsafe(tmp_path.parent)
    assert f"which is a parent of the working directory ({tmp_path})" in message.msg


def test_e015_no_location_and_no_media_root_is_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick start's mistake: FileSystemStorage() with MEDIA_ROOT unset."""
    monkeypatch.chdir(tmp_path)
    storage = QueuedStorage(local=FileSystemStorage(), remote=MEMORY, key="uploads")
    with override_settings(MEDIA_ROOT=""):
        assert ids(ours()) == ["storage_hooks.E015"]
    del storage


def test_e015_the_project_base_dir_or_the_settings_package(tmp_path: Path) -> None:
    project = tmp_path / "mysite"
    project.mkdir()
    [message] = unsafe(project, BASE_DIR=project)
    assert "which is settings.BASE_DIR" in message.msg
    [message] = unsafe(tmp_path, BASE_DIR=project)
    assert "which is a parent of settings.BASE_DIR" in message.msg
    assert unsafe(project / "media", BASE_DIR=project) == []
    settings_package = Path(__file__).parent  # tests/, where tests/settings.py is
    [message] = unsafe(settings_package)
    assert "the package of the settings module tests.settings" in message.msg


def test_e015_a_directory_that_holds_manage_py(tmp_path: Path) -> None:
    (tmp_path / "manage.py").write_text("")
    [message] = unsafe(tmp_path)
    assert "a Django project's directory (it holds manage.py)" in message.msg
    assert unsafe(tmp_path / "media") == []


@deconstructible
class OptionsStorage(InMemoryStorage):
    """A storage that takes any option, like django-storages' backends."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options


OPTIONS_STORAGE = f"{__name__}.OptionsStorage"


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"bucket_name": "b", "secret_key": "s3cr3t"}, "['secret_key']"),
        ({"access_key": "s3cr3t"}, "['access_key']"),
        ({"aws_session_token": "s3cr3t"}, "['aws_session_token']"),
        ({"connection_string": "s3cr3t"}, "['connection_string']"),
        ({"client": {"client_secret": "s3cr3t"}}, "['client']['client_secret']"),
        ({"endpoint_url": "https://minio:s3cr3t@minio.internal:9000"}, "['endpoint_url']"),
    ],
)
def test_w004_credentials_in_remote_options(options: dict[str, Any], where: str) -> None:
    storage = QueuedStorage(
        local=MEMORY, remote=OPTIONS_STORAGE, remote_options=options, key="uploads"
    )
    [message] = ours()
    assert message.id == "storage_hooks.W004"
    assert f"remote_options{where}" in message.msg
    assert "migration" in message.msg
    assert "pickle" in message.msg
    assert "s3cr3t" not in message.msg
    assert "STORAGES alias" in message.hint
    del storage


def test_w004_credentials_of_a_storage_instance() -> None:
    remote = OptionsStorage(password="s3cr3t")
    storage = QueuedStorage(local=MEMORY, remote=remote, key="uploads")
    [message] = ours()
    assert message.id == "storage_hooks.W004"
    assert "remote['password']" in message.msg
    del storage


def test_options_without_credentials_pass() -> None:
    options = {
        "bucket_name": "b",
        "endpoint_url": "https://minio.internal:9000",
        "secret_key": "",
        "access_key": None,
        "querystring_auth": True,
    }
    storage = QueuedStorage(
        local=MEMORY, remote=OPTIONS_STORAGE, remote_options=options, key="uploads"
    )
    assert ours() == []
    del storage


def test_e006_needs_neither_the_app_nor_the_storage_module() -> None:
    """In a fresh interpreter: a project whose STORAGES names a QueuedStorage
    but lacks the app gets E006 once any storage_hooks check module loads,
    before any storage is built."""
    code = """
import json, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes"],
    STORAGES={"media": {"BACKEND": "storage_hooks.QueuedStorage", "OPTIONS": {}}},
)
django.setup()
import storage_hooks.installed
from django.core.checks import run_checks
found = [(m.id, m.msg) for m in run_checks() if str(m.id).startswith("storage_hooks")]
print(json.dumps({"found": found, "storage": "storage_hooks.storage" in sys.modules}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    answer = json.loads(result.stdout)
    assert answer["storage"] is False
    assert answer["found"] == [
        [
            "storage_hooks.E006",
            "QueuedStorage is used (STORAGES: 'media') but 'storage_hooks' is not in "
            "INSTALLED_APPS.",
        ]
    ]
