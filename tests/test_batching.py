"""Many files per message (storage_hooks.batching): what one transaction
queues is handed to the runner together, nothing is left behind by a
rollback, and a worker's batch transfers every file on its own.

Batches run by several threads at once, and delivered twice at once, are
in tests/integration/test_races.py (PostgreSQL: SQLite locks the whole
database for each writer)."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.checks import run_checks
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.db import OperationalError, transaction
from django.db.backends.utils import CursorWrapper

from storage_hooks import Status, batching, ledger, signals
from storage_hooks.conf import hostname
from storage_hooks.hooks import DeleteLocal
from storage_hooks.models import StoredFile
from storage_hooks.runners import Runner
from storage_hooks.storage import QueuedStorage
from storage_hooks.transfer import Copy, Outcome, Proven

from .conftest import close_thread_connections, forked_child_sends, unique_key
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


def test_files_whose_claim_cannot_reach_the_ledger_are_handed_back(
    fs_storage: QueuedStorage,
    handed: list[tuple[str, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database going away under a claim (a fault that cannot be had
    for real here) records nothing for those files: they are handed back
    for another message, and the others are transferred."""
    with transaction.atomic():
        names = [save(fs_storage, f"u/{i}.txt") for i in range(3)]
    real = ledger.claim_many

    def flaky(key: str, chunk: list[str]) -> Any:
        if names[1] in chunk:
            raise OperationalError("server closed the connection unexpectedly")
        return real(key, chunk)

    monkeypatch.setattr(ledger, "claim_many", flaky)
    result = batching.run_batch(fs_storage.key, names, threads=1)
    assert result.unreachable == [names[1]]
    assert result.error is None
    assert fs_storage.status(names[1]) == Status.QUEUED
    assert {name for name, _ in result.outcomes} == {names[0], names[2]}
    assert fs_storage.status(names[2]) == Status.REMOTE


def test_copies_whose_record_cannot_reach_the_ledger_are_handed_back(
    fs_storage: QueuedStorage,
    handed: list[tuple[str, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proven but not recorded: no ``transferred``, the row stays claimed
    (its message's next delivery skips it; ``retry`` re-queues it)."""
    with transaction.atomic():
        names = [save(fs_storage, f"r/{i}.txt") for i in range(3)]
    real = ledger.mark_remote_many

    def flaky(proven: Any) -> set[int]:
        proven = list(proven)
        if any(row.name == names[1] for row, _ in proven):
            raise OperationalError("server closed the connection unexpectedly")
        return real(proven)

    monkeypatch.setattr(ledger, "mark_remote_many", flaky)
    with recording(fs_storage, signals.transferred) as events:
        result = batching.run_batch(fs_storage.key, names, threads=1)
    assert result.unreachable == [names[1]]
    assert fs_storage.status(names[1]) == Status.TRANSFERRING
    assert sorted(kw["name"] for _, kw in events) == [names[0], names[2]]
    assert dict(result.outcomes) == {
        names[0]: Outcome("done", 1, hostname()),
        names[2]: Outcome("done", 1, hostname()),
    }


class LosesRows(FileSystemStorage):
    """A remote where another process deletes the row of a file named
    ``lost*`` right after its copy is written (a race one process cannot
    cause on its own). At module level, so that the system checks of later
    tests can still import it."""

    ledger_key = ""

    def _save(self, name: str, content: Any) -> str:
        saved = super()._save(name, content)
        if name.startswith("lost"):
            ledger.delete(self.ledger_key, name)  # what storage.delete() records
        return saved


def test_a_copy_whose_row_was_lost_meanwhile_is_removed_and_skipped(
    local_dir: Path, remote_dir: Path, handed: list[tuple[str, list[str]]]
) -> None:
    """Another process deletes one file right after its copy was written:
    that copy is not recorded but removed, and the rest of its batch is
    recorded as usual."""
    remote = LosesRows(location=remote_dir)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key()
    )
    remote.ledger_key = storage.key
    with transaction.atomic():
        names = [save(storage, n) for n in ("kept-1.txt", "lost.txt", "kept-2.txt")]
    with recording(storage, signals.transferred) as events:
        result = batching.run_batch(storage.key, names, threads=1)
    assert dict(result.outcomes) == {
        "kept-1.txt": Outcome("done", 1, hostname()),
        "lost.txt": Outcome("skipped", 1, hostname()),
        "kept-2.txt": Outcome("done", 1, hostname()),
    }
    assert [kw["name"] for _, kw in events] == ["kept-1.txt", "kept-2.txt"]
    assert sorted(p.name for p in remote_dir.iterdir()) == ["kept-1.txt", "kept-2.txt"]
    assert storage.status("lost.txt") is None


def test_a_redelivered_batch_skips_the_files_already_done(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]]
) -> None:
    with transaction.atomic():
        names = [save(fs_storage, f"again/{i}.txt") for i in range(4)]
    batching.run_batch(fs_storage.key, names, threads=1)
    with recording(fs_storage) as events:
        again = batching.run_batch(fs_storage.key, [*names, "unknown.txt"], threads=2)
    assert events == []
    assert sorted(again.outcomes) == sorted(
        (name, Outcome("skipped")) for name in [*names, "unknown.txt"]
    )
    assert set(StoredFile.objects.filter(name__in=names).values_list("status", "attempts")) == {
        (Status.REMOTE, 1)
    }


def test_a_failed_file_of_a_batch_is_recorded_on_its_own(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]], remote_dir: Path
) -> None:
    (remote_dir / "blocked").write_bytes(b"a file where a directory is needed")
    with transaction.atomic():
        names = [save(fs_storage, n) for n in ("ok/1.txt", "blocked/2.txt", "ok/3.txt")]
    with recording(fs_storage, signals.transfer_failed, signals.transferred) as events:
        result = batching.run_batch(fs_storage.key, names, threads=1)
    outcomes = dict(result.outcomes)
    assert outcomes[names[1]] == Outcome("failed", 1, hostname())  # RETRIES: 0
    assert fs_storage.status(names[1]) == Status.FAILED
    assert fs_storage.status(names[2]) == Status.REMOTE
    assert [(event, kw["name"]) for event, kw in events] == [
        ("transferred", names[0]),
        ("transfer_failed", names[1]),
        ("transferred", names[2]),
    ]


def test_a_storage_whose_hooks_cannot_be_built_claims_nothing(
    local_dir: Path, remote_dir: Path, handed: list[tuple[str, list[str]]]
) -> None:
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key("nohooks"),
        hooks=["tests.nowhere.Hook"],
    )
    ledger.record_saved(storage.key, "a.txt", status=Status.QUEUED, size=1, checksum="0" * 64)
    result = batching.run_batch(storage.key, ["a.txt"])
    assert "tests.nowhere.Hook" in str(result.error)
    assert result.outcomes == []
    assert storage.status("a.txt") == Status.QUEUED


# -- the fan-out and the group commit alone (no database) --------------------

_pks = itertools.count(1)


@pytest.fixture
def claims_anything(monkeypatch: pytest.MonkeyPatch, fs_storage: QueuedStorage) -> str:
    """claim_many handing out a row per name, and the chunks it was asked
    for; the key of a registered storage."""
    chunks: list[list[str]] = []

    def claim_many(key: str, names: list[str]) -> list[StoredFile]:
        chunks.append(list(names))
        return [StoredFile(pk=next(_pks), storage_key=key, name=n, attempts=1) for n in names]

    monkeypatch.setattr(ledger, "claim_many", claim_many)
    monkeypatch.setattr(batching, "claimed_chunks", chunks, raising=False)
    return fs_storage.key


def test_a_batch_runs_its_files_that_many_at_once_each_once(
    monkeypatch: pytest.MonkeyPatch, claims_anything: str
) -> None:
    """Three threads for three files, each file once, a duplicate name
    ignored; claimed three at a time."""
    together = threading.Barrier(3, timeout=10)  # breaks unless 3 run at once
    ran: list[tuple[str, int]] = []

    def attempt(storage: QueuedStorage, row: StoredFile) -> Outcome:
        if row.name != "d":
            together.wait()
        ran.append((row.name, threading.get_ident()))
        return Outcome("done")

    monkeypatch.setattr(batching, "attempt", attempt)
    result = batching.run_batch(claims_anything, ["a", "b", "c", "a", "d"], threads=3)
    assert sorted(name for name, _ in result.outcomes) == ["a", "b", "c", "d"]
    assert len({thread for name, thread in ran if name != "d"}) == 3
    assert result.error is None
    assert batching.claimed_chunks == [["a", "b", "c"], ["d"]]  # type: ignore[attr-defined]


def test_a_batch_of_one_thread_runs_in_the_workers_own_thread(
    monkeypatch: pytest.MonkeyPatch, claims_anything: str
) -> None:
    """So the worker's own database connection is used, and kept."""
    ran: list[int] = []

    def attempt(storage: QueuedStorage, row: StoredFile) -> Outcome:
        ran.append(threading.get_ident())
        return Outcome("done")

    monkeypatch.setattr(batching, "attempt", attempt)
    batching.run_batch(claims_anything, ["a", "b"], threads=1)
    batching.run_batch(claims_anything, ["c"], threads=4)
    assert ran == [threading.get_ident()] * 3


def test_the_threads_of_a_batch_are_kept_for_the_next_message(
    monkeypatch: pytest.MonkeyPatch, claims_anything: str, own_pool: None
) -> None:
    """A worker's batch threads outlive the message: what a storage builds
    per thread (django-storages' boto3 resource, ~50 ms of CPU) is built
    once per thread, not once per message. Three at once each time."""
    local = threading.local()
    built: list[int] = []
    per_message: list[set[int]] = []
    together = threading.Barrier(3, timeout=10)

    def attempt(storage: QueuedStorage, row: StoredFile) -> Outcome:
        if not hasattr(local, "client"):
            local.client = object()
            built.append(threading.get_ident())
        per_message[-1].add(threading.get_ident())
        together.wait()
        return Outcome("done")

    monkeypatch.setattr(batching, "attempt", attempt)
    for message in range(3):
        per_message.append(set())
        names = [f"m{message}-{i}" for i in range(3)]
        result = batching.run_batch(claims_anything, names, threads=3)
        assert result.error is None
        assert len(per_message[-1]) == 3
    assert per_message[0] == per_message[1] == per_message[2]
    assert sorted(built) == sorted(per_message[0])  # one client per thread


def test_an_unexpected_error_does_not_stop_the_rest_of_the_batch(
    monkeypatch: pytest.MonkeyPatch, claims_anything: str
) -> None:
    broken = ValueError("a bug in a receiver")

    def attempt(storage: QueuedStorage, row: StoredFile) -> Outcome:
        if row.name == "b":
            raise broken
        return Outcome("done")

    monkeypatch.setattr(batching, "attempt", attempt)
    for threads in (1, 2):
        result = batching.run_batch(claims_anything, ["a", "b", "c"], threads=threads)
        assert sorted(name for name, _ in result.outcomes) == ["a", "c"]
        assert result.error is broken


def test_a_thread_that_dies_of_a_base_exception_leaves_the_others_their_files(
    monkeypatch: pytest.MonkeyPatch, claims_anything: str
) -> None:
    """SystemExit out of a hook ends one thread's share; the other threads
    go on and run_batch reports it once they are done."""
    stop = SystemExit("a hook called sys.exit()")

    def attempt(storage: QueuedStorage, row: StoredFile) -> Outcome:
        if row.name == "b":
            raise stop
        threading.Event().wait(0.05)  # (the other thread takes what is left)
        return Outcome("done")

    monkeypatch.setattr(batching, "attempt", attempt)
    result = batching.run_batch(claims_anything, ["a", "b", "c", "d"], threads=2)
    assert result.error is stop
    assert sorted(name for name, _ in result.outcomes) == ["a", "c", "d"]


def test_a_lone_copy_is_recorded_at_once_and_those_proven_meanwhile_together(
    monkeypatch: pytest.MonkeyPatch, claims_anything: str
) -> None:
    """Group commit: "a" is recorded alone, at once; "b" and "c", proven by
    the other thread while "a" was being recorded, are recorded together
    by the recording thread, and that thread goes on only when none is left."""
    recording_a = threading.Event()
    copier: list[threading.Thread] = []
    groups: list[list[str]] = []

    def attempt(storage: QueuedStorage, row: StoredFile) -> Proven:
        if row.name == "b":
            copier.append(threading.current_thread())
            assert recording_a.wait(10)
        return Proven(row, Copy("test", f"etag-{row.name}"), 0.0)

    def mark_remote_many(proven: Any) -> set[int]:
        group = [(row.name, etag) for row, etag in proven]
        groups.append([name for name, _ in group])
        if groups == [["a"]]:
            recording_a.set()
            while not copier or copier[0] not in finished:  # "b" and "c" handed over
                threading.Event().wait(0.01)
        assert group == [(name, f"etag-{name}") for name in groups[-1]]
        return set()

    finished: list[threading.Thread] = []  # threads whose share of the batch is done
    work = batching._Batch.work

    def working(batch: Any) -> None:
        work(batch)
        finished.append(threading.current_thread())

    monkeypatch.setattr(batching._Batch, "work", working)
    monkeypatch.setattr(batching, "attempt", attempt)
    monkeypatch.setattr(ledger, "mark_remote_many", mark_remote_many)
    monkeypatch.setattr(batching, "settle", lambda storage, proven, recorded: Outcome("done"))
    result = batching.run_batch(claims_anything, ["a", "b", "c"], threads=2)
    assert groups == [["a"], ["b", "c"]]
    assert sorted(name for name, _ in result.outcomes) == ["a", "b", "c"]


def test_chunks_cut_a_transactions_names_into_messages() -> None:
    names = [f"{i}" for i in range(5)]
    assert [len(c) for c in batching.chunks(names, 2)] == [2, 2, 1]
    assert list(batching.chunks(names, 0)) == [names]  # 0: no limit
    assert list(batching.chunks(names, 1)) == [[n] for n in names]


@pytest.mark.parametrize("setting", ["BATCH_SIZE", "BATCH_THREADS", "MULTIPART_UPLOADS"])
def test_a_negative_batch_setting_is_a_check_error(settings: Any, setting: str) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", setting: -1}
    assert "storage_hooks.E007" in [m.id for m in run_checks()]


# -- on PostgreSQL, eight threads at once --------------------------------------


@pytest.fixture
def pg_ledger(ops_pg: str, settings: Any) -> str:
    """The ledger on PostgreSQL, where a batch's threads really run at once."""
    settings.STORAGE_HOOKS = {
        "RUNNER": f"{__name__}.Collecting",
        "RETRIES": 0,
        "DATABASE": "ops_pg",
    }
    return "ops_pg"


def fs_pair(local_dir: Path, remote_dir: Path, hooks: list[Any]) -> QueuedStorage:
    return QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key("pg"),
        hooks=hooks,
    )


@contextlib.contextmanager
def statements(alias: str) -> Iterator[list[str]]:
    """The SQL every thread sends to the database ``alias`` meanwhile."""
    sent: list[str] = []
    real = CursorWrapper._execute_with_wrappers

    def counted(self: CursorWrapper, sql: str, *args: Any, **kwargs: Any) -> Any:
        if self.db.alias == alias:
            sent.append(sql)
        return real(self, sql, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CursorWrapper, "_execute_with_wrappers", counted)
        yield sent


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_a_batch_claims_eight_files_per_statement_and_records_in_groups(
    pg_ledger: str, local_dir: Path, remote_dir: Path
) -> None:
    """50 files, 8 threads: 7 claims in all (one per 8 files), at most one
    record per file; per file remain the check that the claim still holds
    and the mark that a remote write starts. One file at a time, the same
    took 5 statements per file (250)."""
    pg_storage = fs_pair(local_dir, remote_dir, hooks=[])
    with transaction.atomic(using="ops_pg"):
        names = [save(pg_storage, f"n/{i:02d}.txt") for i in range(50)]
    with statements("ops_pg") as sent:
        result = batching.run_batch(pg_storage.key, names, threads=8)
    assert sorted(n for n, o in result.outcomes if o.kind == "done") == sorted(names)
    claims = [sql for sql in sent if "SKIP LOCKED" in sql]
    records = [sql for sql in sent if " CASE " in sql]
    assert len(claims) == 7
    assert 1 <= len(records) <= 50
    assert len(sent) <= 7 + 2 * 50 + len(records)


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_each_file_of_a_threaded_batch_has_its_own_signals_and_hooks(
    pg_ledger: str, local_dir: Path, remote_dir: Path
) -> None:
    pg_storage = fs_pair(local_dir, remote_dir, hooks=[DeleteLocal()])
    with transaction.atomic(using="ops_pg"):
        names = [save(pg_storage, f"s/{i:02d}.txt") for i in range(30)]
    with recording(pg_storage) as events:
        result = batching.run_batch(pg_storage.key, names, threads=8)
    assert result.error is None
    assert result.unreachable == []
    for signal in ("transfer_started", "transferred", "local_deleted"):
        sent = sorted(kw["name"] for event, kw in events if event == signal)
        assert sent == sorted(names), signal
    for name in names:
        assert pg_storage.status(name) == Status.REMOTE
        assert (remote_dir / name).read_bytes() == name.encode() * 100
        assert not (local_dir / name).exists()


@pytest.fixture
def own_pool() -> Iterator[None]:
    """Batch threads of this test alone: a batch of N files then runs on
    the N threads the one before it made."""
    kept = list(batching._pools)
    batching._pools.clear()
    try:
        yield
    finally:
        from concurrent.futures import wait

        from django.db import connections

        for pool in batching._pools:
            # Each thread closes what it kept (held at a barrier, no thread
            # takes two), then they end.
            count = len(pool._threads)
            everyone = threading.Barrier(count, timeout=10)

            def close(everyone: threading.Barrier) -> None:
                connections.close_all()
                everyone.wait()

            wait([pool.submit(close, everyone) for _ in range(count)])
            pool.shutdown(wait=True)
        batching._pools[:] = kept


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_a_kept_threads_connection_broken_while_idle_is_replaced(
    pg_ledger: str, local_dir: Path, remote_dir: Path, ops_pg: str, own_pool: None
) -> None:
    """With CONN_MAX_AGE the batch threads keep their connections between
    messages; a server that dropped them meanwhile (a restart, a failover)
    costs the next message nothing."""
    import psycopg
    from django.db import connections

    pg_storage = fs_pair(local_dir, remote_dir, hooks=[])
    config = connections.settings["ops_pg"]
    config["CONN_MAX_AGE"] = 600
    try:
        with transaction.atomic(using="ops_pg"):
            first = [save(pg_storage, f"k/1-{i}.txt") for i in range(4)]
        assert batching.run_batch(pg_storage.key, first, threads=4).unreachable == []
        with psycopg.connect(ops_pg, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND pid <> %s",
                [connections["ops_pg"].connection.info.backend_pid],
            ).fetchall()
        assert dropped  # the batch threads' connections were still open
        with transaction.atomic(using="ops_pg"):
            second = [save(pg_storage, f"k/2-{i}.txt") for i in range(4)]
        result = batching.run_batch(pg_storage.key, second, threads=4)
        assert result.unreachable == []
        assert sorted(n for n, o in result.outcomes if o.kind == "done") == sorted(second)
    finally:
        config["CONN_MAX_AGE"] = 0


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_a_transaction_a_receiver_left_open_is_not_carried_to_the_next_batch(
    pg_ledger: str,
    local_dir: Path,
    remote_dir: Path,
    caplog: pytest.LogCaptureFixture,
    own_pool: None,
) -> None:
    pg_storage = fs_pair(local_dir, remote_dir, hooks=[])

    def leaves_it_open(sender: Any, **kwargs: Any) -> None:
        transaction.atomic(using="ops_pg").__enter__()  # a bug: never left

    with transaction.atomic(using="ops_pg"):
        first = [save(pg_storage, f"open/1-{i}.txt") for i in range(2)]
    signals.transfer_started.connect(leaves_it_open, sender=pg_storage)
    try:
        batching.run_batch(pg_storage.key, first, threads=2)
    finally:
        signals.transfer_started.disconnect(leaves_it_open, sender=pg_storage)
    assert "left in a transaction (by a receiver or hook); it is rolled back and closed" in (
        caplog.text
    )
    with transaction.atomic(using="ops_pg"):
        second = [save(pg_storage, f"open/2-{i}.txt") for i in range(2)]
    result = batching.run_batch(pg_storage.key, second, threads=2)
    assert result.error is None
    assert result.unreachable == []
    assert sorted(n for n, o in result.outcomes if o.kind == "done") == sorted(second)


def _forked_pool(there: Any) -> None:
    pool = batching._pool()
    there.send((pool.submit(lambda: 6 * 7).result(10), len(batching._pools)))


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="fork")
def test_a_forked_child_makes_its_own_batch_threads() -> None:
    """Forked while the parent's pool lock is held (a batch starting): the
    child neither blocks on it nor uses the parent's threads (which it does
    not have)."""
    batching._pool()  # the parent's threads
    assert forked_child_sends(_forked_pool, batching._pools_lock) == (42, 1)
