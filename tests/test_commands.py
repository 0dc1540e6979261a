"""``manage.py storage_hooks status | retry | sync | verify``, through
``call_command``, on real storages with the immediate runner."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from storage_hooks import Status, ledger, maintenance, signals
from storage_hooks.hooks import DeleteLocal
from storage_hooks.management.verify import verify_remote
from storage_hooks.models import StoredFile
from storage_hooks.runners import Runner
from storage_hooks.storage import DelayedStorage, QueuedStorage

from . import services
from .conftest import unique_key

pytestmark = pytest.mark.django_db(transaction=True)


class LosingRunner(Runner):
    """A broker that loses every message: the file stays QUEUED."""

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        pass


class RecordingRunner(Runner):
    """Records what it is asked to queue, and where to."""

    calls: ClassVar[list[tuple[str, str, str]]] = []

    def enqueue(self, key: str, name: str, *, host: str, countdown: float = 0) -> None:
        self.calls.append((key, name, host))


class Recorder:
    """A blinker receiver that remembers what it was sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    @property
    def names(self) -> list[str]:
        return [call["name"] for call in self.calls]


LOSE = override_settings(STORAGE_HOOKS={"RUNNER": "tests.test_commands.LosingRunner"})


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run(*args: str, stderr: io.StringIO | None = None) -> Result:
    """Run the command; its exit code, stdout and stderr (with the error)."""
    out, err = io.StringIO(), stderr or io.StringIO()
    try:
        call_command("storage_hooks", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return Result(exc.returncode, out.getvalue(), f"{err.getvalue()}{exc}")
    return Result(0, out.getvalue(), err.getvalue())


def row(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.get(storage_key=storage.key, name=name)


def backdate(storage: QueuedStorage, name: str, seconds: float, **fields: Any) -> None:
    past = timezone.now() - timedelta(seconds=seconds)
    changes = {field: past for field in fields} or {"updated_at": past}
    StoredFile.objects.filter(storage_key=storage.key, name=name).update(**changes)


def write(root: Path, name: str, data: bytes, *, age: float = 3600) -> Path:
    """A file put in a folder behind the library's back, ``age`` seconds old."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@pytest.fixture
def other(tmp_path: Path) -> QueuedStorage:
    """A second FileSystem -> InMemory storage."""
    (tmp_path / "other").mkdir()
    return QueuedStorage(
        local=FileSystemStorage(location=tmp_path / "other"),
        remote=InMemoryStorage(),
        key=unique_key("other"),
    )


# -- status -----------------------------------------------------------------


def test_status_counts_per_key_and_oldest_pending(fs_storage, other):
    fs_storage.save("done.txt", ContentFile(b"remote"))
    with LOSE:
        fs_storage.save("waiting.txt", ContentFile(b"queued"))
        fs_storage.save("older.txt", ContentFile(b"queued too"))
        other.save("x.txt", ContentFile(b"x"))
    backdate(fs_storage, "older.txt", 3720, created_at=True)

    result = run("status", "--json", "--exact", "--storage", fs_storage.key, "--storage", other.key)

    assert result.code == 0
    doc = result.json()
    assert doc["schema"] == 1
    by_key = {entry["key"]: entry for entry in doc["storages"]}
    assert set(by_key) == {fs_storage.key, other.key}
    mine = by_key[fs_storage.key]
    assert mine["known"] is True
    assert mine["counts"] == {
        "local": 0,
        "queued": 2,
        "transferring": 0,
        "remote": 1,
        "failed": 0,
        "deleting": 0,
        "lost": 0,
    }
    assert mine["total"] == 3
    assert mine["oldest_pending"]["name"] == "older.txt"
    assert mine["oldest_pending"]["status"] == "queued"
    assert 3720 <= mine["oldest_pending"]["age_seconds"] < 3780
    assert by_key[other.key]["counts"]["queued"] == 1
    assert doc["totals"]["queued"] == 3
    assert doc["total"] == 4
    assert doc["oldest_pending"]["key"] == fs_storage.key
    assert doc["oldest_pending"]["name"] == "older.txt"

    text = run("status", "--exact", "--storage", fs_storage.key).out
    assert text.splitlines()[0].split() == [
        "storage",
        "local",
        "queued",
        "transferring",
        "remote",
        "failed",
        "deleting",
        "lost",
        "total",
    ]
    line = text.splitlines()[1].split()
    assert line == [
        fs_storage.key,
        "0",
        "2",
        "0",
        "1",
        "0",
        "0",
        "0",
        "3",
    ]
    assert f"Oldest pending in {fs_storage.key}: older.txt (queued, 0 attempts)" in text
    assert "saved 1h 2m ago" in text


def test_status_nothing_pending_and_unknown_keys(fs_storage):
    fs_storage.save("a.txt", ContentFile(b"a"))
    StoredFile.objects.create(storage_key="gone-for-good", name="old.txt", status=Status.REMOTE)

    result = run("status", "--storage", fs_storage.key, "--storage", "gone-for-good")

    assert result.code == 0
    assert "gone-for-good*" in result.out
    assert "no storage with this key exists in this process" in result.out
    assert "Nothing is pending." in result.out
    doc = run("status", "--json", "--storage", "gone-for-good").json()
    assert doc["storages"][0]["known"] is False
    assert doc["oldest_pending"] is None


def test_status_estimates_remote_files_of_a_big_ledger_and_says_so(fs_storage, monkeypatch):
    from django.db import connection

    from storage_hooks.ops import status as ops_status

    StoredFile.objects.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=f"f{i}", status=status)
        for i, status in enumerate([Status.REMOTE] * 300 + [Status.FAILED] * 7)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE storage_hooks_storedfile")
    # A small ledger is counted exactly everywhere.
    small = run("status", "--json", "--storage", fs_storage.key).json()
    assert small["remote_estimated"] is False
    assert small["storages"][0]["counts"]["remote"] == 300

    monkeypatch.setattr(ops_status, "ESTIMATE_ABOVE", 100)  # "big" from 100 rows on
    doc = run("status", "--json", "--storage", fs_storage.key).json()
    counts = doc["storages"][0]["counts"]
    assert counts["failed"] == 7  # the states that need attention: exact
    text = run("status", "--storage", fs_storage.key).out
    if connection.vendor == "postgresql":
        assert doc["remote_estimated"] is True
        assert 150 <= counts["remote"] <= 600
        assert "~" in text.splitlines()[1]
        assert "estimated from PostgreSQL's statistics" in text
    else:
        assert doc["remote_estimated"] is False
        assert counts["remote"] == 300
        assert "~" not in text


def test_status_queries_do_not_grow_with_the_ledger(fs_storage, django_assert_max_num_queries):
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=f"f{i}", status=status)
        for i, status in enumerate([Status.REMOTE, Status.QUEUED, Status.FAILED] * 100)
    )
    # Attention counts, REMOTE count (or estimate), oldest pending.
    with django_assert_max_num_queries(3):
        doc = maintenance.status_summary([fs_storage.key], exact=True)
    assert doc["totals"] == {
        "local": 0,
        "queued": 100,
        "transferring": 0,
        "remote": 100,
        "failed": 100,
        "deleting": 0,
        "lost": 0,
    }
    assert doc["remote_estimated"] is False


def test_status_oldest_pending_is_the_oldest_file_not_yet_transferred(fs_storage):
    fs_storage.save("done.txt", ContentFile(b"on the remote for days"))
    backdate(fs_storage, "done.txt", 3 * 86400, created_at=True, updated_at=True)
    with LOSE:
        fs_storage.save("waiting.txt", ContentFile(b"queued"))
    backdate(fs_storage, "waiting.txt", 120)

    doc = run("status", "--json", "--storage", fs_storage.key).json()

    pending = doc["storages"][0]["oldest_pending"]
    assert (pending["name"], pending["status"]) == ("waiting.txt", "queued")
    waiting = row(fs_storage, "waiting.txt")
    assert pending["created_at"] == waiting.created_at.isoformat()
    assert pending["updated_at"] == waiting.updated_at.isoformat()
    assert doc["oldest_pending"] == pending


def test_status_counts_a_key_whose_first_file_is_saved_while_it_runs(fs_storage):
    from django.db import connection

    late = unique_key("late")
    saved: list[str] = []

    def save_meanwhile(execute: Any, sql: str, *args: Any) -> Any:
        if "GROUP BY" in sql and not saved:  # the counts, read after the keys
            saved.append(late)
            StoredFile.objects.create(storage_key=late, name="x.txt", status=Status.FAILED)
        return execute(sql, *args)

    with connection.execute_wrapper(save_meanwhile):
        result = run("status", "--json")

    assert result.code == 0
    by_key = {entry["key"]: entry for entry in result.json()["storages"]}
    assert by_key[late]["counts"]["failed"] == 1
    assert by_key[late]["known"] is False


# -- retry ------------------------------------------------------------------


def test_retry_heals_a_lost_message(fs_storage, remote_dir):
    with LOSE:
        fs_storage.save("lost.txt", ContentFile(b"lost in the queue"))
    assert fs_storage.status("lost.txt") == Status.QUEUED

    fresh = run("retry")
    assert fresh.code == 0
    assert "Re-queued 0 files" in fresh.out
    assert fs_storage.status("lost.txt") == Status.QUEUED

    with signals.transfer_queued.connected_to(queued := Recorder(), sender=fs_storage):
        healed = run("retry", "--stuck-after", "0", "--storage", fs_storage.key)

    assert healed.code == 0
    assert "Re-queued 1 file (0 failed, 1 unchanged for 0s or more)." in healed.out
    assert queued.names == ["lost.txt"]
    assert fs_storage.status("lost.txt") == Status.REMOTE
    assert (remote_dir / "lost.txt").read_bytes() == b"lost in the queue"


def test_retry_heals_a_failed_transfer_with_attempts_reset(fs_storage, remote_dir):
    blocker = remote_dir / "sub"
    blocker.write_bytes(b"a file where the remote needs a directory")
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "RETRIES": 1}):
        fs_storage.save("sub/a.txt", ContentFile(b"payload"))
        assert fs_storage.status("sub/a.txt") == Status.FAILED
        assert row(fs_storage, "sub/a.txt").attempts == 2
        blocker.unlink()

        with signals.transfer_started.connected_to(started := Recorder(), sender=fs_storage):
            result = run("retry", "--json")

    assert result.code == 0
    doc = result.json()
    assert doc["ok"] is True
    assert doc["stuck_after"] == 900
    assert {"key": fs_storage.key, "name": "sub/a.txt", "status": "failed"}.items() <= doc[
        "requeued"
    ][0].items()
    assert [call["attempt"] for call in started.calls] == [1]
    assert fs_storage.status("sub/a.txt") == Status.REMOTE
    assert (remote_dir / "sub" / "a.txt").read_bytes() == b"payload"


def test_retry_heals_a_transfer_whose_worker_died(fs_storage, remote_dir):
    with LOSE:
        fs_storage.save("dead.txt", ContentFile(b"d"))
        fs_storage.save("busy.txt", ContentFile(b"b"))
    # Two workers claimed a file each; the first died long ago.
    assert ledger.claim(fs_storage.key, "dead.txt") is not None
    assert ledger.claim(fs_storage.key, "busy.txt") is not None
    backdate(fs_storage, "dead.txt", 1000)

    result = run("retry", "-v", "2")

    assert result.code == 0
    assert f"{fs_storage.key}: dead.txt (was transferring)" in result.out
    assert fs_storage.status("dead.txt") == Status.REMOTE
    assert row(fs_storage, "dead.txt").attempts == 2
    assert fs_storage.status("busy.txt") == Status.TRANSFERRING
    assert not (remote_dir / "busy.txt").exists()


def test_retry_routes_to_the_host_that_saved_the_file(fs_storage):
    with override_settings(
        STORAGE_HOOKS={"RUNNER": "tests.test_commands.LosingRunner", "HOSTNAME": "web-7"}
    ):
        fs_storage.save("here.txt", ContentFile(b"h"))
    RecordingRunner.calls.clear()
    with override_settings(
        STORAGE_HOOKS={"RUNNER": "tests.test_commands.RecordingRunner", "HOSTNAME": "cron-1"}
    ):
        result = run("retry", "--stuck-after", "0", "--storage", fs_storage.key)
    assert result.code == 0
    assert RecordingRunner.calls == [(fs_storage.key, "here.txt", "web-7")]


def test_retry_is_idempotent(fs_storage):
    with LOSE:
        fs_storage.save("a.txt", ContentFile(b"a"))
    backdate(fs_storage, "a.txt", 1000)
    RecordingRunner.calls.clear()
    with override_settings(STORAGE_HOOKS={"RUNNER": "tests.test_commands.RecordingRunner"}):
        first = run("retry", "--json").json()
        second = run("retry", "--json").json()
    assert [r["name"] for r in first["requeued"]] == ["a.txt"]
    assert second["requeued"] == []
    assert len(RecordingRunner.calls) == 1
    assert fs_storage.status("a.txt") == Status.QUEUED


def test_retry_reports_rows_of_unknown_storages(fs_storage):
    StoredFile.objects.create(storage_key="nobody-knows", name="x", status=Status.FAILED)
    with LOSE:
        fs_storage.save("a.txt", ContentFile(b"a"))
    backdate(fs_storage, "a.txt", 1000)

    result = run("retry", "--json")

    assert result.code == 1
    assert "'nobody-knows' (1 file)" in result.err
    doc = result.json()
    assert doc["ok"] is False
    assert doc["unknown"] == {"nobody-knows": 1}
    assert [r["name"] for r in doc["requeued"]] == ["a.txt"]
    assert fs_storage.status("a.txt") == Status.REMOTE
    assert StoredFile.objects.get(storage_key="nobody-knows").status == Status.FAILED


def test_retry_leaves_a_transfer_alone_until_stuck_after_has_passed(fs_storage):
    with LOSE:
        fs_storage.save("a.txt", ContentFile(b"a"))
    backdate(fs_storage, "a.txt", 600)
    assert maintenance.retry_stuck(3600).requeued == []  # queued 10 minutes ago: waiting
    assert fs_storage.status("a.txt") == Status.QUEUED
    assert [r["name"] for r in maintenance.retry_stuck(300).requeued] == ["a.txt"]
    assert fs_storage.status("a.txt") == Status.REMOTE


def test_retry_refuses_a_negative_age():
    result = run("retry", "--stuck-after", "-5")
    assert result.code != 0
    assert "'-5' is negative" in result.err
    with pytest.raises(ValueError, match="stuck_after must be >= 0"):
        maintenance.retry_stuck(-1)


def test_retry_stuck_function_uses_the_setting(fs_storage):
    with LOSE:
        fs_storage.save("a.txt", ContentFile(b"a"))
    backdate(fs_storage, "a.txt", 30)
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "STUCK_AFTER": 60}):
        assert maintenance.retry_stuck().requeued == []
    with override_settings(STORAGE_HOOKS={"RUNNER": "immediate", "STUCK_AFTER": 20}):
        report = maintenance.retry_stuck()
    assert report.stuck_after == 20
    assert [r["name"] for r in report.requeued] == ["a.txt"]
    assert fs_storage.status("a.txt") == Status.REMOTE


@pytest.mark.parametrize("count", [120, 1200])
def test_retry_costs_a_few_queries_per_chunk_not_per_file(
    fs_storage, django_assert_max_num_queries, count
):
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=f"f{i}", status=Status.FAILED)
        for i in range(count)
    )
    chunks = -(-count // maintenance.CHUNK)
    RecordingRunner.calls.clear()
    with (
        override_settings(STORAGE_HOOKS={"RUNNER": "tests.test_commands.RecordingRunner"}),
        # 6 counts; per chunk: select, update, transaction; a last select
        # (and its transaction) for each of the 3 states; the search for
        # interrupted deletes.
        django_assert_max_num_queries(6 + 4 * chunks + 3 * 3 + 1),
    ):
        report = maintenance.retry_stuck()
    assert len(report.requeued) == len(RecordingRunner.calls) == count
    assert set(StoredFile.objects.filter(storage_key=fs_storage.key).values_list("status")) == {
        (Status.QUEUED,)
    }


def test_retry_leaves_rejected_files_alone_and_says_so(fs_storage):
    StoredFile.objects.create(
        storage_key=fs_storage.key, name="virus.exe", status=Status.FAILED, failure="rejected"
    )
    StoredFile.objects.create(
        storage_key=fs_storage.key, name="flaky.txt", status=Status.FAILED, failure="error"
    )
    RecordingRunner.calls.clear()
    with override_settings(STORAGE_HOOKS={"RUNNER": "tests.test_commands.RecordingRunner"}):
        result = run("retry", "--storage", fs_storage.key)
    assert result.code == 0
    assert [call[1] for call in RecordingRunner.calls] == ["flaky.txt"]
    assert row(fs_storage, "virus.exe").status == Status.FAILED
    assert "purge --rejected" in result.out


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_retry_skips_rows_another_process_holds(fs_storage, ops_pg):
    import psycopg

    rows = StoredFile.objects.using("ops_pg")
    for name in ("held.txt", "free.txt"):
        rows.create(storage_key=fs_storage.key, name=name, status=Status.FAILED, attempts=6)
    settings = {"RUNNER": "tests.test_commands.RecordingRunner", "DATABASE": "ops_pg"}
    RecordingRunner.calls.clear()
    try:
        with psycopg.connect(ops_pg) as worker, override_settings(STORAGE_HOOKS=settings):
            # A worker is busy with this row (its transaction holds the lock).
            worker.execute(
                "SELECT id FROM storage_hooks_storedfile WHERE name = 'held.txt' FOR UPDATE"
            )
            first = maintenance.retry_stuck()
            assert [r["name"] for r in first.requeued] == ["free.txt"]
            assert rows.get(name="held.txt").status == Status.FAILED
            worker.commit()
            second = maintenance.retry_stuck()
        assert [r["name"] for r in second.requeued] == ["held.txt"]
        assert [call[1] for call in RecordingRunner.calls] == ["free.txt", "held.txt"]
        assert set(rows.values_list("status", "attempts")) == {(Status.QUEUED, 0)}
    finally:
        rows.all().delete()


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_retry_finishes_interrupted_deletes_skipping_rows_another_process_holds(
    fs_storage, local_dir, ops_pg
):
    import psycopg

    rows = StoredFile.objects.using("ops_pg")
    for name in ("held.txt", "free.txt"):
        write(local_dir, name, b"deleted, then the process died")
        rows.create(storage_key=fs_storage.key, name=name, status=Status.DELETING)
    rows.update(updated_at=timezone.now() - timedelta(hours=1))
    settings = {"RUNNER": "immediate", "DATABASE": "ops_pg"}
    try:
        with psycopg.connect(ops_pg) as worker, override_settings(STORAGE_HOOKS=settings):
            worker.execute(
                "SELECT id FROM storage_hooks_storedfile WHERE name = 'held.txt' FOR UPDATE"
            )
            first = maintenance.retry_stuck()
            assert [r["name"] for r in first.deleted] == ["free.txt"]
            assert not (local_dir / "free.txt").exists()
            assert (local_dir / "held.txt").exists()
            worker.commit()
            second = maintenance.retry_stuck()
        assert [r["name"] for r in second.deleted] == ["held.txt"]
        assert not (local_dir / "held.txt").exists()
        assert not rows.exists()
    finally:
        rows.all().delete()


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
def test_status_of_a_big_ledger_in_postgresql_estimates_the_remote_files(
    fs_storage, ops_pg, monkeypatch
):
    from django.db import connections

    from storage_hooks.ops import status as ops_status

    rows = StoredFile.objects.using("ops_pg")
    rows.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=f"f{i}", status=status)
        for i, status in enumerate([Status.REMOTE] * 300 + [Status.FAILED] * 7)
    )
    settings = {"RUNNER": "immediate", "DATABASE": "ops_pg"}
    try:
        with connections["ops_pg"].cursor() as cursor:
            cursor.execute("ANALYZE storage_hooks_storedfile")
        monkeypatch.setattr(ops_status, "ESTIMATE_ABOVE", 100)  # "big" from 100 rows on
        with override_settings(STORAGE_HOOKS=settings):
            estimated = ops_status.status_summary([fs_storage.key])
            exact = ops_status.status_summary([fs_storage.key], exact=True)
        assert estimated["remote_estimated"] is True
        assert 150 <= estimated["storages"][0]["counts"]["remote"] <= 600
        assert estimated["storages"][0]["counts"]["failed"] == 7  # counted exactly
        assert exact["remote_estimated"] is False
        assert exact["storages"][0]["counts"]["remote"] == 300
    finally:
        rows.all().delete()


# -- sync -------------------------------------------------------------------


def test_sync_adopts_an_existing_media_folder(fs_storage, local_dir, remote_dir):
    write(local_dir, "photos/2019/a.jpg", b"jpeg bytes")
    write(local_dir, "b.txt", b"text")
    write(local_dir, "new.txt", b"being uploaded", age=0)
    fs_storage.save("known.txt", ContentFile(b"already in the ledger"))

    with (
        signals.transfer_queued.connected_to(queued := Recorder(), sender=fs_storage),
        signals.saved_locally.connected_to(saved := Recorder(), sender=fs_storage),
    ):
        result = run("sync", "--storage", fs_storage.key)

    assert result.code == 0
    assert f"{fs_storage.key}: 4 local files, 2 adopted (queued); 1 skipped." in result.out
    assert "skipped new.txt: modified less than 60 seconds ago" in result.out
    assert sorted(queued.names) == ["b.txt", "photos/2019/a.jpg"]
    assert saved.calls == []
    adopted = row(fs_storage, "photos/2019/a.jpg")
    assert adopted.status == Status.REMOTE
    assert adopted.size == len(b"jpeg bytes")
    assert adopted.checksum == hashlib.sha256(b"jpeg bytes").hexdigest()
    assert adopted.host
    assert (remote_dir / "photos/2019/a.jpg").read_bytes() == b"jpeg bytes"
    assert fs_storage.status("new.txt") is None

    again = run("sync", "--storage", fs_storage.key, "--min-age", "0", "--json").json()
    assert again["ok"] is True
    assert again["storages"][0]["adopted"] == ["new.txt"]
    assert run("sync", "--storage", fs_storage.key, "--min-age", "0").out.startswith(
        f"{fs_storage.key}: 4 local files, 0 adopted"
    )


def test_sync_of_a_delayed_storage_records_without_queueing(local_dir, remote_dir):
    storage = DelayedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        key=unique_key("delayed"),
    )
    write(local_dir, "later.txt", b"later")
    result = run("sync", "--storage", storage.key)
    assert "1 adopted (local)" in result.out
    assert storage.status("later.txt") == Status.LOCAL
    assert not (remote_dir / "later.txt").exists()
    storage.transfer("later.txt")
    assert storage.status("later.txt") == Status.REMOTE


def test_sync_dry_run_changes_nothing(fs_storage, local_dir, remote_dir):
    write(local_dir, "a.txt", b"a")
    write(remote_dir, "r.txt", b"remote only")
    result = run("sync", "--storage", fs_storage.key, "--remote", "--dry-run", "-v", "2")
    assert result.code == 0
    assert "1 would be adopted (queued); 1 remote file, 1 would be recorded as remote" in (
        result.out
    )
    assert "  would be adopted a.txt" in result.out
    assert "  would be recorded as remote r.txt" in result.out
    assert not StoredFile.objects.filter(storage_key=fs_storage.key).exists()
    assert not (remote_dir / "a.txt").exists()


def test_sync_remote_reserves_names_already_on_the_remote(fs_storage, local_dir, remote_dir):
    write(remote_dir, "logo.png", b"someone else's logo")
    write(remote_dir, "both.txt", b"same on both sides")
    write(local_dir, "both.txt", b"same on both sides")

    result = run("sync", "--storage", fs_storage.key, "--remote", "--json")

    doc = result.json()["storages"][0]
    assert doc["adopted"] == ["both.txt"]
    assert doc["recorded_remote"] == ["logo.png"]
    reserved = row(fs_storage, "logo.png")
    assert (reserved.status, reserved.size, reserved.checksum) == (Status.REMOTE, 19, "")
    assert fs_storage.status("both.txt") == Status.REMOTE
    name = fs_storage.save("logo.png", ContentFile(b"my logo"))
    assert name != "logo.png"
    assert (remote_dir / "logo.png").read_bytes() == b"someone else's logo"
    with fs_storage.open("logo.png") as fh:
        assert fh.read() == b"someone else's logo"


def test_sync_skips_a_symlink_out_of_the_root_and_says_so(fs_storage, local_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not media")
    (local_dir / "link.txt").symlink_to(secret)
    write(local_dir, "ok.txt", b"ok")

    result = run("sync", "--storage", fs_storage.key)

    assert result.code == 1
    assert "skipped link.txt:" in result.out
    assert "leads outside the storage's root" in result.out
    assert "sync could not adopt 1 file " in result.err
    assert fs_storage.status("link.txt") is None
    assert fs_storage.status("ok.txt") == Status.REMOTE


def test_sync_without_storage_looks_at_every_known_storage(fs_storage, other, local_dir):
    write(local_dir, "a.txt", b"a")
    doc = run("sync", "--dry-run", "--json").json()
    by_key = {entry["key"]: entry for entry in doc["storages"]}
    assert by_key[fs_storage.key]["adopted"] == ["a.txt"]
    assert by_key[other.key]["adopted"] == []
    assert "testapp-documents" in by_key


@pytest.mark.parametrize(
    "argv",
    [["status"], ["retry"], ["purge", "--rejected"], ["rekey", "old-key", "new-key"]],
)
def test_every_json_report_names_its_schema_and_command(argv, fs_storage):
    StoredFile.objects.create(storage_key="old-key", name="a.txt", status=Status.REMOTE)
    doc = run(*argv, "--json").json()
    assert doc["schema"] == 1
    if argv[0] != "status":
        assert doc["command"] == argv[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["retry"],
        ["sync"],
        ["verify"],
        ["purge", "--rejected"],
    ],
)
def test_an_unknown_storage_is_a_usage_error_naming_the_known_keys(argv, fs_storage):
    result = run(*argv, "--storage", "no-such-key")
    assert result.code == 2
    assert "Unknown storage key 'no-such-key'" in result.err
    assert fs_storage.key in result.err  # the known keys are listed
    assert "testapp-documents" in result.err


def test_a_key_known_only_to_the_ledger_is_not_a_usage_error():
    StoredFile.objects.create(storage_key="retired", name="r.txt", status=Status.FAILED)
    assert run("status", "--storage", "retired").code == 0
    assert run("retry", "--storage", "retired").code == 1  # rows it cannot re-queue


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e300", "1e400", "abc"])
def test_non_finite_and_overflowing_seconds_are_refused_at_parse_time(value):
    result = run("retry", f"--stuck-after={value}")
    assert result.code != 0  # argparse's usage error (exit 2 from the shell)
    assert f"{value!r} is" in result.err
    assert "Traceback" not in result.err


def test_sync_queries_per_batch_not_per_file(fs_storage, local_dir, django_assert_max_num_queries):
    for i in range(120):
        write(local_dir, f"d{i % 3}/f{i}.txt", b"x" * i)
    with LOSE, django_assert_max_num_queries(12):
        report = run("sync", "--storage", fs_storage.key, "--json").json()
    assert len(report["storages"][0]["adopted"]) == 120
    assert (
        StoredFile.objects.filter(storage_key=fs_storage.key, status=Status.QUEUED).count() == 120
    )


# -- verify -----------------------------------------------------------------


def test_verify_finds_and_fixes_a_deleted_remote_file(fs_storage, remote_dir):
    fs_storage.save("a.txt", ContentFile(b"aaa"))
    fs_storage.save("b.txt", ContentFile(b"bbb"))
    (remote_dir / "a.txt").unlink()

    found = run("verify")
    assert found.code == 1
    assert "Checked 2 remote files: 1 problem." in found.out
    assert f"{fs_storage.key}: a.txt is missing on the remote" in found.out
    assert "verify found 1 problem." in found.err
    assert fs_storage.status("a.txt") == Status.REMOTE

    fixed = run("verify", "--fix", "--storage", fs_storage.key)
    assert fixed.code == 1
    assert "a.txt is missing on the remote (re-queued from the local copy)" in fixed.out
    assert fs_storage.status("a.txt") == Status.REMOTE
    assert (remote_dir / "a.txt").read_bytes() == b"aaa"

    clean = run("verify", "--storage", fs_storage.key)
    assert clean.code == 0
    assert "Checked 2 remote files: 0 problems." in clean.out


def test_verify_reports_another_size_and_does_not_overwrite_it(fs_storage, remote_dir):
    fs_storage.save("a.txt", ContentFile(b"ours"))
    (remote_dir / "a.txt").write_bytes(b"someone else's, longer")

    doc = run("verify", "--json", "--fix").json()

    assert doc["ok"] is False
    [problem] = doc["problems"]
    assert problem["kind"] == "size"
    assert (problem["expected_size"], problem["actual_size"]) == (4, 22)
    assert problem["action"] == "requeued"
    # The transfer refuses to overwrite what it did not write; reads go local.
    assert fs_storage.status("a.txt") == Status.FAILED
    assert "NameConflict" in row(fs_storage, "a.txt").last_error
    assert (remote_dir / "a.txt").read_bytes() == b"someone else's, longer"
    with fs_storage.open("a.txt") as fh:
        assert fh.read() == b"ours"


def test_verify_says_a_file_is_lost_without_local_copy(local_dir, remote_dir):
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir),
        remote=FileSystemStorage(location=remote_dir),
        hooks=[DeleteLocal()],
        key=unique_key("lost"),
    )
    storage.save("gone.txt", ContentFile(b"g"))
    assert not (local_dir / "gone.txt").exists()
    (remote_dir / "gone.txt").unlink()

    result = run("verify", "--fix", "--storage", storage.key)

    assert result.code == 1
    assert "gone.txt is missing on the remote (LOST: the local copy is gone too)" in result.out
    assert "1 file lost" in result.err
    assert storage.status("gone.txt") == Status.LOST
    row = StoredFile.objects.get(storage_key=storage.key, name="gone.txt")
    assert row.failure == "missing"

    # status shows it, retry explains why it cannot re-queue it.
    status = run("status", "--storage", storage.key)
    assert "1 file LOST" in status.out
    assert run("status", "--json", "--storage", storage.key).json()["totals"]["lost"] == 1
    retry = run("retry", "--storage", storage.key)
    assert retry.code == 1
    assert "Cannot re-queue LOST files" in retry.err
    assert "restore them from a backup" in retry.err
    assert storage.status("gone.txt") == Status.LOST
    assert run("retry", "--json", "--storage", storage.key).json()["lost"] == {storage.key: 1}


def test_verify_reports_rows_it_cannot_check(fs_storage):
    fs_storage.save("a.txt", ContentFile(b"a"))
    StoredFile.objects.create(storage_key="vanished-key", name="v", status=Status.REMOTE, size=1)
    result = run("verify", "--json")
    assert result.code == 1
    doc = result.json()
    assert doc["checked"] == 1
    assert doc["unknown"] == {"vanished-key": 1}
    assert "1 file could not be checked" in result.err


def test_verify_queries_per_chunk(fs_storage, remote_dir, django_assert_max_num_queries):
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=f"f{i}", status=Status.REMOTE, size=1)
        for i in range(150)
    )
    for i in range(150):
        (remote_dir / f"f{i}").write_bytes(b"1")
    with django_assert_max_num_queries(2):
        report = verify_remote([fs_storage.key])
    assert (report.checked, report.problems) == (150, [])


# -- progress ---------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_only(fs_storage, local_dir):
    fs_storage.save("a.txt", ContentFile(b"a"))
    write(local_dir, "b.txt", b"b")

    bar = run("verify", "--storage", fs_storage.key, stderr=Terminal())
    assert "verify: 100%" in bar.err
    assert "1/1" in bar.err
    assert "verify" not in bar.out

    synced = run("sync", "--storage", fs_storage.key, stderr=Terminal())
    assert f"sync {fs_storage.key}: " in synced.err
    assert "2file" in synced.err.replace(" ", "")

    assert run("verify", "--no-progress", stderr=Terminal()).err == ""
    assert run("verify", "--storage", fs_storage.key).err == ""


def test_no_progress_bar_without_tqdm(fs_storage, monkeypatch):
    fs_storage.save("a.txt", ContentFile(b"a"))
    monkeypatch.setitem(sys.modules, "tqdm", None)
    result = run("verify", "--storage", fs_storage.key, stderr=Terminal())
    assert (result.code, result.err) == (0, "")
    assert "Checked 1 remote file: 0 problems." in result.out


# -- S3 (moto server) -------------------------------------------------------


def test_verify_and_sync_remote_on_s3(s3_endpoint, s3_bucket, local_dir):
    from storages.backends.s3 import S3Storage

    remote = S3Storage(**services.s3_options(s3_endpoint, s3_bucket), location="media")
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("s3")
    )
    storage.save("docs/one.txt", ContentFile(b"one"))
    remote.save("docs/two.txt", ContentFile(b"written by another app"))
    remote.delete("docs/one.txt")

    found = run("verify", "--json", "--storage", storage.key)
    assert found.code == 1
    assert [(p["name"], p["kind"]) for p in found.json()["problems"]] == [
        ("docs/one.txt", "missing")
    ]
    assert run("verify", "--fix", "--storage", storage.key).code == 1
    assert remote.exists("docs/one.txt")
    assert run("verify", "--storage", storage.key).code == 0

    doc = run("sync", "--remote", "--storage", storage.key, "--json").json()["storages"][0]
    assert doc["seen_remote"] == 2
    assert doc["recorded_remote"] == ["docs/two.txt"]
    reserved = row(storage, "docs/two.txt")
    assert (reserved.status, reserved.size) == (Status.REMOTE, 22)
    assert storage.save("docs/two.txt", ContentFile(b"mine")) != "docs/two.txt"
    with storage.open("docs/two.txt") as fh:
        assert fh.read() == b"written by another app"


def test_retry_publishes_each_chunk_to_the_cache_in_one_round_trip(fs_storage, monkeypatch):
    from storage_hooks import statecache

    from .test_statecache import CountingCache

    count = maintenance.CHUNK + 20
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=fs_storage.key, name=f"f{i}", status=Status.FAILED)
        for i in range(count)
    )
    counting = CountingCache(statecache._cache())
    monkeypatch.setattr(statecache, "_cache", lambda: counting)
    with override_settings(STORAGE_HOOKS={"RUNNER": "tests.test_commands.LosingRunner"}):
        report = maintenance.retry_stuck()
    assert len(report.requeued) == count
    assert counting.calls == {"set_many": 2}  # one per chunk, none per file
    assert fs_storage.status("f3") == Status.QUEUED


class FailingDeletes(FileSystemStorage):
    """A remote whose delete() fails (a permission problem, an outage)."""

    fail = True

    def delete(self, name: str) -> None:
        if self.fail:
            raise PermissionError(f"cannot delete {name}")
        super().delete(name)


@pytest.fixture
def interrupted_delete(local_dir, remote_dir):
    """A transferred file whose delete failed at the remote: its row stays
    DELETING, both copies are still there."""
    remote = FailingDeletes(location=remote_dir)
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("del")
    )
    name = storage.save("stuck.txt", ContentFile(b"data"))
    with pytest.raises(PermissionError):
        storage.delete(name)
    assert row(storage, name).status == Status.DELETING
    assert (remote_dir / name).exists()
    assert (local_dir / name).exists()
    return storage, remote, name


def test_retry_finishes_an_interrupted_delete(interrupted_delete, local_dir, remote_dir):
    storage, remote, name = interrupted_delete
    remote.fail = False
    # Not yet: the row changed less than --stuck-after ago.
    early = run("retry", "--storage", storage.key, "--json").json()
    assert early["deleted"] == []
    assert row(storage, name).status == Status.DELETING

    result = run("retry", "--stuck-after", "0", "--storage", storage.key, "-v", "2")

    assert result.code == 0
    assert "Finished 1 interrupted delete." in result.out
    assert f"{storage.key}: {name} (deleted)" in result.out
    assert not StoredFile.objects.filter(storage_key=storage.key).exists()
    assert not (remote_dir / name).exists()
    assert not (local_dir / name).exists()
    assert storage.status(name) is None


def test_retry_reports_an_interrupted_delete_that_fails_again(interrupted_delete):
    storage, _remote, name = interrupted_delete

    result = run("retry", "--stuck-after", "0", "--storage", storage.key, "--json")

    assert result.code == 1
    doc = result.json()
    assert doc["ok"] is False
    assert doc["deleted"] == []
    assert doc["delete_errors"] == [
        {"key": storage.key, "name": name, "error": f"PermissionError: cannot delete {name}"}
    ]
    assert "Could not finish 1 interrupted delete" in result.err
    assert row(storage, name).status == Status.DELETING  # the next run tries again
