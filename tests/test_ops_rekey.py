"""``storage_hooks rekey OLD NEW``: moving the ledger rows of a storage key."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from storage_hooks import Status, ledger
from storage_hooks.models import KEY_MAX_LENGTH, StoredFile
from storage_hooks.ops.rekey import RekeyRefused, rekey_storage
from storage_hooks.storage import QueuedStorage

from .conftest import unique_key
from .test_commands import run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def renamed(local_dir: Path, remote_dir: Path) -> tuple[QueuedStorage, QueuedStorage]:
    """The same files under an old key and a new one (its key changed)."""

    def build(key: str) -> QueuedStorage:
        return QueuedStorage(
            local=FileSystemStorage(location=local_dir),
            remote=FileSystemStorage(location=remote_dir),
            key=key,
        )

    return build(unique_key("old")), build(unique_key("new"))


def test_rekey_moves_the_rows_and_the_files_are_found_again(renamed) -> None:
    old, new = renamed
    old.save("a.txt", ContentFile(b"a"))
    old.save("b/c.txt", ContentFile(b"c"))
    assert new.status("a.txt") is None  # the new key does not know the files

    result = run("rekey", old.key, new.key)

    assert result.code == 0
    assert f"Moved 2 rows from {old.key!r} to {new.key!r} (2 remote)." in result.out
    assert new.status("a.txt") == Status.REMOTE
    assert old.status("a.txt") is None
    with new.open("b/c.txt") as fh:
        assert fh.read() == b"c"
    assert StoredFile.objects.filter(storage_key=old.key).count() == 0


def test_rekey_dry_run_changes_nothing(renamed) -> None:
    old, new = renamed
    old.save("a.txt", ContentFile(b"a"))
    result = run("rekey", old.key, new.key, "--dry-run")
    assert result.code == 0
    assert "Would move 1 row" in result.out
    assert old.status("a.txt") == Status.REMOTE
    assert new.status("a.txt") is None


def test_rekey_refuses_names_the_new_key_has_and_lists_them(renamed) -> None:
    old, new = renamed
    for name in ("same.txt", "also.txt", "only-old.txt"):
        StoredFile.objects.create(storage_key=old.key, name=name, status=Status.REMOTE)
    for name in ("same.txt", "also.txt", "only-new.txt"):
        StoredFile.objects.create(storage_key=new.key, name=name, status=Status.REMOTE)

    result = run("rekey", old.key, new.key)

    assert result.code == 1
    assert "already has 2 files of the same name" in result.err
    assert "  also.txt\n  same.txt" in result.err
    assert StoredFile.objects.filter(storage_key=old.key).count() == 3
    doc = rekey_storage(old.key, new.key, dry_run=True)
    assert (doc.conflicts, doc.moved) == (["also.txt", "same.txt"], 0)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("nothing-here", "x", "has no row of the key 'nothing-here'"),
        ("k", "k", "both 'k'"),
        ("k", "", "must have 1 to"),
        ("k", "n" * (KEY_MAX_LENGTH + 1), "must have 1 to"),
    ],
)
def test_rekey_refuses_bad_requests(old: str, new: str, message: str) -> None:
    StoredFile.objects.create(storage_key="k", name="a", status=Status.REMOTE)
    with pytest.raises(RekeyRefused, match=message):
        rekey_storage(old, new)
    result = run("rekey", old, new)
    assert result.code == 2
    assert message in result.err


def test_rekey_moves_thousands_of_rows_and_the_cache_follows() -> None:
    old, new = unique_key("old"), unique_key("new")
    names = [f"f{i:05}.txt" for i in range(2100)]
    StoredFile.objects.bulk_create(
        StoredFile(storage_key=old, name=name, status=Status.REMOTE) for name in names
    )
    assert set(ledger.statuses(old, names).values()) == {Status.REMOTE}  # now cached

    report = rekey_storage(old, new)

    assert report.moved == len(names)
    assert set(ledger.statuses(new, names).values()) == {Status.REMOTE}
    assert set(ledger.statuses(old, names).values()) == {None}
    assert StoredFile.objects.filter(storage_key=new).count() == len(names)
