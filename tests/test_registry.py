"""Finding a QueuedStorage by its key, as a worker does (storage_hooks.registry)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.test import override_settings

from storage_hooks.exceptions import UnknownStorageKey
from storage_hooks.registry import configured_storages, get_storage, known_storages
from storage_hooks.storage import QueuedStorage
from storage_hooks.transfer import run_transfer

from .conftest import unique_key
from .testapp.models import field_storage

MEMORY = "django.core.files.storage.InMemoryStorage"
MEDIA = {"BACKEND": "storage_hooks.QueuedStorage", "OPTIONS": {"local": MEMORY, "remote": MEMORY}}


def test_a_storage_is_found_by_its_key() -> None:
    key = unique_key()
    storage = QueuedStorage(MEMORY, MEMORY, key=key)
    assert get_storage(key) is storage
    assert storage in known_storages()


def test_the_storage_of_a_model_field_is_found() -> None:
    assert get_storage("testapp-documents") is field_storage


def test_a_storages_alias_is_built_when_a_worker_asks() -> None:
    with override_settings(STORAGES={**storages.backends, "media": MEDIA}):
        found = get_storage("media")
        assert found is storages["media"]
        assert configured_storages() == {"media": found}


def test_a_broken_storages_entry_is_left_to_the_checks() -> None:
    broken = {"BACKEND": "storage_hooks.QueuedStorage", "OPTIONS": {"nonsense": 1}}
    with override_settings(STORAGES={**storages.backends, "media": MEDIA, "broken": broken}):
        assert list(configured_storages()) == ["media"]


def test_the_first_storage_built_with_a_key_wins() -> None:
    key = unique_key()
    first = QueuedStorage(MEMORY, MEMORY, key=key)
    QueuedStorage(MEMORY, MEMORY, key=key)
    QueuedStorage(MEMORY, MEMORY, key=key)
    assert get_storage(key) is first


def test_an_unknown_key_says_how_to_make_it_known() -> None:
    with pytest.raises(UnknownStorageKey) as info:
        get_storage("invoices")
    message = str(info.value)
    assert "No QueuedStorage with the key 'invoices' exists in this process" in message
    assert "testapp-documents" in message  # the keys it does know
    assert "settings.STORAGES under the alias 'invoices'" in message
    assert "key='invoices'" in message
    assert isinstance(info.value, ImproperlyConfigured)


def test_a_worker_meeting_an_unknown_key_fails_clearly() -> None:
    with pytest.raises(UnknownStorageKey, match="'invoices'"):
        run_transfer("invoices", "a.pdf")
