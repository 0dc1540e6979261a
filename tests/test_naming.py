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


class Frozen(FileSystemStorage):
    """A storage whose settings are fixed once it is built."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        if self.__dict__.get("_frozen"):
            raise AttributeError(f"{type(self).__name__} is immutable ({name})")
        super().__setattr__(name, value)


def test_a_storage_that_refuses_new_attributes_still_names(tmp_path: Path):
    frozen = Frozen(location=tmp_path)
    name = with_taken(frozen, lambda name: name == "a.txt").get_available_name("a.txt")
    assert name.startswith("a_")
    assert "_storage_hooks_taken" not in frozen.__dict__


def test_views_of_one_class_keep_their_own_taken(tmp_path: Path):
    storage = FileSystemStorage(location=tmp_path)
    first = with_taken(storage, lambda name: name == "a.txt")
    second = with_taken(storage, lambda name: False)
    assert type(first) is type(second)  # the class is made once
    assert first.exists("a.txt")
    assert not second.exists("a.txt")
    assert not storage.exists("a.txt")
