# ruff: noqa: F821
# storage_hooks: add this to the end of proj/settings.py
import os

INSTALLED_APPS += ["storage_hooks", "uploads"]

STORAGES = {
    # Every FileField without a storage of its own: saved to "local" at once,
    # then copied to "s3" by a Celery worker.
    "default": {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {"local": "local", "remote": "s3"},
    },
    "local": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": BASE_DIR / "media", "base_url": "/media/"},
    },
    "s3": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ.get("S3_BUCKET", "my-uploads"),
            "region_name": os.environ.get("S3_REGION", "us-east-1"),
            # Unset for Amazon S3; the URL of MinIO, R2, Ceph... otherwise.
            "endpoint_url": os.environ.get("S3_ENDPOINT_URL") or None,
            "access_key": os.environ.get("AWS_ACCESS_KEY_ID"),
            "secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        },
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# One Redis for the Celery broker and for the cache, which the web process
# and the worker must share.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
    },
}

STORAGE_HOOKS = {"RUNNER": "celery", "QUEUE": "storage_hooks"}
