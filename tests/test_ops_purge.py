"""Deleting the files a preprocessor refused: ``storage_hooks purge --rejected``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.files.base import ContentFile

from storage_hooks import Status, ledger
from storage_hooks.models import StoredFile
from storage_hooks.ops.purge import purge_rejected
from storage_hooks.storage import QueuedStorage

from .test_commands import run

pytestmark = pytest.mark.django_db(transaction=True)


def forget() -> None:
    """The rows were changed behind the ledger's back: drop what it remembers."""
    caches["default"].clear()
    ledger.clear_memory()


def reject(storage: QueuedStorage, name: str) -> None:
    StoredFile.objects.filter(storage_key=storage.key, name=name).update(
        status=Status.FAILED, failure="rejected", last_error="refused by the scanner"
    )
    forget()


def test_purge_rejected_deletes_them_through_their_storage(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    bad = fs_storage.save("bad.bin", ContentFile(b"bad"))
    failed = fs_storage.save("failed.bin", ContentFile(b"f"))
    good = fs_storage.save("good.bin", ContentFile(b"good"))
    reject(fs_storage, bad)
    StoredFile.objects.filter(storage_key=fs_storage.key, name=failed).update(
        status=Status.FAILED, failure="error"
    )
    forget()

    dry = run("purge", "--rejected", "--dry-run", "-v", "2", "--storage", fs_storage.key)
    assert dry.code == 0
    assert "Would delete 1 rejected file." in dry.out
    assert f"{fs_storage.key}: {bad} (refused by the scanner)" in dry.out
    assert (local_dir / bad).exists()

    result = run("purge", "--rejected")

    assert result.code == 0
    assert "Deleted 1 rejected file." in result.out
    assert not (local_dir / bad).exists()
    assert fs_storage.status(bad) is None
    assert fs_storage.status(failed) == Status.FAILED  # not refused for good: kept
    assert fs_storage.status(good) == Status.REMOTE
    assert (remote_dir / good).exists()


def test_purge_needs_the_rejected_option() -> None:
    result = run("purge")
    assert result.code != 0
    assert "--rejected" in result.err


def test_purge_reports_rows_of_storages_it_does_not_know(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    for name in ("x", "y"):
        StoredFile.objects.create(
            storage_key="elsewhere", name=name, status=Status.FAILED, failure="rejected"
        )
    bad = fs_storage.save("bad.bin", ContentFile(b"bad"))  # of a storage it knows
    reject(fs_storage, bad)
    result = run("purge", "--rejected", "--json")
    assert result.code == 1
    doc = result.json()
    assert doc["unknown"] == {"elsewhere": 2}
    assert [entry["name"] for entry in doc["deleted"]] == [bad]
    assert StoredFile.objects.filter(storage_key="elsewhere").count() == 2
    assert not (local_dir / bad).exists()


def rejected_row(storage: QueuedStorage, name: str) -> StoredFile:
    return StoredFile.objects.create(
        storage_key=storage.key,
        name=name,
        status=Status.FAILED,
        failure="rejected",
        last_error="refused by the scanner",
    )


def test_purge_rejected_deletes_unless_asked_for_a_dry_run(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    bad = fs_storage.save("bad.bin", ContentFile(b"bad"))
    reject(fs_storage, bad)
    assert purge_rejected([fs_storage.key], dry_run=True).deleted
    assert (local_dir / bad).exists()
    report = purge_rejected([fs_storage.key])
    assert [entry["name"] for entry in report.deleted] == [bad]
    assert not (local_dir / bad).exists()
    assert fs_storage.status(bad) is None


def test_purge_goes_on_after_a_file_it_cannot_delete_and_reports_it(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    (local_dir / "stuck").mkdir()  # not a file: it cannot be unlinked
    rejected_row(fs_storage, "stuck")
    bad = fs_storage.save("bad.bin", ContentFile(b"bad"))
    reject(fs_storage, bad)

    report = purge_rejected([fs_storage.key])

    assert [entry["name"] for entry in report.deleted] == [bad]
    assert not (local_dir / bad).exists()
    [error] = report.errors
    assert (error["key"], error["name"]) == (fs_storage.key, "stuck")
    assert "IsADirectoryError" in error["error"]
    assert not report.ok
    # Its row stays DELETING: retry finishes the delete once it can be done.
    assert StoredFile.objects.get(storage_key=fs_storage.key, name="stuck").status == (
        Status.DELETING
    )


def test_purging_a_selection_deletes_only_the_files_refused_for_good(
    fs_storage: QueuedStorage, local_dir: Path
) -> None:
    bad = fs_storage.save("bad.bin", ContentFile(b"bad"))
    reject(fs_storage, bad)
    again = fs_storage.save("rescan.bin", ContentFile(b"scan me again"))
    # Refused once, then queued for another scan (its failure not reset).
    StoredFile.objects.filter(storage_key=fs_storage.key, name=again).update(
        status=Status.QUEUED, failure="rejected"
    )
    forget()

    report = purge_rejected(rows=StoredFile.objects.filter(storage_key=fs_storage.key))

    assert [entry["name"] for entry in report.deleted] == [bad]
    assert (local_dir / again).exists()
    assert fs_storage.status(again) == Status.QUEUED
