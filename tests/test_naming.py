"""naming.with_taken: a storage's own naming rules, "taken" decided outside."""

from __future__ import annotations

from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, InMemoryStorage

from storage_hooks.naming import with_taken


class Numbered(InMemoryStorage):
    """Trac-style names: ``a.txt``, ``a.2.txt``, ``a.3.txt``."""

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        root, dot, ext = name.rpartition(".")
        number, candidate = 2, name
        while self.exists(candidate):
            candidate = f"{root}.{number}{dot}{ext}"
            number += 1
        return candidate


def test_a_custom_get_available_name_asks_taken():
    storage = Numbered()
    taken = {"a.txt", "a.2.txt"}
    assert with_taken(storage, taken.__contains__).get_available_name("a.txt") == "a.3.txt"
    assert storage.get_available_name("a.txt") == "a.txt"  # the storage itself is untouched


def test_djangos_own_rules_apply_with_super_calls(tmp_path: Path):
    plain = FileSystemStorage(location=tmp_path)
    name = with_taken(plain, lambda name: name == "x.txt").get_available_name("x.txt")
    assert name.startswith("x_")
    assert name.endswith(".txt")
    overwriting = FileSystemStorage(location=tmp_path, allow_overwrite=True)
    assert with_taken(overwriting, lambda name: True).get_available_name("x.txt") == "x.txt"


def test_the_view_shares_the_storages_state(tmp_path: Path):
    storage = FileSystemStorage(location=tmp_path / "a")
    view = with_taken(storage, lambda name: False)
    assert view.location == storage.location
    storage.save("f.txt", ContentFile(b"x"))
    assert view.listdir("") == ([], ["f.txt"])
    assert isinstance(view, FileSystemStorage)
