"""The registry of QueuedStorages: every one registers itself when it is
built, and workers, runners, operations and the admin find storages only
here, by key.

It holds storages weakly (a storage nobody uses any more leaves it) and
imports no storage class: what registers is a storage by definition.
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.storage import storages
from django.utils.module_loading import import_string

from .exceptions import UnknownStorageKey

if TYPE_CHECKING:
    from .storage import QueuedStorage

#: Every QueuedStorage built in this process, in the order they were built
#: (the first one built with a key wins: the one of settings or of a model,
#: not a copy made later by pickling or migrations).
_instances: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_serial = itertools.count()


def register(storage: QueuedStorage) -> None:
    """Called by every QueuedStorage when it is built."""
    _instances[next(_serial)] = storage


def _registered() -> list[QueuedStorage]:
    return [storage for _, storage in sorted(_instances.items())]


def _backend_class(alias: str) -> Any:
    backend = settings.STORAGES[alias].get("BACKEND")
    if isinstance(backend, str):
        try:
            return import_string(backend)
        except ImportError:
            return None
    return backend


def configured_storages() -> dict[str, QueuedStorage]:
    """The QueuedStorages of ``settings.STORAGES``, by alias (built now if
    they were not yet; an entry that cannot be built is the checks'
    business)."""
    found: dict[str, Any] = {}
    for alias in settings.STORAGES:
        cls = _backend_class(alias)
        if not getattr(cls, "is_queued_storage", False):
            continue
        try:
            storage = storages[alias]
        except Exception:
            continue
        if any(storage is known for known in _instances.values()):
            found[alias] = storage
    return found


def alias_of(storage: QueuedStorage) -> str | None:
    """The alias of ``settings.STORAGES`` that built ``storage``, if any
    (only entries of its own class are built to find out)."""
    for alias in settings.STORAGES:
        if _backend_class(alias) is not type(storage):
            continue
        try:
            if storages[alias] is storage:
                return alias
        except Exception:
            continue
    return None


def known_storages() -> list[QueuedStorage]:
    """Every QueuedStorage this process has built, STORAGES' included."""
    configured_storages()
    return _registered()


def known_keys() -> list[str]:
    return sorted({storage.key for storage in known_storages()})


def get_storage(key: str) -> QueuedStorage:
    """The QueuedStorage whose key is ``key``, or UnknownStorageKey."""
    for storage in _registered():
        if storage.key == key:
            return storage
    for storage in known_storages():
        if storage.key == key:
            return storage
    raise UnknownStorageKey(
        f"No QueuedStorage with the key {key!r} exists in this process (known keys: "
        f"{', '.join(known_keys()) or 'none'}). Make it known to the worker: define it in "
        f"settings.STORAGES under the alias {key!r}, or give it key={key!r} where it is "
        "built, in a module the worker imports (such as models.py)."
    )
