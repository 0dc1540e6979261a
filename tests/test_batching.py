"""Many files per message (storage_hooks.batching): what one transaction
queues is handed to the runner together, nothing is left behind by a
rollback, and a worker's batch transfers every file on its own.

Batches run by several threads at once, and delivered twice at once, are
in tests/integration/test_races.py (PostgreSQL: SQLite locks the whole
database for each writer)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.checks import run_checks
from django.core.files.base import ContentFile
from django.db import OperationalError, transaction

from storage_hooks import Status, batching
from storage_hooks.conf import hostname
from storage_hooks.runners import Runner
from storage_hooks.storage import QueuedStorage
from storage_hooks.transfer import Outcome

from .conftest import close_thread_connections
from .testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)


class Collecting(Runner):
    """A runner that keeps what it is handed, for the test to run later."""

    handed: ClassVar[list[tuple[str, list[str]]]] = []
    hosts: ClassVar[list[str]] = []

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        self.handed.append(("one", [name]))
        self.hosts.append(host)

    def enqueue_many(self, key: str, names: list[str], *, host: str) -> None:
        self.handed.append(("many", list(names)))
        self.hosts.append(host)


@pytest.fixture
def handed(settings: Any) -> list[tuple[str, list[str]]]:
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.Collecting", "RETRIES": 0}
    Collecting.handed = []
    Collecting.hosts = []
    return Collecting.handed


def all_names(handed: list[tuple[str, list[str]]]) -> list[str]:
    return [name for _, names in handed for name in names]


def save(storage: QueuedStorage, name: str) -> str:
    return storage.save(name, ContentFile(name.encode() * 100))


def save_and_roll_back(storage: QueuedStorage, name: str, using: str | None = None) -> None:
    with transaction.atomic(using=using):
        save(storage, name)
        raise RuntimeError("roll back")


def test_saves_of_one_transaction_are_handed_over_together_at_commit(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    with transaction.atomic():
        names = [save(fs_storage, f"t/{i}.txt") for i in range(5)]
        assert handed == []  # nothing before the commit
    assert handed == [("many", names)]


def test_a_lone_save_in_autocommit_is_handed_over_at_once_alone(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    name = save(fs_storage, "lone.txt")
    assert handed == [("one", [name])]


def test_each_file_goes_to_the_queue_of_the_host_given(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    """As retry and verify --fix re-queue a file to the host holding it."""
    save(fs_storage, "h.txt")
    fs_storage.enqueue_on_commit("h.txt", host="web-7")
    with transaction.atomic():
        fs_storage.enqueue_on_commit("h.txt", host="web-8")
    assert Collecting.hosts[1:] == ["web-7", "web-8"]


def test_a_transactions_files_go_to_this_hosts_queue(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    with transaction.atomic():
        save(fs_storage, "q/1.txt")
        save(fs_storage, "q/2.txt")
    assert Collecting.hosts == [hostname()]


class Unreachable(Collecting):
    def enqueue_many(self, key: str, names: list[str], *, host: str) -> None:
        raise ConnectionError("the broker is down")


def test_a_batch_the_runner_cannot_take_is_logged_with_the_way_to_recover(
    fs_storage: QueuedStorage, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.Unreachable", "STUCK_AFTER": 321}
    with caplog.at_level("ERROR", logger="storage_hooks"), transaction.atomic():
        first = save(fs_storage, "down/1.txt")
        save(fs_storage, "down/2.txt")
    message = caplog.records[-1].getMessage()
    assert f"2 files ({first!r}, ...)" in message
    assert "retry --stuck-after 0" in message
    assert "STUCK_AFTER (321s)" in message
    assert fs_storage.status(first) == Status.QUEUED  # saved, and left for retry


def test_a_thread_of_its_own_batches_its_own_transaction(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    """Each thread keeps its own names (a threaded web server): a thread
    that never queued anything before starts with an empty batch."""
    names: list[str] = []

    def request() -> None:
        try:
            with transaction.atomic():
                names.extend(save(fs_storage, f"th/{i}.txt") for i in range(2))
        finally:
            close_thread_connections()

    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
    assert handed == [("many", names)]


def test_a_rolled_back_transaction_leaves_nothing_behind_for_the_next(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]], remote_dir: Path
) -> None:
    with pytest.raises(RuntimeError):
        save_and_roll_back(fs_storage, "gone.txt")
    assert handed == []
    with transaction.atomic():
        kept = save(fs_storage, "kept.txt")
    assert kept in all_names(handed)

    result = batching.run_batch(fs_storage.key, all_names(handed), threads=1)
    assert dict(result.outcomes)[kept].kind == "done"
    assert fs_storage.status(kept) == Status.REMOTE
    # The rolled-back name may ride along; its message finds nothing to do.
    assert fs_storage.status("gone.txt") is None
    assert not (remote_dir / "gone.txt").exists()


def test_what_a_rolled_back_transaction_queued_never_rides_along(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    """Even when the next transaction registered callbacks of its own first."""
    with pytest.raises(RuntimeError):
        save_and_roll_back(fs_storage, "gone.txt")
    with transaction.atomic():
        transaction.on_commit(lambda: None)
        first = save(fs_storage, "first.txt")
        second = save(fs_storage, "second.txt")
    assert handed == [("many", [first, second])]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_saves_are_handed_over_when_the_ledgers_database_commits(
    fs_storage: QueuedStorage,
    handed: list[tuple[str, list[str]]],
    settings: Any,
    other_database: str,
) -> None:
    """With the ledger on a database of its own, the saves wait for that
    database's commit, whatever the default database does."""
    settings.STORAGE_HOOKS = {**settings.STORAGE_HOOKS, "DATABASE": "other"}
    with transaction.atomic(using="other"):
        with transaction.atomic():  # the default database: not the ledger's
            names = [save(fs_storage, f"o/{i}.txt") for i in range(2)]
        assert handed == []
    assert handed == [("many", names)]
    with transaction.atomic():  # the ledger's database is in autocommit
        lone = save(fs_storage, "o/lone.txt")
        assert handed[-1] == ("one", [lone])

    with pytest.raises(RuntimeError):
        save_and_roll_back(fs_storage, "o/gone.txt", using="other")
    with transaction.atomic(using="other"):
        kept = save(fs_storage, "o/kept.txt")
    assert handed[-1] == ("one", [kept])


def test_a_rolled_back_savepoint_keeps_the_saves_around_it(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]], remote_dir: Path
) -> None:
    with transaction.atomic():
        first = save(fs_storage, "first.txt")
        with pytest.raises(RuntimeError):
            save_and_roll_back(fs_storage, "inner.txt")  # a savepoint
        last = save(fs_storage, "last.txt")
    assert {first, last} <= set(all_names(handed))

    batching.run_batch(fs_storage.key, all_names(handed), threads=1)
    assert fs_storage.status(first) == fs_storage.status(last) == Status.REMOTE
    assert fs_storage.status("inner.txt") is None
    assert not (remote_dir / "inner.txt").exists()


def test_each_file_of_a_batch_has_its_own_attempt_signals_and_outcome(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]], remote_dir: Path
) -> None:
    with transaction.atomic():
        names = [save(fs_storage, f"b/{i}.txt") for i in range(6)]
    with recording(fs_storage) as events:
        result = batching.run_batch(fs_storage.key, names, threads=1)
    assert sorted(name for name, o in result.outcomes if o.kind == "done") == sorted(names)
    for signal in ("transfer_started", "transferred"):
        sent = sorted(kw["name"] for event, kw in events if event == signal)
        assert sent == sorted(names), signal
    for name in names:
        assert (remote_dir / name).read_bytes() == name.encode() * 100


def test_a_file_whose_attempt_cannot_reach_the_ledger_is_handed_back(
    fs_storage: QueuedStorage,
    handed: list[tuple[str, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database going away under one attempt (a fault that cannot be
    had for real here) records nothing for that file: it is handed back for
    another message, and the others are transferred."""
    with transaction.atomic():
        names = [save(fs_storage, f"u/{i}.txt") for i in range(3)]
    real = batching.run_transfer

    def flaky(key: str, name: str) -> Any:
        if name == names[1]:
            raise OperationalError("server closed the connection unexpectedly")
        return real(key, name)

    monkeypatch.setattr(batching, "run_transfer", flaky)
    result = batching.run_batch(fs_storage.key, names, threads=1)
    assert result.unreachable == [names[1]]
    assert result.error is None
    assert fs_storage.status(names[1]) == Status.QUEUED
    assert {name for name, _ in result.outcomes} == {names[0], names[2]}


def test_a_batch_runs_its_files_that_many_at_once_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fan-out alone (each file's transfer is tested above and, on
    PostgreSQL with real threads, in tests/integration/test_races.py): three
    threads for three files, each file once, a duplicate name ignored."""
    together = threading.Barrier(3, timeout=10)  # breaks unless 3 run at once
    ran: list[tuple[str, int]] = []

    def transfer(key: str, name: str) -> Outcome:
        together.wait()
        ran.append((name, threading.get_ident()))
        return Outcome("done")

    monkeypatch.setattr(batching, "run_transfer", transfer)
    result = batching.run_batch("k", ["a", "b", "c", "a"], threads=3)
    assert sorted(name for name, _ in result.outcomes) == ["a", "b", "c"]
    assert len({thread for _, thread in ran}) == 3
    assert result.error is None


def test_a_batch_of_one_thread_runs_in_the_workers_own_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So the worker's own database connection is used, and kept."""
    ran: list[int] = []

    def transfer(key: str, name: str) -> Outcome:
        ran.append(threading.get_ident())
        return Outcome("done")

    monkeypatch.setattr(batching, "run_transfer", transfer)
    batching.run_batch("k", ["a", "b"], threads=1)
    batching.run_batch("k", ["c"], threads=4)
    assert ran == [threading.get_ident()] * 3


def test_an_unexpected_error_does_not_stop_the_rest_of_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = ValueError("a bug in a receiver")

    def transfer(key: str, name: str) -> Outcome:
        if name == "b":
            raise broken
        return Outcome("done")

    monkeypatch.setattr(batching, "run_transfer", transfer)
    for threads in (1, 2):
        result = batching.run_batch("k", ["a", "b", "c"], threads=threads)
        assert sorted(name for name, _ in result.outcomes) == ["a", "c"]
        assert result.error is broken


def test_chunks_cut_a_transactions_names_into_messages() -> None:
    names = [f"{i}" for i in range(5)]
    assert [len(c) for c in batching.chunks(names, 2)] == [2, 2, 1]
    assert list(batching.chunks(names, 0)) == [names]  # 0: no limit
    assert list(batching.chunks(names, 1)) == [[n] for n in names]


@pytest.mark.parametrize("setting", ["BATCH_SIZE", "BATCH_THREADS"])
def test_a_negative_batch_setting_is_a_check_error(settings: Any, setting: str) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", setting: -1}
    assert "storage_hooks.E007" in [m.id for m in run_checks()]
