"""A wrapped storage's own naming rules, with "taken" decided by the wrapper.

Django lets a storage name files its own way: ``get_available_name`` (a
custom one, such as Trac-style ``a.2.txt``), ``get_alternative_name``, and
``FileSystemStorage(allow_overwrite=True)`` (``is_name_available`` true for
any name that fits). A storage that wraps others (FallbackStorage,
QueuedStorage) should keep those rules while deciding itself which names are
taken (in any backend; locally, in the ledger or on the remote).
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.files.storage import Storage


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
    base = type(storage)

    def exists(self: Storage, name: str) -> bool:
        return taken(name)

    view_class = type(f"{base.__name__}Naming", (base,), {"exists": exists})
    view: Storage = object.__new__(view_class)
    view.__dict__ = storage.__dict__
    return view
