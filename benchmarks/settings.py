"""Django settings of the storage_hooks side of the benchmarks.

``run.py`` fills the ``BENCH_*`` environment variables (databases, Redis
numbers, the S3 endpoint and a scratch directory) before anything reads
this module; the Celery workers inherit them.
"""

import os

from boto3.s3.transfer import TransferConfig

_env = os.environ
SCRATCH = _env.get("BENCH_DIR", "/tmp/storage_hooks_bench")
REDIS = "redis://127.0.0.1:6379/{}"
QUEUE = _env.get("BENCH_QUEUE", "bench_storage_hooks")

SECRET_KEY = "benchmarks-only"
USE_TZ = True
DEBUG = False
INSTALLED_APPS = ["storage_hooks", "benchmarks.benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _env.get("BENCH_DB", "bench_storage_hooks"),
        "HOST": "127.0.0.1",
        "USER": "postgres",
        # Workers keep their connection between tasks (Celery's Django
        # fix-up closes it after each task otherwise).
        "CONN_MAX_AGE": 600,
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS.format(_env.get("BENCH_REDIS_CACHE", "14")),
    }
}

S3 = {
    "bucket_name": _env.get("BENCH_BUCKET", "bench"),
    "endpoint_url": _env.get("BENCH_S3", "http://127.0.0.1:9000"),
    "access_key": "testing",
    "secret_key": "testing",
    "region_name": "us-east-1",
}
#: boto3's part size and in-memory part count given explicitly (8 MiB, up to
#: 10 parts in memory): a site's own transfer_config, which the library keeps,
#: to compare with the library's bounded default.
BOTO3_SIZES = TransferConfig(multipart_chunksize=8 * 2**20)


def _local(sub: str) -> dict[str, object]:
    return {"location": os.path.join(SCRATCH, sub), "base_url": f"/media/{sub}/"}


STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": _local("plain"),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "s3": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": S3},
    "queued": {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {
            "local": "django.core.files.storage.FileSystemStorage",
            "local_options": _local("queued"),
            "remote": "s3",
        },
    },
    "s3_boto3_sizes": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {**S3, "transfer_config": BOTO3_SIZES},
    },
    "queued_boto3_sizes": {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {
            "local": "django.core.files.storage.FileSystemStorage",
            "local_options": _local("queued_boto3_sizes"),
            "remote": "s3_boto3_sizes",
        },
    },
}

STORAGE_HOOKS = {
    "RUNNER": "celery",
    "QUEUE": QUEUE,
    # Workers of the "only" measurement get BENCH_CONDITIONAL_WRITES=only.
    "CONDITIONAL_WRITES": {"only": "only", "0": False}.get(
        _env.get("BENCH_CONDITIONAL_WRITES", ""), True
    ),
    # Workers of the small-file measurements get BENCH_BATCH_THREADS.
    "BATCH_THREADS": int(_env.get("BENCH_BATCH_THREADS", "8")),
}
CELERY_BROKER_URL = REDIS.format(_env.get("BENCH_REDIS_BROKER", "15"))
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_IGNORE_RESULT = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING"},
}
