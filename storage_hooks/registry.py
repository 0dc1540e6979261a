"""Finding a QueuedStorage by its key, as a worker must."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.storage import storages

from .exceptions import UnknownStorageKey

if TYPE_CHECKING:
    from .storage import QueuedStorage


def configured_storages() -> dict[str, QueuedStorage]:
    """The QueuedStorages of ``settings.STORAGES``, by alias."""
    from .storage import QueuedStorage

    found = {}
    for alias in settings.STORAGES:
        try:
            storage = storages[alias]
        except Exception:  # a broken entry is the checks' business
            continue
        if isinstance(storage, QueuedStorage):
            found[alias] = storage
    return found


def known_storages() -> list[QueuedStorage]:
    """Every QueuedStorage this process has built, STORAGES' included."""
    from .storage import _instances

    configured_storages()
    return list(_instances.values())


def get_storage(key: str) -> QueuedStorage:
    """The QueuedStorage whose key is ``key``, or UnknownStorageKey."""
    from .storage import _instances

    for storage in list(_instances.values()):
        if storage.key == key:
            return storage
    for storage in known_storages():
        if storage.key == key:
            return storage
    known = sorted({s.key for s in list(_instances.values())})
    raise UnknownStorageKey(
        f"No QueuedStorage with the key {key!r} exists in this process (known keys: "
        f"{', '.join(known) or 'none'}). Make it known to the worker: define it in "
        f"settings.STORAGES under the alias {key!r}, or give it key={key!r} where it is "
        "built, in a module the worker imports (such as models.py). A storage built with "
        "other options than the web process's has another key."
    )
