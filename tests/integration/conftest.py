"""Fixtures of the integration tests: real Redis, PostgreSQL, moto's S3
server and Celery worker processes.

Isolation: the session has a token; its PostgreSQL database
(``test_storage_hooks_celery_<pid>_<hex>``), its Redis keys (broker, cache,
events: ``storage_hooks_it:<token>:...``) and its queue names carry it, and
all of them are removed at the end. Redis is never flushed: other runs may
share it.

The test process keeps ``tests.settings``; it reaches the shared database
through the extra alias ``integration`` (the ledger's ``DATABASE`` setting),
so these tests run in the same pytest invocation as the rest of the suite.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services

from .broker import Broker
from .config import Deployment
from .harness import ALIAS, Site

REDIS_URL = "redis://127.0.0.1:6379/0"

_numbers = itertools.count(1)


@pytest.fixture(scope="package")
def token() -> str:
    return f"{os.getpid()}x{secrets.token_hex(3)}"


def _stale(token: str) -> bool:
    """Whether ``token`` is of a run whose process is gone (killed before
    its teardown)."""
    pid = token.partition("x")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@pytest.fixture(scope="package")
def redis_client(token: str) -> Iterator[Any]:
    services.require("Redis", services.REDIS)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match="storage_hooks_it:*", count=1000):
        if _stale(key.decode().split(":")[1]):
            client.delete(key)
    yield client
    client.close()


@pytest.fixture(scope="package")
def integration_db(token: str, django_db_blocker: Any) -> Iterator[str]:
    """A PostgreSQL database of this session, migrated, shared with the
    workers; the test process reaches it as the alias ``integration``."""
    services.require("PostgreSQL", services.POSTGRES)
    import psycopg
    from django.core.management import call_command
    from django.db import connections
    from django.test import override_settings

    prefix = "test_storage_hooks_celery_"
    name = prefix + token
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        query = "SELECT datname FROM pg_database WHERE datname LIKE %s"
        for (old,) in conn.execute(query, [prefix + "%"]).fetchall():
            if _stale(old.removeprefix(prefix)):
                conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    config = Deployment(
        token=token, db_name=name, redis_url="", endpoint="", bucket="", local_dir=""
    ).database()
    connections.settings[ALIAS] = connections.configure_settings({"default": {}, ALIAS: config})[
        ALIAS
    ]
    try:
        with (
            django_db_blocker.unblock(),
            override_settings(DATABASE_ROUTERS=["tests.integration.harness.TasksRouter"]),
        ):
            call_command("migrate", database=ALIAS, verbosity=0, interactive=False)
        yield name
    finally:
        if hasattr(connections._connections, ALIAS):
            connections[ALIAS].close()
            del connections[ALIAS]
        del connections.settings[ALIAS]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="package")
def base_deployment(token: str, integration_db: str, s3_endpoint: str) -> Deployment:
    return Deployment(
        token=token,
        db_name=integration_db,
        redis_url=REDIS_URL,
        endpoint=s3_endpoint,
        bucket="",
        local_dir="",
    )


@pytest.fixture(scope="package")
def celery_client(base_deployment: Deployment, redis_client: Any) -> Iterator[Any]:
    """The test process's Celery app (it only sends), made current so that
    the runner's ``apply_async`` goes to the session's broker keys."""
    from celery import Celery, _state

    previous = _state.get_current_app()
    app = Celery("storage_hooks_it_client", set_as_current=True)
    app.conf.update(base_deployment.celery())
    yield app
    app.close()
    _state._set_current_app(previous)
    Broker(redis_client, base_deployment).delete_prefixed(base_deployment.prefix)


@pytest.fixture
def site(
    base_deployment: Deployment,
    celery_client: Any,
    redis_client: Any,
    settings: Any,
    tmp_path: Path,
    django_db_blocker: Any,
) -> Iterator[Site]:
    """A fresh deployment (own queue, bucket, local directory and storage
    key) with its bucket created; start workers with ``site.start_worker``."""
    number = next(_numbers)
    deployment = base_deployment.replace(
        key=f"media{number}",
        queue=f"storage_hooks_it_{base_deployment.token}_{number}",
        bucket=f"it-{base_deployment.token}-{number}",
        local_dir=str(tmp_path / "local"),
    )
    with django_db_blocker.unblock():
        site = Site(deployment, settings, Broker(redis_client, deployment), tmp_path)
        site.create_bucket()
        try:
            yield site
        finally:
            site.close()
