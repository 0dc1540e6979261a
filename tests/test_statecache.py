"""The cache in front of the ledger is only an accelerator
(storage_hooks.statecache): with the cache server down, everything works."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.db import connections, transaction
from django.db.utils import load_backend

from storage_hooks import Status, ledger, signals, statecache
from storage_hooks.runners import Runner
from storage_hooks.runners.publisher import Publisher
from storage_hooks.storage import QueuedStorage

from . import services
from .conftest import forked_child_sends
from .test_publisher import Sink
from .testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)


def unreachable_cache() -> dict[str, Any]:
    """The CACHES entry of a Redis cache on a port nothing listens on."""
    pytest.importorskip("redis")
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{services.free_port()}/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }


@pytest.fixture
def cache_down(settings: Any) -> str:
    """A Redis cache on a port nothing listens on."""
    settings.CACHES = {**settings.CACHES, "down": unreachable_cache()}
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


def test_the_cache_warning_names_the_cache_and_the_call_that_failed(
    cache_down: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="storage_hooks"):
        statecache.fill("k", {"n": str(Status.QUEUED)})
    [message] = [r.getMessage() for r in caplog.records if "answering from the ledger" in r.msg]
    assert "'down'" in message
    assert "(add: " in message


def test_a_status_read_from_the_ledger_is_shared_with_other_processes(
    fs_storage: QueuedStorage, django_assert_num_queries: Any
) -> None:
    name = fs_storage.save("shared.txt", ContentFile(b"x"))
    caches["default"].clear()
    ledger.clear_memory()
    assert fs_storage.status(name) == Status.REMOTE  # read from the ledger
    ledger.clear_memory()  # another process remembers nothing ...
    with django_assert_num_queries(0):  # ... and asks the cache only
        assert fs_storage.status(name) == Status.REMOTE


def test_a_file_seen_on_the_remote_is_then_answered_from_memory(
    counting_cache: CountingCache,
) -> None:
    statecache.fill("k", {"seen.txt": str(Status.REMOTE)})
    statecache.clear_memory()  # known to the cache only, as in another process
    assert statecache.get("k", "seen.txt") == Status.REMOTE
    assert statecache.get("k", "seen.txt") == Status.REMOTE
    assert counting_cache.calls == {"set_many": 1, "get": 1}


def test_only_the_remote_state_is_cached_for_good(settings: Any) -> None:
    """Other states change behind a process's back: trusted CACHE_TIMEOUT
    seconds only, however they got into the cache."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "CACHE_TIMEOUT": 1}
    statecache.publish_now("k", "remote.txt", str(Status.REMOTE))
    statecache.publish_now("k", "queued.txt", str(Status.QUEUED))
    statecache.fill("k", {"failed.txt": str(Status.FAILED)})
    time.sleep(1.1)
    statecache.clear_memory()
    assert statecache.get("k", "remote.txt") == Status.REMOTE
    assert statecache.get("k", "queued.txt") is None
    assert statecache.get("k", "failed.txt") is None


def test_a_committed_change_no_longer_skips_the_cache_in_the_next_transaction() -> None:
    with transaction.atomic():
        statecache.publish_on_commit("k", "n.txt", str(Status.QUEUED), "default")
        assert statecache.changed_here("k", "n.txt", "default")
    with transaction.atomic():
        assert not statecache.changed_here("k", "n.txt", "default")
        assert statecache.get("k", "n.txt") == Status.QUEUED


@pytest.fixture
def ledger_db(tmp_path: Path) -> Iterator[str]:
    """A second database, as a project that keeps the ledger in a database
    of its own (``STORAGE_HOOKS["DATABASE"]``) has; a connection made for
    this test only (Django allows such dynamically created connections)."""
    alias = "ledger_db"
    config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "ledger.sqlite3")}
    settings_dict = connections.configure_settings({"default": {}, alias: config})[alias]
    connection = load_backend(config["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    connections[alias] = connection
    try:
        yield alias
    finally:
        connection.close()
        del connections[alias]


def test_changes_are_published_when_the_ledgers_own_database_commits(
    ledger_db: str, counting_cache: CountingCache
) -> None:
    with transaction.atomic(using=ledger_db):
        statecache.publish_on_commit("k", "one.txt", str(Status.QUEUED), ledger_db)
        statecache.publish_many_on_commit([("k", "two.txt", str(Status.QUEUED))], ledger_db)
        assert counting_cache.calls == {}  # not before that database commits
    assert counting_cache.calls == {"set": 1, "set_many": 1}

    def publish_then_fail() -> None:
        with transaction.atomic(using=ledger_db):
            statecache.publish_on_commit("k", "three.txt", str(Status.QUEUED), ledger_db)
            statecache.publish_many_on_commit([("k", "four.txt", None)], ledger_db)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        publish_then_fail()
    assert statecache.get("k", "three.txt") is None
    assert statecache.get("k", "four.txt") is None


def test_publish_many_now_writes_once_per_timeout(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file on the remote stays cached until it is deleted; the other
    states for CACHE_TIMEOUT: one ``set_many`` each, at once."""
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", "CACHE_TIMEOUT": 42}
    writes: list[tuple[dict[str, str], int | None]] = []
    cache = statecache._cache()
    monkeypatch.setattr(cache, "set_many", lambda values, timeout: writes.append((values, timeout)))
    statecache.publish_many_now(
        [("k", "a", str(Status.TRANSFERRING)), ("k", "b", str(Status.REMOTE)), ("k", "c", None)]
    )
    key = statecache.cache_key
    assert sorted(writes, key=lambda w: str(w[1])) == [
        ({key("k", "a"): "transferring", key("k", "c"): statecache.UNKNOWN}, 42),
        ({key("k", "b"): "remote"}, None),
    ]
    assert statecache.remembers_remote("k", "b")


# -- new rows' stale entries, deleted by the publisher thread -----------------


class HeldSink(Sink):
    """The sends of a publisher thread (``hold()`` keeps the thread busy)."""


held_sink = HeldSink()
held_publisher = Publisher(held_sink, lambda app: "the test's sink", statecache.drop_held)


class BackgroundRunner(Runner):
    """Sends through ``held_publisher``, as the Celery runner does with
    PUBLISH = "background"."""

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        held_publisher.submit(None, key, [name], "q")

    def background(self) -> Publisher:
        return held_publisher


@pytest.fixture
def background(settings: Any) -> Iterator[HeldSink]:
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.BackgroundRunner"}
    held_sink.calls.clear()
    held_sink.release()
    yield held_sink
    held_sink.release()
    assert held_publisher.drain(10)


def busy(sink: HeldSink) -> None:
    """Keep the publisher thread busy with a send until ``sink.release()``."""
    sink.hold()
    held_publisher.submit(None, "other", ["first.txt"], "q")
    assert sink.entered.wait(10)


def cached(storage: QueuedStorage, name: str) -> Any:
    return caches["default"].get(statecache.cache_key(storage.key, name))


def test_a_new_rows_stale_entry_is_deleted_by_the_publisher_thread(
    fs_storage: QueuedStorage, background: HeldSink
) -> None:
    statecache.fill(fs_storage.key, {"new.txt": statecache.UNKNOWN})  # asked before the save
    busy(background)
    with transaction.atomic():
        name = fs_storage.save("new.txt", ContentFile(b"x"))
    # The thread is busy, so the stale entry is still there; this process
    # reads the ledger meanwhile.
    assert cached(fs_storage, name) == statecache.UNKNOWN
    assert statecache.holds(fs_storage.key, name)
    assert fs_storage.status(name) == Status.QUEUED
    background.release()
    assert held_publisher.drain(10)
    assert cached(fs_storage, name) is None
    assert not statecache.holds(fs_storage.key, name)
    assert fs_storage.status(name) == Status.QUEUED  # from the ledger, and cached
    assert cached(fs_storage, name) == Status.QUEUED
    assert [names for _, _, names, _ in background.calls] == [["first.txt"], [name]]


@pytest.mark.parametrize("recorded_by", ["a savepoint", "another local storage"])
def test_a_new_rows_stale_entry_waits_for_the_thread_whichever_way_the_row_was_made(
    fs_storage: QueuedStorage, background: HeldSink, monkeypatch: Any, recorded_by: str
) -> None:
    """The two other ways a save records its row hand the stale entry to the
    publisher thread too: a database without ``INSERT ... ON CONFLICT`` (a
    savepoint around the insert), and a local storage that is not a file
    system (its own ``save``, then the row)."""
    from django.core.files.storage import InMemoryStorage

    storage = fs_storage
    if recorded_by == "a savepoint":
        # The ledger's database as one without ON CONFLICT DO NOTHING.
        monkeypatch.setattr(transaction.get_connection(ledger.db_alias()), "vendor", "other")
    else:
        storage = QueuedStorage(local=InMemoryStorage(), remote=fs_storage.remote, key=storage.key)
    statecache.fill(storage.key, {"new.txt": statecache.UNKNOWN})  # asked before the save
    busy(background)
    with transaction.atomic():
        name = storage.save("new.txt", ContentFile(b"x"))
    assert name == "new.txt"
    assert cached(storage, name) == statecache.UNKNOWN  # not replaced at commit
    assert statecache.holds(storage.key, name)
    background.release()
    assert held_publisher.drain(10)
    assert cached(storage, name) is None
    assert not statecache.holds(storage.key, name)
    monkeypatch.undo()
    assert storage.status(name) == Status.QUEUED


def test_a_change_made_while_the_entry_waits_is_not_undone(
    fs_storage: QueuedStorage, background: HeldSink
) -> None:
    busy(background)
    name = fs_storage.save("gone.txt", ContentFile(b"x"))  # its stale entry waits ...
    fs_storage.delete(name)  # ... and the delete publishes at once
    background.release()
    assert held_publisher.drain(10)
    statecache.clear_memory()
    assert cached(fs_storage, name) in (None, statecache.UNKNOWN)
    assert fs_storage.status(name) is None
    assert not fs_storage.exists(name)


def test_several_saves_of_one_transaction_are_all_sent_and_dropped(
    fs_storage: QueuedStorage, background: HeldSink
) -> None:
    statecache.fill(fs_storage.key, {f"t{i}.txt": statecache.UNKNOWN for i in range(5)})
    with transaction.atomic():
        names = [fs_storage.save(f"t{i}.txt", ContentFile(b"x")) for i in range(5)]
    assert held_publisher.drain(10)
    sent = [name for _, _, group, _ in background.calls for name in group]
    assert sorted(sent) == sorted(names)
    assert {name: cached(fs_storage, name) for name in names} == dict.fromkeys(names)


class InlineRunner(Runner):
    """Sends nothing, and has no publisher thread."""

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        pass


def test_without_a_publisher_thread_the_entry_is_set_at_commit(
    fs_storage: QueuedStorage, settings: Any
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.InlineRunner"}
    statecache.fill(fs_storage.key, {"now.txt": statecache.UNKNOWN})
    with transaction.atomic():
        name = fs_storage.save("now.txt", ContentFile(b"x"))
        assert cached(fs_storage, name) == statecache.UNKNOWN
    assert not statecache.holds(fs_storage.key, name)
    assert cached(fs_storage, name) == Status.QUEUED


class BrokenRunner(InlineRunner):
    """Its publisher thread cannot be reached."""

    def background(self) -> Publisher:
        raise RuntimeError("can't start new thread")


def test_a_publisher_thread_out_of_reach_costs_the_save_nothing(
    fs_storage: QueuedStorage, settings: Any, local_dir: Path
) -> None:
    """The entry is then set at commit, as without a thread; the file is in
    place and recorded."""
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.BrokenRunner"}
    name = fs_storage.save("kept.txt", ContentFile(b"kept"))
    assert (local_dir / name).read_bytes() == b"kept"
    assert ledger.fresh_status(fs_storage.key, name) == Status.QUEUED
    assert cached(fs_storage, name) == Status.QUEUED


def _forked_holds(there: Any) -> None:
    parents = (statecache.holds("k", "parent.txt"), set(statecache._dropping.names))
    statecache.drop_later([("k", "child.txt")], lambda: None)  # its own, on its own lock
    there.send((*parents, statecache.holds("k", "child.txt")))


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_forgets_its_parents_entries_to_delete() -> None:
    """Forked while the parent's thread holds the lock: the child neither
    blocks on that lock nor takes the parent's names for its own."""
    statecache._dropping.names.add(("k", "parent.txt"))
    try:
        sent = forked_child_sends(_forked_holds, statecache._dropping.lock)
    finally:
        statecache._dropping.names.discard(("k", "parent.txt"))
    assert sent == (False, set(), True)
