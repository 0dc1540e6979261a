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
