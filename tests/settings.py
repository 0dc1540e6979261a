"""Settings of the test suite: a few lines; each test adds what it needs."""

import os
import tempfile
from importlib.util import find_spec

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "storage_hooks",
    "tests.testapp",
]
# A Tasks backend with a real queue and worker (tests/integration), for the
# django.tasks runner: needs Django 6's django.tasks.
if find_spec("django.tasks") and find_spec("django_tasks_db"):
    INSTALLED_APPS.append("django_tasks_db")
DATABASES: dict[str, dict[str, object]] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
}
if os.environ.get("STORAGE_HOOKS_TEST_DB") == "postgres":
    DATABASES["default"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "storage_hooks",
        "HOST": "127.0.0.1",
        "USER": "postgres",
        "TEST": {"NAME": f"test_storage_hooks_{os.getpid()}"},
    }
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MEDIA_ROOT = tempfile.mkdtemp(prefix="storage_hooks_media_")
STORAGE_HOOKS = {"RUNNER": "immediate"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# As a project does (proj/celery.py imported by proj/__init__.py): a Celery
# app of its own, current in every process that loads these settings. Its
# broker is in memory; tests that need a real one make their own app.
if find_spec("celery"):
    from celery import Celery

    celery_app = Celery("storage_hooks_tests", set_as_current=True, broker="memory://")
