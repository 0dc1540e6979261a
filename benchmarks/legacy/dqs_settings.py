"""Django 3.2 settings for django-queued-storage (filled from BENCH_* vars)."""

import os

_env = os.environ
SCRATCH = _env["BENCH_DIR"]
REDIS = "redis://127.0.0.1:6379/{}"
QUEUE = "bench_dqs"

SECRET_KEY = "benchmarks-only"
USE_TZ = True
INSTALLED_APPS = ["benchmarks.legacy.dqsapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _env["BENCH_DB"],
        "HOST": "127.0.0.1",
        "USER": "postgres",
        "CONN_MAX_AGE": 600,
    }
}
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS.format(_env["BENCH_REDIS_CACHE"]),
        # Its "transferred" flags must not expire (the default is 300 s):
        # afterwards each url() asks the remote again.
        "TIMEOUT": None,
    }
}
S3 = {
    "bucket_name": _env["BENCH_BUCKET"],
    "endpoint_url": _env["BENCH_S3"],
    "access_key": "testing",
    "secret_key": "testing",
    "region_name": "us-east-1",
}
LOCAL = {"location": os.path.join(SCRATCH, "dqs-local"), "base_url": "/media/"}
PLAIN = {"location": os.path.join(SCRATCH, "dqs-plain"), "base_url": "/media/"}

CELERY_BROKER_URL = REDIS.format(_env["BENCH_REDIS_BROKER"])
CELERY_TASK_DEFAULT_QUEUE = QUEUE
CELERY_TASK_IGNORE_RESULT = True
CELERY_IMPORTS = ["queued_storage.tasks"]
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
