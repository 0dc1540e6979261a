"""One canonical spelling per file (storage_hooks.names)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.base import ContentFile

from storage_hooks import Status
from storage_hooks.models import StoredFile
from storage_hooks.names import canonical
from storage_hooks.storage import QueuedStorage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("a/b.txt", "a/b.txt"),
        ("a//b.txt", "a/b.txt"),
        ("./a/b.txt", "a/b.txt"),
        ("a/./b.txt", "a/b.txt"),
        ("a\\b.txt", "a/b.txt"),
        (Path("a/b.txt"), "a/b.txt"),
        (PurePosixPath("a//b.txt"), "a/b.txt"),
        ("a..b.txt", "a..b.txt"),
    ],
)
def test_equivalent_spellings_are_one_name(given: object, expected: str) -> None:
    assert canonical(given) == expected


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "a/", "", ".", "a\x00b"])
def test_names_that_could_leave_the_root_are_refused(bad: str) -> None:
    with pytest.raises(SuspiciousFileOperation):
        canonical(bad)


def test_every_spelling_reaches_the_same_file_and_row(
    fs_storage: QueuedStorage, local_dir: Path, remote_dir: Path
) -> None:
    name = fs_storage.save("./a//b.txt", ContentFile(b"one file"))
    assert name == "a/b.txt"
    for spelling in ("a/b.txt", "a//b.txt", "./a/b.txt", Path("a/b.txt")):
        assert fs_storage.status(spelling) == Status.REMOTE  # type: ignore[arg-type]
        assert fs_storage.exists(spelling)
        assert fs_storage.size(spelling) == 8
        with fs_storage.open(spelling) as fh:
            assert fh.read() == b"one file"
    fs_storage.delete("a//b.txt")
    assert not StoredFile.objects.filter(storage_key=fs_storage.key).exists()
    assert not (remote_dir / "a" / "b.txt").exists()
    assert not (local_dir / "a" / "b.txt").exists()


def test_path_names_work_everywhere(fs_storage: QueuedStorage) -> None:
    name = fs_storage.save(Path("docs/p.txt"), ContentFile(b"path"))
    path = Path(name)
    assert fs_storage.exists(path)
    assert fs_storage.size(path) == 4
    assert fs_storage.url(path).endswith("docs/p.txt")
    fs_storage.delete(path)
    assert not fs_storage.exists(path)
