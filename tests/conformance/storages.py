"""The one thing the conformance run changes in Django's tests: how a
storage is built.

Where a Django test builds ``storage_class(location=..., base_url=..., ...)``
(or ``FileSystemStorage(dir)`` in its ``setUp``), it gets instead:

- ``queued``: ``QueuedStorage(local=<the same storage class in a staging
  directory>, remote=<the storage the test asked for>, check_remote=True)``
  with the immediate runner: the test's ``location`` is where files end up
  (the remote), the staging directory is the local copy. ``check_remote``
  because the tests also write into ``location`` behind the storage's back
  (``os.mkdir``, symlinks), as other writers do in a shared bucket.
- ``fallback``: ``FallbackStorage([<the storage the test asked for>,
  FileSystemStorage(<another directory>)])``: writes go to the first.
"""

from __future__ import annotations

import inspect
import itertools
import tempfile
from collections.abc import Callable
from typing import Any

from django.core.files.storage import FileSystemStorage, Storage

from storage_hooks.fallback import FallbackStorage
from storage_hooks.storage import QueuedStorage

#: Every directory the factories made, in order (the adapter removes them).
scratch_dirs: list[str] = []
_keys = itertools.count()


def _scratch(kind: str) -> str:
    path = tempfile.mkdtemp(prefix=f"storage_hooks-conformance-{kind}-")
    scratch_dirs.append(path)
    return path


def _elsewhere(storage_class: type[Storage], args: Any, kwargs: Any, location: str) -> Storage:
    """``storage_class`` with the same options, at another location."""
    signature = inspect.signature(storage_class.__init__)
    options = dict(signature.bind_partial(None, *args, **kwargs).arguments)
    del options[next(iter(signature.parameters))]  # self
    options["location"] = location
    return storage_class(**options)


def queued(storage_class: type[Storage], *args: Any, **kwargs: Any) -> QueuedStorage:
    remote = storage_class(*args, **kwargs)
    local = _elsewhere(storage_class, args, kwargs, _scratch("local"))
    return QueuedStorage(
        local=local, remote=remote, check_remote=True, key=f"conformance-{next(_keys)}"
    )


def fallback(storage_class: type[Storage], *args: Any, **kwargs: Any) -> FallbackStorage:
    second = FileSystemStorage(location=_scratch("second"), base_url="/second/")
    return FallbackStorage([storage_class(*args, **kwargs), second])


def control(storage_class: type[Storage], *args: Any, **kwargs: Any) -> Storage:
    """The storage the test asked for, unchanged: Django's tests must all
    pass this way, which shows the harness itself changes nothing else."""
    return storage_class(*args, **kwargs)


FLAVOURS: dict[str, Callable[..., Storage]] = {
    "control": control,
    "queued": queued,
    "fallback": fallback,
}


def rebuild(flavour: str, storage: FileSystemStorage) -> Storage:
    """The ``flavour`` storage built with the arguments ``storage`` was."""
    _, args, kwargs = storage.deconstruct()
    return FLAVOURS[flavour](type(storage), *args, **kwargs)
