"""FallbackStorage, behaviours mutation testing found unpinned: the url
memory's keys and default size, how backends are named (repr, read_only,
errors), alternative names and pickling with keyword arguments."""

from __future__ import annotations

import pickle
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import InMemoryStorage

from storage_hooks.fallback import FallbackStorage


class CountingMemory(InMemoryStorage):
    """A real InMemoryStorage that counts its ``exists`` calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exists_calls = 0

    def exists(self, name: str) -> bool:
        self.exists_calls += 1
        return super().exists(name)


class DashedNames(InMemoryStorage):
    """Names its alternatives ``a-2.txt``: a naming rule of its own."""

    def get_alternative_name(self, file_root: str, file_ext: str) -> str:
        return f"{file_root}-2{file_ext}"


MEMORY = "django.core.files.storage.InMemoryStorage"


# -- the url memory ---------------------------------------------------------------


def test_forgetting_one_name_keeps_the_others_remembered() -> None:
    first, last = CountingMemory(base_url="/1/"), CountingMemory(base_url="/2/")
    storage = FallbackStorage([first, last])
    for name in ("a.png", "b.png"):
        storage.url(name)
    asked = first.exists_calls
    storage.forget_url("a.png")
    storage.url("b.png")
    assert first.exists_calls == asked  # still known
    storage.url("a.png")
    assert first.exists_calls == asked + 1  # asked again


def test_the_url_memory_holds_1024_names_by_default() -> None:
    """As documented: ``url_cache_size=1024``."""
    first, last = CountingMemory(), CountingMemory()
    storage = FallbackStorage([first, last])
    names = [f"{i}.png" for i in range(1025)]
    for name in names[:1024]:
        storage.url(name)
    storage.url(names[0])
    assert first.exists_calls == 1024  # all 1024 remembered
    storage.url(names[1024])  # pushes out the least recently used: names[1]
    storage.url(names[0])
    assert first.exists_calls == 1025
    storage.url(names[1])
    assert first.exists_calls == 1026


def test_a_pathlib_name_and_its_string_are_one_name_in_the_url_memory() -> None:
    first, last = InMemoryStorage(base_url="/1/"), InMemoryStorage(base_url="/2/")
    storage = FallbackStorage([first, last])
    assert storage.url(PurePosixPath("a.png")) == "/2/a.png"  # in no backend: the last's
    assert storage.save("a.png", ContentFile(b"new")) == "a.png"  # in the first one now
    assert storage.url(PurePosixPath("a.png")) == "/1/a.png"
    assert storage.url(Path("a.png")) == "/1/a.png"


# -- naming backends ---------------------------------------------------------------


def test_repr_names_every_backend_and_the_read_only_ones() -> None:
    storage = FallbackStorage(
        ["default", {"BACKEND": MEMORY}, InMemoryStorage()], read_only=[MEMORY]
    )
    assert repr(storage) == (
        f"<FallbackStorage [default, {MEMORY} (read-only), "
        "django.core.files.storage.memory.InMemoryStorage]>"
    )

    class Local(FallbackStorage):
        pass

    assert repr(Local(["default"])) == "<Local [default]>"


def test_read_only_names_a_dict_backend_by_its_path() -> None:
    storage = FallbackStorage([InMemoryStorage(), {"BACKEND": MEMORY}], read_only=[MEMORY])
    assert [entry.read_only for entry in storage.entries] == [False, True]
    with pytest.raises(ImproperlyConfigured, match=re.escape(repr(MEMORY))):
        FallbackStorage([InMemoryStorage(), {"BACKEND": MEMORY}], read_only=["other"])


def test_a_misconfigured_backend_is_named_by_its_place() -> None:
    storage = FallbackStorage([InMemoryStorage(), "no-such-alias"])
    with pytest.raises(ImproperlyConfigured, match="fallback backend #1"):
        storage.exists("a.txt")
    with pytest.raises(ImproperlyConfigured, match="fallback backend #0"):
        FallbackStorage([{"BACKEND": "no.such.Storage"}]).exists("a.txt")


# -- alternative names --------------------------------------------------------------


def test_alternative_names_are_the_writers() -> None:
    storage = FallbackStorage([InMemoryStorage(), DashedNames()], read_only=[0])
    assert storage.get_alternative_name("a", ".txt") == "a-2.txt"


def test_alternative_names_without_a_writer_are_djangos() -> None:
    storage = FallbackStorage([DashedNames()], read_only=[0])
    assert re.fullmatch(r"a_[A-Za-z0-9]{7}\.txt", storage.get_alternative_name("a", ".txt"))


# -- pickling ---------------------------------------------------------------------


def test_pickles_with_backends_given_by_keyword() -> None:
    memory = InMemoryStorage(base_url="/m/")
    storage = FallbackStorage(backends=[memory, MEMORY], read_only=[1])
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.deconstruct()[2]["read_only"] == [1]
    assert [entry.read_only for entry in copy.entries] == [False, True]
    assert copy.entries[0].storage is not memory
    assert copy.entries[0].storage.deconstruct() == memory.deconstruct()
