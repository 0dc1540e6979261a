"""The cache in front of the ledger is only an accelerator
(storage_hooks.statecache): with the cache server down, everything works."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.db import transaction

from storage_hooks import Status, signals, statecache
from storage_hooks.storage import QueuedStorage

from . import services
from .testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cache_down(settings: Any) -> str:
    """A Redis cache on a port nothing listens on."""
    pytest.importorskip("redis")
    port = services.free_port()
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "CACHE": "down"}
    statecache._last_error_logged = 0.0  # as in a fresh process
    return "down"


def test_save_read_and_enqueue_work_with_the_cache_server_down(
    fs_storage: QueuedStorage, cache_down: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011  (the cache really is down)
        caches[cache_down].get("anything")
    with (
        caplog.at_level(logging.WARNING, logger="storage_hooks"),
        recording(fs_storage, signals.transfer_queued, signals.transferred) as events,
        transaction.atomic(),
    ):
        name = fs_storage.save("a.txt", ContentFile(b"cacheless"))
    # The enqueue ran at commit although the cache publication failed.
    assert [n for n, _ in events] == ["transfer_queued", "transferred"]
    assert fs_storage.status(name) == Status.REMOTE
    assert fs_storage.url(name).startswith("/remote/")
    with fs_storage.open(name) as fh:
        assert fh.read() == b"cacheless"
    assert fs_storage.statuses([name, "nope.txt"]) == {name: Status.REMOTE, "nope.txt": None}
    # Logged, but not once per call.
    failures = [r for r in caplog.records if "answering from the ledger" in r.getMessage()]
    assert len(failures) == 1


def test_a_flushed_cache_changes_no_answer(fs_storage: QueuedStorage, local_dir: Path) -> None:
    name = fs_storage.save("f.txt", ContentFile(b"x"))
    before = fs_storage.status(name)
    caches["default"].clear()
    from storage_hooks import ledger

    ledger.clear_memory()
    assert fs_storage.status(name) == before == Status.REMOTE


class CountingCache:
    """The real cache, with its calls counted by method."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.calls: dict[str, int] = {}

    def __getattr__(self, method: str) -> Any:
        found = getattr(self.cache, method)
        if not callable(found):
            return found

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[method] = self.calls.get(method, 0) + 1
            return found(*args, **kwargs)

        return counted


@pytest.fixture
def counting_cache(monkeypatch: pytest.MonkeyPatch) -> CountingCache:
    counting = CountingCache(statecache._cache())
    monkeypatch.setattr(statecache, "_cache", lambda: counting)
    return counting


def test_publish_many_on_commit_is_one_set_many_after_commit(
    counting_cache: CountingCache,
) -> None:
    items = [("k", f"n{i}", str(Status.QUEUED)) for i in range(50)] + [("k", "gone", None)]
    with transaction.atomic():
        statecache.publish_many_on_commit(items, "default")
        assert counting_cache.calls == {}  # nothing before the commit
        assert statecache.changed_here("k", "n7", "default")  # reads here skip the cache
    # QUEUED and UNKNOWN share a timeout: one round trip.
    assert counting_cache.calls == {"set_many": 1}
    assert statecache.get("k", "n7") == Status.QUEUED
    assert statecache.get("k", "gone") == statecache.UNKNOWN
    assert not statecache.changed_here("k", "n7", "default")


def test_publish_many_on_commit_publishes_nothing_on_rollback(
    counting_cache: CountingCache,
) -> None:
    def publish_then_fail() -> None:
        with transaction.atomic():
            statecache.publish_many_on_commit([("k", "rolled", str(Status.QUEUED))], "default")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        publish_then_fail()
    assert counting_cache.calls == {}
    assert statecache.get("k", "rolled") is None


def test_publish_many_on_commit_tolerates_a_cache_server_down(
    cache_down: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="storage_hooks"), transaction.atomic():
        statecache.publish_many_on_commit([("k", "a", str(Status.QUEUED))], "default")
    assert "set_many" in caplog.text
