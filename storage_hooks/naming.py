"""A wrapped storage's own naming rules, with "taken" decided by the wrapper.

Django lets a storage name files its own way: ``get_available_name`` (a
custom one, such as Trac-style ``a.2.txt``), ``get_alternative_name``, and
``FileSystemStorage(allow_overwrite=True)`` (``is_name_available`` true for
any name that fits). A storage that wraps others (FallbackStorage,
QueuedStorage) should keep those rules while deciding itself which names are
taken (in any backend; locally, in the ledger or on the remote).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.files.storage import Storage

#: storage class -> its naming view class (made once: a class per call
#: would cost more than the naming itself, which runs on every save). One
#: per storage class the process uses; a view refers to its class anyway.
_views: dict[type, type] = {}
_views_lock = threading.Lock()


def _view_class(base: type) -> type:
    found = _views.get(base)
    if found is None:
        with _views_lock:
            found = _views.get(base)
            if found is None:

                def exists(self: Any, name: str) -> bool:
                    return bool(self._storage_hooks_taken(name))

                # The "taken" callable lives in a slot of the view, not in
                # the __dict__ it shares with the storage.
                found = _views[base] = type(
                    f"{base.__name__}Naming",
                    (base,),
                    {"exists": exists, "__slots__": ("_storage_hooks_taken",)},
                )
    return found


def with_taken(storage: Storage, taken: Callable[[str], bool]) -> Storage:
    """``storage`` as its naming methods see it, except that ``exists(name)``
    is ``taken(name)``.

    The view is an instance of a subclass of the storage's class sharing the
    storage's state (``__dict__``, not a copy), so the storage's own
    ``get_available_name``, ``is_name_available``, ``get_alternative_name``
    and settings such as ``allow_overwrite`` apply, ``super()`` calls
    included. Only for naming: never write through the view. A storage
    without ``__dict__`` (``__slots__``) is returned unchanged.
    """
    if not hasattr(storage, "__dict__"):
        return storage
    view: Storage = object.__new__(_view_class(type(storage)))
    view.__dict__ = storage.__dict__
    # Past the storage's own __setattr__ (a frozen one refuses new names).
    object.__setattr__(view, "_storage_hooks_taken", taken)
    return view
