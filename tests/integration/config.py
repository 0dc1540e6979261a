"""One description of the deployment under test, shared by both processes.

The test process and the Celery worker it starts must agree on the broker,
the queue, the database, the cache and the storage. They both build their
configuration from one :class:`Deployment`: the test process directly, the
worker from the JSON the test process puts in its environment (``IT_DEPLOYMENT``).
Every name in Redis and PostgreSQL carries the session's token, so runs that
share the services don't meet.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

ENV_VAR = "IT_DEPLOYMENT"

#: Credentials moto accepts; distinctive, so a test can look for them.
ACCESS_KEY = "AKIASTORAGEHOOKSIT"
SECRET_KEY = "it-secret-do-not-ship-0f3a9c"

#: The broker redelivers an unacknowledged message after this many seconds.
VISIBILITY_TIMEOUT = 30


@dataclass(frozen=True)
class Deployment:
    token: str
    db_name: str
    redis_url: str
    endpoint: str
    bucket: str
    local_dir: str
    #: The storage's alias in the worker's STORAGES, hence its key.
    key: str = "media"
    queue: str = "storage_hooks"
    retries: int = 5
    retry_delay: float = 0.05
    retry_delay_max: float = 0.5
    stuck_after: float = 900
    host_queues: bool = False
    hostname: str = ""
    #: Bytes per second the worker reads local files at (0: no limit).
    throttle: int = 0
    #: "celery" (workers on Redis) or "tasks" (django.tasks on the
    #: database backend of django-tasks-db, its db_worker as the worker).
    runner: str = "celery"
    #: The worker's hooks of the storage (dotted paths).
    hooks: tuple[str, ...] = ("storage_hooks.hooks.DeleteLocal",)
    #: Files per message from one transaction, and threads per message.
    batch_size: int = 50
    batch_threads: int = 8

    def replace(self, **changes: Any) -> Deployment:
        return dataclasses.replace(self, **changes)

    # -- passing it to the worker ------------------------------------------

    def to_env(self) -> dict[str, str]:
        return {ENV_VAR: json.dumps(dataclasses.asdict(self))}

    @classmethod
    def from_env(cls) -> Deployment:
        try:
            data = os.environ[ENV_VAR]
        except KeyError:
            raise RuntimeError(
                f"{ENV_VAR} is not set: tests.integration.settings is for the worker that "
                "tests/integration/conftest.py starts, not for running pytest."
            ) from None
        return cls(**json.loads(data))

    # -- names in Redis ------------------------------------------------------

    @property
    def prefix(self) -> str:
        """Every Redis key of this session starts with it."""
        return f"storage_hooks_it:{self.token}:"

    @property
    def broker_prefix(self) -> str:
        return f"{self.prefix}broker:"

    @property
    def cache_prefix(self) -> str:
        return f"{self.prefix}cache"

    @property
    def events_key(self) -> str:
        """The Redis list the worker's receivers append events to."""
        return f"{self.prefix}events:{self.queue}"

    # -- settings --------------------------------------------------------------

    def database(self) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.db_name,
            "HOST": "127.0.0.1",
            "PORT": 5432,
            "USER": "postgres",
            # A locked ledger table fails a query within a second.
            "OPTIONS": {"options": "-c lock_timeout=1000"},
        }

    def cache(self) -> dict[str, Any]:
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": self.redis_url,
            "KEY_PREFIX": self.cache_prefix,
        }

    def storage_hooks(self) -> dict[str, Any]:
        return {
            "RUNNER": self.runner,
            "QUEUE": self.queue,
            "RETRIES": self.retries,
            "RETRY_DELAY": self.retry_delay,
            "RETRY_DELAY_MAX": self.retry_delay_max,
            "STUCK_AFTER": self.stuck_after,
            "CACHE": "shared",
            "CACHE_PREFIX": "files",
            "HOST_QUEUES": self.host_queues,
            "HOSTNAME": self.hostname or None,
            "BATCH_SIZE": self.batch_size,
            "BATCH_THREADS": self.batch_threads,
        }

    def tasks(self) -> dict[str, Any]:
        """TASKS of both processes: the database backend, this queue."""
        return {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": [self.queue]}}

    def celery(self) -> dict[str, Any]:
        """Celery configuration (lower-case names) of both processes."""
        return {
            "broker_url": self.redis_url,
            "broker_transport_options": {
                "global_keyprefix": self.broker_prefix,
                "visibility_timeout": VISIBILITY_TIMEOUT,
            },
            "broker_connection_retry_on_startup": True,
            "worker_prefetch_multiplier": 1,
            "task_ignore_result": True,
        }

    def s3_options(self) -> dict[str, Any]:
        from botocore.config import Config

        return {
            "bucket_name": self.bucket,
            "endpoint_url": self.endpoint,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region_name": "us-east-1",
            "file_overwrite": True,
            "querystring_auth": False,
            # Fail fast when S3 is down; the library's retries take over.
            "client_config": Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=2,
                read_timeout=20,
            ),
        }
