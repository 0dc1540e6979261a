from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.files.storage import FileSystemStorage, InMemoryStorage
from django.core.management import call_command
from django.db import connections

from storage_hooks import ledger
from storage_hooks.storage import QueuedStorage

from . import services

_keys = itertools.count()


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    caches["default"].clear()
    ledger.clear_memory()
    yield
    caches["default"].clear()
    ledger.clear_memory()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One moto S3 server (own process, loopback) for the whole run."""
    with services.moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    bucket = f"test-{next(_keys)}-{id(object())}"
    services.create_bucket(s3_endpoint, bucket)
    return bucket


def make_s3(endpoint: str, bucket: str):  # type: ignore[no-untyped-def]
    from storages.backends.s3 import S3Storage

    return S3Storage(**services.s3_options(endpoint, bucket))


@pytest.fixture
def local_dir(tmp_path: Path) -> Path:
    path = tmp_path / "local"
    path.mkdir()
    return path


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    path = tmp_path / "remote"
    path.mkdir()
    return path


def unique_key(prefix: str = "t") -> str:
    return f"{prefix}-{next(_keys)}"


@pytest.fixture
def fs_storage(local_dir: Path, remote_dir: Path) -> QueuedStorage:
    """FileSystem -> FileSystem, with a key of its own."""
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir, base_url="/local/"),
        remote=FileSystemStorage(location=remote_dir, base_url="/remote/"),
        key=unique_key("fs"),
    )


@pytest.fixture(params=["fs-fs", "fs-memory", "fs-s3"])
def pair(request: pytest.FixtureRequest, local_dir: Path, remote_dir: Path) -> QueuedStorage:
    """The storage pairs every contract test runs against."""
    local = FileSystemStorage(location=local_dir, base_url="/local/")
    if request.param == "fs-fs":
        remote = FileSystemStorage(location=remote_dir, base_url="/remote/")
    elif request.param == "fs-memory":
        remote = InMemoryStorage(base_url="/memory/")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        remote = make_s3(endpoint, request.getfixturevalue("s3_bucket"))
    return QueuedStorage(local=local, remote=remote, key=unique_key(request.param))


@pytest.fixture(scope="module")
def ops_pg(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """A PostgreSQL database of the module using it, reached as the alias
    ``ops_pg`` (give the ledger ``DATABASE: "ops_pg"`` to use it); its DSN for
    a second connection. Added after the test databases are set up, so that
    pytest-django leaves it alone (as ``other_database``)."""
    services.require("PostgreSQL", services.POSTGRES)
    import psycopg

    name = f"test_storage_hooks_ops_{os.getpid()}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    config = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": "127.0.0.1",
        "PORT": 5432,
        "USER": "postgres",
        # A lock we fail to skip makes the test fail, not hang.
        "OPTIONS": {"options": "-c lock_timeout=5000"},
    }
    connections.settings["ops_pg"] = connections.configure_settings(
        {"default": {}, "ops_pg": config}
    )["ops_pg"]
    try:
        with django_db_blocker.unblock():
            call_command("migrate", database="ops_pg", verbosity=0)
        assert connections["ops_pg"].settings_dict["NAME"] == name
        yield f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
    finally:
        if hasattr(connections._connections, "ops_pg"):
            connections["ops_pg"].close()
            del connections["ops_pg"]
        del connections.settings["ops_pg"]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def other_database(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """A second SQLite database (in memory), reached as the alias ``other``.
    Added after the test databases are set up, and only for the module using
    it (as ``ops_pg``): every other test keeps seeing one
    database, and the system checks do not reach a second one. A test that
    uses it names both: ``django_db(databases=["default", "other"])``."""
    config = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    configured = connections.configure_settings({"default": {}, "other": config})
    connections.settings["other"] = configured["other"]
    try:
        with django_db_blocker.unblock():
            call_command("migrate", database="other", verbosity=0)
        yield "other"
    finally:
        if hasattr(connections._connections, "other"):
            really_close(connections["other"])
            del connections["other"]
        del connections.settings["other"]


def really_close(connection: Any) -> None:
    """Close a database connection, an in-memory SQLite one included (whose
    ``close()`` Django skips, so that the database lives on; Python 3.13 warns
    about such a connection when it is collected)."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        if connection.connection is not None:
            connection.connection.close()
            connection.connection = None
    else:
        connection.close()


def close_thread_connections() -> None:
    """Close the connections the current (test-made) thread opened."""
    for connection in connections.all(initialized_only=True):
        really_close(connection)


def forked_child_sends(target: Any, holding: Any) -> Any:
    """What ``target(pipe)`` sends from a child forked while the lock
    ``holding`` is held by this process (as another thread may hold it when
    a server forks): a child that blocks on the copy of that lock fails."""
    import multiprocessing

    with holding:
        context = multiprocessing.get_context("fork")
        here, there = context.Pipe()
        child = context.Process(target=target, args=(there,))
        child.start()
    try:
        assert here.poll(10), "the child blocked"
        return here.recv()
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
