"""``sync``: which local and remote names it adopts, which it leaves, and why."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage
from django.utils import timezone

from storage_hooks import Status
from storage_hooks.localfiles import NAME_MAX_LENGTH
from storage_hooks.models import StoredFile
from storage_hooks.ops.sync import sync_storage
from storage_hooks.storage import QueuedStorage

from ..conftest import unique_key
from ..test_commands import write

pytestmark = pytest.mark.django_db(transaction=True)


def with_memory_remote(local_dir: Path) -> tuple[QueuedStorage, InMemoryStorage]:
    remote = InMemoryStorage()
    storage = QueuedStorage(
        local=FileSystemStorage(location=local_dir), remote=remote, key=unique_key("sync")
    )
    return storage, remote


def statuses(storage: QueuedStorage) -> dict[str, str]:
    rows = StoredFile.objects.filter(storage_key=storage.key)
    return dict(rows.values_list("name", "status"))


def test_sync_leaves_the_remote_alone_unless_asked(local_dir: Path) -> None:
    storage, remote = with_memory_remote(local_dir)
    remote.save("only-there.txt", ContentFile(b"r"))
    write(local_dir, "here.txt", b"l")

    report = sync_storage(storage)

    assert (report.adopted, report.recorded_remote, report.seen_remote) == (["here.txt"], [], 0)
    assert "only-there.txt" not in statuses(storage)


def test_a_dry_run_reserves_the_remote_names_it_would_not_adopt(local_dir: Path) -> None:
    storage, remote = with_memory_remote(local_dir)
    for name in ("a.txt", "b.txt", "c.txt"):
        remote.save(name, ContentFile(b"r"))
    write(local_dir, "b.txt", b"local copy")

    report = sync_storage(storage, remote=True, dry_run=True)

    assert report.adopted == ["b.txt"]  # adopted from the local copy
    assert report.recorded_remote == ["a.txt", "c.txt"]
    assert statuses(storage) == {}


def test_remote_names_too_long_for_the_ledger_are_skipped_and_said(local_dir: Path) -> None:
    storage, remote = with_memory_remote(local_dir)
    longest = "d/" + "x" * (NAME_MAX_LENGTH - 2)
    too_long = longest + "y"
    remote.save(longest, ContentFile(b"fits"))
    remote.save(too_long, ContentFile(b"does not"))

    report = sync_storage(storage, remote=True)

    assert report.recorded_remote == [longest]
    assert statuses(storage) == {longest: Status.REMOTE}
    assert [(s["name"], s["kind"]) for s in report.skipped] == [(too_long, "name")]
    assert str(NAME_MAX_LENGTH) in report.skipped[0]["reason"]


def test_min_age_zero_adopts_every_file_even_one_dated_in_the_future(local_dir: Path) -> None:
    storage, _ = with_memory_remote(local_dir)
    write(local_dir, "skewed.txt", b"clock ahead", age=-3600)

    assert sync_storage(storage, min_age=0).adopted == ["skewed.txt"]


def test_a_file_exactly_min_age_old_is_adopted_a_younger_one_waits(
    local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, _ = with_memory_remote(local_dir)
    then = int(time.time()) - 3600
    for name, modified in (("old-enough.txt", then), ("too-young.txt", then + 1)):
        write(local_dir, name, b"x")
        os.utime(local_dir / name, (modified, modified))
    now = datetime.datetime.fromtimestamp(then + 60, tz=datetime.timezone.utc)
    monkeypatch.setattr(timezone, "now", lambda: now)

    report = sync_storage(storage, min_age=60)

    assert report.adopted == ["old-enough.txt"]
    assert [(s["name"], s["kind"]) for s in report.skipped] == [("too-young.txt", "recent")]


def test_a_file_that_cannot_be_read_is_skipped_and_the_reason_given(local_dir: Path) -> None:
    storage, _ = with_memory_remote(local_dir)
    write(local_dir, "fine.txt", b"ok")
    os.symlink(local_dir / "gone.txt", local_dir / "dangling.txt")  # inside the root

    report = sync_storage(storage)

    assert report.adopted == ["fine.txt"]
    (skipped,) = report.skipped
    assert (skipped["name"], skipped["kind"]) == ("dangling.txt", "unreadable")
    assert "No such file" in skipped["reason"]


def test_the_report_of_each_storage_says_its_layout(local_dir: Path) -> None:
    storage, _ = with_memory_remote(local_dir)
    document = sync_storage(storage, dry_run=True).as_dict()
    assert (document["schema"], document["command"], document["key"]) == (1, "sync", storage.key)
