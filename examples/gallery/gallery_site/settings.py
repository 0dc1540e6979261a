"""Settings of the gallery example.

With no environment this is the demo: SQLite and a file cache under
``var/``, Celery on kombu's file-system broker (no server), and S3 at the
endpoint ``demo.py`` starts (moto). Each ``GALLERY_*`` variable swaps one
part for a real service: PostgreSQL, Redis, Amazon S3. Every variable is
listed in examples/gallery/README.rst.

``DEBUG`` is off unless ``GALLERY_DEBUG=1`` (``demo.py`` sets it for the
local demo); with it off the site refuses to start without a
``GALLERY_SECRET_KEY`` of its own.
"""

from pathlib import Path

from botocore.config import Config
from django.core.exceptions import ImproperlyConfigured

from storage_hooks.hooks import DeleteLocal, StripMetadata, Thumbnails

from .env import cache, database, env, env_bool, env_int, env_number, folder

BASE_DIR = Path(__file__).resolve().parent.parent
#: Everything the site writes: database, media, broker folders (git-ignored).
VAR_DIR = folder(Path(env("GALLERY_VAR_DIR", str(BASE_DIR / "var"))).resolve())

DEBUG = env_bool("GALLERY_DEBUG", False)
#: Good for a local demo only: anyone who reads this file can forge sessions.
DEMO_SECRET_KEY = "demo-only-this-key-is-not-secret"
SECRET_KEY = env("GALLERY_SECRET_KEY", DEMO_SECRET_KEY if DEBUG else "")
if not DEBUG and SECRET_KEY in ("", DEMO_SECRET_KEY):
    raise ImproperlyConfigured(
        "GALLERY_SECRET_KEY must be set to a secret of your own when GALLERY_DEBUG is off "
        "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'). For a local "
        "demo, run examples/gallery/demo.py, or set GALLERY_DEBUG=1."
    )
ALLOWED_HOSTS = env("GALLERY_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

# -- uploads -------------------------------------------------------------

#: The largest image the upload form accepts, in MiB (photos/forms.py).
MAX_UPLOAD_MB = env_number("GALLERY_MAX_UPLOAD_MB", 20)
#: How many images one upload may carry. Django refuses more files than
#: this in one request before reading them (DATA_UPLOAD_MAX_NUMBER_FILES),
#: and the upload view refuses a request whose announced size exceeds
#: MAX_UPLOAD_MB per file before reading its body.
MAX_UPLOAD_FILES = env_int("GALLERY_MAX_UPLOAD_FILES", 20)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_UPLOAD_FILES

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # The ledger (a model), the ledger's admin, `manage.py storage_hooks`,
    # the system checks, and the Celery task `app.autodiscover_tasks()` finds.
    "storage_hooks",
    "photos",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gallery_site.urls"
WSGI_APPLICATION = "gallery_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # templates/admin/: the admin's columns at laptop widths.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

#: The demo's own database; `manage.py demo_admin` makes its admin/admin
#: account here and nowhere else.
DEMO_DATABASE = VAR_DIR / "gallery.sqlite3"
DATABASES = {"default": database(env("GALLERY_DATABASE_URL", f"sqlite:///{DEMO_DATABASE}"))}
# Shared by the web server and the worker (see env.cache).
CACHES = {"default": cache(env("GALLERY_CACHE_URL", f"file://{VAR_DIR / 'cache'}"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
# Short dates in the admin (gallery_site/formats/en/formats.py).
FORMAT_MODULE_PATH = ["gallery_site.formats"]
STATIC_URL = "static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = folder(VAR_DIR / "media")

# -- storages ------------------------------------------------------------

S3_ENDPOINT = env("GALLERY_S3_ENDPOINT") or None  # None: Amazon S3 itself

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # The two halves of the photo storage are ordinary Django storages.
    "photos-local": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    },
    "photos-remote": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("GALLERY_S3_BUCKET", "gallery"),
            "endpoint_url": S3_ENDPOINT,
            "region_name": env("GALLERY_S3_REGION", "us-east-1"),
            # Signed URLs, for a private bucket (django-storages' default).
            # GALLERY_S3_SIGNED_URLS=0 for a public bucket or a CDN.
            "querystring_auth": env_bool("GALLERY_S3_SIGNED_URLS", True),
            # Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the
            # environment, or any other source boto3 knows.
            "client_config": Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"mode": "standard", "max_attempts": env_int("GALLERY_S3_MAX_ATTEMPTS", 3)},
                s3={"addressing_style": "path"} if S3_ENDPOINT else None,
            ),
        },
    },
    # The queued storage glues them together. Its alias, "photos", is its key
    # in the ledger and in task messages, so the web server and the worker
    # agree on it. The model field refers to it (see photos/models.py).
    "photos": {
        "BACKEND": "storage_hooks.QueuedStorage",
        "OPTIONS": {
            "local": "photos-local",
            "remote": "photos-remote",
            "hooks": [
                # Removes EXIF (GPS included), XMP and IPTC from each upload
                # before it leaves, after turning it upright; the event log
                # shows "metadata stripped" (photos/receivers.py).
                StripMetadata(),
                # Made by the worker at transfer_started, saved through the
                # same storage, so they are transferred (and deleted) too.
                Thumbnails({"small": (480, 480)}, format="WEBP", quality=80),
                # Removes the local copy once the remote copy is verified.
                DeleteLocal(),
            ],
            # GALLERY_DELAYED=1: nothing is transferred until someone clicks
            # "Transfer now" (or calls photo.image.transfer()).
            "delayed": env_bool("GALLERY_DELAYED", False),
        },
    },
}

# The demo's cache is a FileBasedCache: shared by the processes of one host,
# which is all the demo has (storage_hooks.W002 says so; silenced here).
if CACHES["default"]["BACKEND"].endswith("FileBasedCache"):
    SILENCED_SYSTEM_CHECKS = ["storage_hooks.W002"]

STORAGE_HOOKS = {
    "RUNNER": env("GALLERY_RUNNER", "celery"),
    "QUEUE": env("GALLERY_QUEUE", "storage_hooks"),
    "RETRIES": env_int("GALLERY_RETRIES", 3),
    "RETRY_DELAY": env_number("GALLERY_RETRY_DELAY", 10),
}

# -- Celery --------------------------------------------------------------

CELERY_BROKER_URL = env("GALLERY_BROKER_URL", "filesystem://localhost/")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's file-system transport: each message is a file in var/broker/,
    # so the demo needs no broker server. Producer and worker share folders.
    _queue = str(folder(VAR_DIR / "broker" / "queue"))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": _queue,
        "data_folder_out": _queue,
        "control_folder": str(folder(VAR_DIR / "broker" / "control")),
        "processed_folder": str(folder(VAR_DIR / "broker" / "processed")),
        "polling_interval": 0.2,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # The pages poll /api/ every second or so; keep that out of the log.
        "no_polling": {
            "()": "django.utils.log.CallbackFilter",
            "callback": lambda record: "/api/" not in record.getMessage(),
        }
    },
    "formatters": {
        "server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "server": {
            "class": "logging.StreamHandler",
            "formatter": "server",
            "filters": ["no_polling"],
        },
    },
    "loggers": {
        "storage_hooks": {"handlers": ["console"], "level": "INFO"},
        "django.server": {"handlers": ["server"], "level": "INFO", "propagate": False},
    },
}
