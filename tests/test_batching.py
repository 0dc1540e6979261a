"""Many files per message (storage_hooks.batching): what one transaction
queues is handed to the runner together, nothing is left behind by a
rollback, and a worker's batch transfers every file on its own.

Batches run by several threads at once, and delivered twice at once, are
in tests/integration/test_races.py (PostgreSQL: SQLite locks the whole
database for each writer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.checks import run_checks
from django.core.files.base import ContentFile
from django.db import OperationalError, transaction

from storage_hooks import Status, batching
from storage_hooks.runners import Runner
from storage_hooks.storage import QueuedStorage

from .testapp.storages import recording

pytestmark = pytest.mark.django_db(transaction=True)


class Collecting(Runner):
    """A runner that keeps what it is handed, for the test to run later."""

    handed: ClassVar[list[tuple[str, list[str]]]] = []

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        self.handed.append(("one", [name]))

    def enqueue_many(self, key: str, names: list[str], *, host: str) -> None:
        self.handed.append(("many", list(names)))


@pytest.fixture
def handed(settings: Any) -> list[tuple[str, list[str]]]:
    settings.STORAGE_HOOKS = {"RUNNER": f"{__name__}.Collecting", "RETRIES": 0}
    Collecting.handed = []
    return Collecting.handed


def all_names(handed: list[tuple[str, list[str]]]) -> list[str]:
    return [name for _, names in handed for name in names]


def save(storage: QueuedStorage, name: str) -> str:
    return storage.save(name, ContentFile(name.encode() * 100))


def save_and_roll_back(storage: QueuedStorage, name: str) -> None:
    with transaction.atomic():
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


def test_a_rolled_back_transaction_leaves_nothing_behind_for_the_next(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]], remote_dir: Path
) -> None:
    with pytest.raises(RuntimeError):
        save_and_roll_back(fs_storage, "gone.txt")
    assert handed == []
    with transaction.atomic():
        kept = save(fs_storage, "kept.txt")
    assert kept in all_names(handed)

    result = batching.run_batch(fs_storage.key, all_names(handed))
    assert dict(result.outcomes)[kept].kind == "done"
    assert fs_storage.status(kept) == Status.REMOTE
    # The rolled-back name may ride along; its message finds nothing to do.
    assert fs_storage.status("gone.txt") is None
    assert not (remote_dir / "gone.txt").exists()


def test_a_rolled_back_savepoint_keeps_the_saves_around_it(
    fs_storage: QueuedStorage, handed: list[tuple[str, list[str]]], remote_dir: Path
) -> None:
    with transaction.atomic():
        first = save(fs_storage, "first.txt")
        with pytest.raises(RuntimeError):
            save_and_roll_back(fs_storage, "inner.txt")  # a savepoint
        last = save(fs_storage, "last.txt")
    assert {first, last} <= set(all_names(handed))

    batching.run_batch(fs_storage.key, all_names(handed))
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
    result = batching.run_batch(fs_storage.key, names)
    assert result.unreachable == [names[1]]
    assert result.error is None
    assert fs_storage.status(names[1]) == Status.QUEUED
    assert {name for name, _ in result.outcomes} == {names[0], names[2]}


def test_chunks_cut_a_transactions_names_into_messages() -> None:
    names = [f"{i}" for i in range(5)]
    assert [len(c) for c in batching.chunks(names, 2)] == [2, 2, 1]
    assert list(batching.chunks(names, 0)) == [names]  # 0: no limit
    assert list(batching.chunks(names, 1)) == [[n] for n in names]


@pytest.mark.parametrize("setting", ["BATCH_SIZE", "BATCH_THREADS"])
def test_a_negative_batch_setting_is_a_check_error(settings: Any, setting: str) -> None:
    settings.STORAGE_HOOKS = {"RUNNER": "immediate", setting: -1}
    assert "storage_hooks.E007" in [m.id for m in run_checks()]
