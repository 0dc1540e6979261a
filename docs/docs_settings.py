"""Django settings for building the documentation and running its examples.

The API reference imports the package, and the examples marked as doctests
save real files: to two file-system storages in a temporary folder, through
the immediate runner, with the ledger in an in-memory SQLite database.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

MEDIA = Path(tempfile.mkdtemp(prefix="storage_hooks_docs_"))
atexit.register(shutil.rmtree, MEDIA, ignore_errors=True)

SECRET_KEY = "documentation only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "storage_hooks",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STORAGES = {
    "default": {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {"local": "local", "remote": "remote"},
    },
    "local": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA / "local"), "base_url": "/media/"},
    },
    "remote": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA / "remote"), "base_url": "https://cdn.example.com/"},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
STORAGE_HOOKS = {"RUNNER": "immediate", "RETRY_DELAY": 0}

_migrated = False


def doctest_setup() -> None:
    """Create the ledger's table once per process (doctest_global_setup)."""
    global _migrated
    if not _migrated:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        _migrated = True
