"""Turning what a user writes into storages (build_storage), and
configurations into stable fingerprints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, InMemoryStorage, storages

from storage_hooks.hooks import DeleteLocal
from storage_hooks.resolve import build_storage, fingerprint

FS = "django.core.files.storage.FileSystemStorage"


def test_an_alias_is_the_storages_instance() -> None:
    assert build_storage("default", role="local") is storages["default"]


def test_a_dotted_path_or_class_is_built_with_its_options(tmp_path: Path) -> None:
    built = build_storage(FS, {"location": str(tmp_path)}, role="local")
    assert type(built) is FileSystemStorage
    assert built.location == str(tmp_path)
    built = build_storage(InMemoryStorage, {"base_url": "/m/"}, role="remote")
    assert type(built) is InMemoryStorage
    assert built.base_url == "/m/"


def test_an_instance_is_taken_as_it_is() -> None:
    storage = InMemoryStorage()
    assert build_storage(storage, role="remote") is storage


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        (None, None, r"No local storage was given \(None or an empty string\)"),
        ("", None, "No local storage was given"),
        ("nope", None, r"'nope' is not an alias of settings\.STORAGES \(known: .*default"),
        ("default", {"location": "/x"}, r"local_options cannot be combined with the STORAGES"),
        ("nowhere.Storage", None, r"path 'nowhere\.Storage' could not be imported"),
        (dict, None, "is not a Storage class"),
        (InMemoryStorage(), {"base_url": "/x/"}, "cannot be combined with a storage instance"),
        (42, None, "must be a STORAGES alias, a dotted path, a Storage class or instance"),
    ],
)
def test_what_cannot_be_a_storage_is_explained(spec: Any, options: Any, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        build_storage(spec, options, role="local")


def test_wrong_options_for_a_class_raise_its_own_error() -> None:
    with pytest.raises(TypeError, match="location_typo"):
        build_storage(FS, {"location_typo": "/x"}, role="local")


def test_a_fingerprint_is_stable_and_follows_the_configuration() -> None:
    base = {"local": FileSystemStorage(location="/srv/a"), "hooks": [DeleteLocal()], "n": 1}
    same = {"n": 1, "hooks": [DeleteLocal()], "local": FileSystemStorage(location=Path("/srv/a"))}
    assert fingerprint(base) == fingerprint(same)
    assert len(fingerprint(base)) == 16
    for changed in (
        {**base, "local": FileSystemStorage(location="/srv/b")},
        {**base, "hooks": []},
        {**base, "n": 2},
        {**base, "local": InMemoryStorage(location="/srv/a")},
    ):
        assert fingerprint(changed) != fingerprint(base)


def test_a_fingerprint_of_a_class_uses_its_full_path() -> None:
    full_path = "django.core.files.storage.filesystem.FileSystemStorage"
    assert fingerprint({"local": FileSystemStorage}) == fingerprint({"local": full_path})
    assert fingerprint({"local": FileSystemStorage}) != fingerprint({"local": InMemoryStorage})
