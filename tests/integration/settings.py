"""Settings of the Celery worker that the integration tests start.

Only the worker uses this module: the test process keeps ``tests.settings``
and points its ledger, cache and Celery client at the same services. Both
read one :class:`~tests.integration.config.Deployment`.
"""

from tests.settings import *  # noqa: F403

from .config import Deployment

_deployment = Deployment.from_env()

DATABASES = {"default": _deployment.database()}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": _deployment.cache(),
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    _deployment.key: {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {
            "local": "tests.integration.slow.SlowFileSystemStorage",
            "local_options": {
                "location": _deployment.local_dir,
                "bytes_per_second": _deployment.throttle,
            },
            "remote": "storages.backends.s3.S3Storage",
            "remote_options": _deployment.s3_options(),
            "hooks": list(_deployment.hooks),
        },
    },
}
STORAGE_HOOKS = _deployment.storage_hooks()
if _deployment.runner == "tasks":
    TASKS = _deployment.tasks()
# Celery reads these through app.config_from_object(..., namespace="CELERY").
for _name, _value in _deployment.celery().items():
    globals()[f"CELERY_{_name.upper()}"] = _value

# A project loads its Celery app when Django starts (the Celery docs put the
# import in proj/__init__.py), so every process sends tasks through it:
# manage.py too, when `storage_hooks retry` queues transfers.
from .celery_app import app as celery_app  # noqa: E402, F401
