"""QueuedStorage: save locally at once, transfer to the remote in the background.

The shortcuts django-queued-storage users know (``QueuedFileSystemStorage``,
``S3Storage``, ...) are at the end of this module.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cached_property
from typing import IO, Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import Storage
from django.db import IntegrityError, transaction
from django.utils.deconstruct import deconstructible

from . import ledger, signals
from .checks import check_installed
from .conf import hostname
from .localfiles import (
    NAME_MAX_LENGTH,
    HashingFile,
    check_inside_root,
    check_name,
    free_name,
    hash_upload,
    sha256_of,
)
from .resolve import build_storage, fingerprint, import_or_none, normalize
from .status import Status

# Using a QueuedStorage without the app installed is caught by `check`.
checks.register(check_installed)

#: Every QueuedStorage built in this process, in the order they were built,
#: so a worker can find one by key (the first one built wins: the one of
#: settings or of a model, not a copy made later by pickling or migrations).
_instances: weakref.WeakValueDictionary[int, QueuedStorage] = weakref.WeakValueDictionary()
_serial = itertools.count()

LEGACY_TASKS = {
    "queued_storage.tasks.Transfer": False,
    "queued_storage.tasks.TransferAndDelete": True,
}


@deconstructible
class QueuedStorage(Storage):
    """A Storage that writes to ``local`` and transfers each file to ``remote``.

    See the README for the whole story; in short: ``save`` writes locally,
    records the file in the ledger and queues its transfer when the
    transaction commits. Reads go to ``local`` until the remote copy is
    verified, then to ``remote``.
    """

    def __init__(
        self,
        local: Any = None,
        remote: Any = None,
        *,
        local_options: dict[str, Any] | None = None,
        remote_options: dict[str, Any] | None = None,
        hooks: Sequence[Any] = (),
        delayed: bool = False,
        check_remote: bool = False,
        key: str | None = None,
        task: str | None = None,
    ) -> None:
        self._local_spec = local
        self._remote_spec = remote
        self.local_options = dict(local_options or {})
        self.remote_options = dict(remote_options or {})
        self.delayed = delayed
        self.check_remote = check_remote
        self._key = key
        if isinstance(hooks, str):
            raise ImproperlyConfigured(
                f"hooks must be a list of hooks or dotted paths, not the string {hooks!r}; "
                f"write hooks=[{hooks!r}]."
            )
        self._hook_specs = list(hooks)
        if task is not None:
            if task not in LEGACY_TASKS:
                raise ImproperlyConfigured(
                    f"task={task!r} is not supported. storage_hooks has no task classes: "
                    "behaviour such as deleting the local copy is a hook, e.g. "
                    "hooks=[storage_hooks.hooks.DeleteLocal()]; see 'Writing a hook' in the "
                    "README."
                )
            if LEGACY_TASKS[task]:
                self._hook_specs.append("storage_hooks.hooks.DeleteLocal")
        _instances[next(_serial)] = self

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the constructor's arguments: resolved storages, hooks
        # and receivers are made again on the other side.
        args, kwargs = self._constructor_args  # type: ignore[attr-defined]
        return (_rebuild, (type(self), args, kwargs))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key={self.key!r}>"

    # -- configuration ---------------------------------------------------

    @cached_property
    def local(self) -> Storage:
        """The resolved local Storage."""
        return build_storage(self._local_spec, self.local_options, role="local")

    @cached_property
    def remote(self) -> Storage:
        """The resolved remote Storage."""
        return build_storage(self._remote_spec, self.remote_options, role="remote")

    @cached_property
    def key(self) -> str:
        """This storage's identity in the ledger and in task payloads."""
        if self._key:
            return self._key
        mine = self._config()
        for alias, entry in settings.STORAGES.items():
            backend = entry.get("BACKEND")
            same_class = backend == self._path() or (
                isinstance(backend, str) and import_or_none(backend) is type(self)
            )
            if same_class and normalize(type(self), (), dict(entry.get("OPTIONS", {}))) == mine:
                return alias
        return f"{type(self).__name__.lower()}-{fingerprint(mine)}"

    def _path(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def _config(self) -> dict[str, Any]:
        args, kwargs = self._constructor_args  # type: ignore[attr-defined]
        return normalize(type(self), args, kwargs)

    @cached_property
    def hooks(self) -> list[Any]:
        """The hook objects, each connected to this storage once."""
        from .hooks import resolve_hook

        resolved = [resolve_hook(spec) for spec in self._hook_specs]
        for hook in resolved:
            hook.connect(self)
        return resolved

    # -- names -----------------------------------------------------------

    def get_valid_name(self, name: str) -> str:
        return self.local.get_valid_name(name)

    def _taken(self, name: str, *, ask_ledger: bool = False) -> bool:
        # Where the ledger's insert refuses a known name by itself
        # (PostgreSQL, SQLite), save asks the ledger only after a refusal:
        # one round trip less on every save.
        ask_ledger = ask_ledger or not ledger.inserts_if_absent()
        return (
            self.local.exists(name)
            or (ask_ledger and ledger.knows(self.key, name))
            or (self.check_remote and self.remote.exists(name))
        )

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        """A name free locally and unknown to the ledger (and free on the
        remote with ``check_remote=True``)."""
        check_name(name)
        limit = min(max_length or NAME_MAX_LENGTH, NAME_MAX_LENGTH)
        return free_name(name, limit, self._taken, self.get_alternative_name)

    # -- writing ---------------------------------------------------------

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        """Save locally under a free name, record it, queue its transfer at
        commit; returns the name. (Storage.save, keeping ``max_length`` for
        the rare name the ledger refuses.)"""
        if name is None:
            name = content.name
        if not hasattr(content, "chunks"):
            content = File(content, name)
        name = self.get_available_name(check_name(str(name)), max_length=max_length)
        return check_name(self._save(name, content, max_length=max_length))

    def save_derivative(
        self, source: str, name: str, content: Any, *, variant: str, max_length: int | None = None
    ) -> str:
        """Save ``content`` as a derivative of the file ``source`` (a
        thumbnail, for one) under ``name`` or, if that is taken, another free
        name; the ledger records which file it derives from and which
        ``variant`` it is, so it is never taken for an upload (nor an upload
        for it). Returns the name saved; queued like any saved file."""
        check_name(source)
        if not hasattr(content, "chunks"):
            content = File(content, name)
        name = self.get_available_name(check_name(str(name)), max_length=max_length)
        derived = {"derived_from": source, "variant": variant}
        return check_name(self._save(name, content, max_length=max_length, derived=derived))

    def derivatives(self, source: str) -> dict[str, str]:
        """``{variant: name}`` of the derivatives recorded for ``source``."""
        return ledger.derivatives(self.key, check_name(source))

    def source_of(self, name: str) -> str | None:
        """The name of the file ``name`` was derived from; None for an
        original or an unknown name."""
        return ledger.source_of(self.key, check_name(name))

    def _save(
        self,
        name: str,
        content: Any,
        max_length: int | None = None,
        derived: dict[str, str] | None = None,
    ) -> str:
        check_name(name)
        check_inside_root(self.local, name)  # never write through a symlink
        self.hooks  # noqa: B018  (connect hooks before the first signal)
        uploaded = hash_upload(content)
        source = content if uploaded else HashingFile(content, name)
        name = self.local.save(name, source)
        if uploaded:
            checksum, size = uploaded
        else:
            assert isinstance(source, HashingFile)
            checksum = source.hexdigest() or sha256_of(self.local, name)
            size = source.bytes_read if source.hexdigest() else self.local.size(name)
        limit = min(max_length or NAME_MAX_LENGTH, NAME_MAX_LENGTH)
        name = self._record(name, size, checksum, limit, derived or {})
        signals.send_robust(signals.saved_locally, self, name=name, size=size, checksum=checksum)
        if not self.delayed:
            self._enqueue_on_commit(name)
        return name

    def _record(
        self, name: str, size: int, checksum: str, limit: int, derived: dict[str, str]
    ) -> str:
        """Record the local copy in the ledger; move it to another name if
        the ledger already knows this one (a file whose local copy was
        deleted after its transfer). Returns the name recorded."""
        status = Status.LOCAL if self.delayed else Status.QUEUED
        host = hostname()
        if not ledger.inserts_if_absent():
            try:
                # No savepoint (two round trips per save) for a conflict
                # that only two saves racing for one name can cause.
                ledger.record_saved(
                    self.key,
                    name,
                    status=status,
                    size=size,
                    checksum=checksum,
                    host=host,
                    **derived,
                )
            except IntegrityError:
                self.local.delete(name)
                raise FileExistsError(
                    f"{name!r} was recorded by another save at the same moment; nothing "
                    "was kept (inside a transaction, that transaction must be rolled back)."
                ) from None
            return name
        for _ in range(5):
            if ledger.insert_if_absent(
                self.key,
                name,
                status=status,
                size=size,
                checksum=checksum,
                host=host,
                **derived,
            ):
                return name
            free = free_name(
                name, limit, lambda n: self._taken(n, ask_ledger=True), self.get_alternative_name
            )
            with self.local.open(name, "rb") as fh:
                free = self.local.save(free, fh)
            self.local.delete(name)
            name = free
        self.local.delete(name)
        raise FileExistsError(f"No free name near {name!r}: the ledger refused five of them.")

    def _enqueue_on_commit(self, name: str, host: str | None = None) -> None:
        transaction.on_commit(lambda: self.enqueue(name, host=host), using=ledger.db_alias())

    def enqueue(self, name: str, *, host: str | None = None, countdown: float = 0) -> None:
        """Hand the transfer of ``name`` to the runner now (no ledger change).

        ``transfer_queued`` is sent just before, so that its receivers run
        before the transfer starts, even with a runner that runs it at once.
        A runner that cannot take it (broker down) is logged, not raised:
        the file is saved and QUEUED, and ``manage.py storage_hooks retry``
        queues it again.
        """
        from .runners import get_runner

        signals.send_robust(signals.transfer_queued, self, name=name)
        try:
            get_runner().enqueue(self.key, name, host=host or hostname(), countdown=countdown)
        except Exception:
            signals.logger.exception(
                "Could not queue the transfer of %r; it stays QUEUED in the ledger and "
                "'manage.py storage_hooks retry' will queue it again.",
                name,
            )

    def transfer(self, name: str) -> None:
        """Queue the transfer of a saved file (delayed, failed, or lost in
        the queue). Harmless for a file already on the remote."""
        check_name(name)
        state = ledger.status(self.key, name)
        if state is None:
            raise FileNotFoundError(f"{name!r} was not saved through {self!r}.")
        if state in (Status.REMOTE, Status.TRANSFERRING):
            return
        if ledger.requeue(self.key, name, reset_attempts=state == Status.FAILED):
            self._enqueue_on_commit(name)

    def delete(self, name: str) -> None:
        """Remove the file from both storages and from the ledger."""
        check_name(name)
        check_inside_root(self.local, name)  # before anything is deleted
        known = ledger.knows(self.key, name)
        if known:
            self.remote.delete(name)
        self.local.delete(name)
        if known:
            ledger.delete(self.key, name)

    # -- routing ---------------------------------------------------------

    def status(self, name: str) -> Status | None:
        """The file's ``Status``, or None for a name the ledger doesn't know."""
        return ledger.status(self.key, check_name(name))

    def statuses(self, names: Iterable[str]) -> dict[str, Status | None]:
        """Statuses of many names with one cache call and at most one query;
        also warms the cache so the ``url`` calls that follow cost no query."""
        return ledger.statuses(self.key, names)

    def urls(self, names: Iterable[str]) -> dict[str, str]:
        """The ``url`` of many files with one cache round trip (and at most
        one query), for a page of images: ``url`` pays one round trip per
        name, which is what a page of them mostly costs with a Redis cache."""
        found = self.statuses(check_name(name) for name in names)
        # As in url(): no symlink check, a URL reads nothing.
        return {
            name: (self.remote if state == Status.REMOTE else self.local).url(name)
            for name, state in found.items()
        }

    def using_remote(self, name: str) -> bool:
        return self.status(name) == Status.REMOTE

    def using_local(self, name: str) -> bool:
        return not self.using_remote(name)

    def get_storage(self, name: str) -> Storage:
        """The storage that answers reads of ``name`` right now."""
        if self.using_remote(name):
            return self.remote
        check_inside_root(self.local, name)
        return self.local

    def _open(self, name: str, mode: str = "rb") -> File:
        return self.get_storage(name).open(name, mode)

    def exists(self, name: str) -> bool:
        return self.get_storage(name).exists(name)

    def size(self, name: str) -> int:
        return self.get_storage(name).size(name)

    def url(self, name: str | None) -> str:
        if name is None:
            return self.local.url(name)
        # No symlink check: a URL reads nothing, and url() is a hot path.
        return (self.remote if self.using_remote(name) else self.local).url(name)

    def path(self, name: str) -> str:
        return self.get_storage(name).path(name)

    def get_accessed_time(self, name: str) -> datetime:
        return self.get_storage(name).get_accessed_time(name)

    def get_created_time(self, name: str) -> datetime:
        return self.get_storage(name).get_created_time(name)

    def get_modified_time(self, name: str) -> datetime:
        return self.get_storage(name).get_modified_time(name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        dirs: dict[str, None] = {}
        files: dict[str, None] = {}
        for storage in (self.local, self.remote):
            try:
                found_dirs, found_files = storage.listdir(path)
            except FileNotFoundError:
                continue
            dirs.update(dict.fromkeys(found_dirs))
            files.update(dict.fromkeys(found_files))
        return sorted(dirs), sorted(files)

    def open_local(self, name: str) -> IO[bytes]:
        """Open the local copy for reading (for hooks), refusing symlinks
        that lead outside the local root."""
        check_name(name)
        check_inside_root(self.local, name)
        return self.local.open(name, "rb")


def _rebuild(cls: type[QueuedStorage], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return cls(*args, **kwargs)


# The shortcuts kept from django-queued-storage live in their own module;
# their import path is this one.
from .shortcuts import (  # noqa: E402
    DelayedStorage,
    DoubleFilesystemStorage,
    QueuedFileSystemStorage,
    QueuedRemoteStorage,
    S3Storage,
)

__all__ = [
    "DelayedStorage",
    "DoubleFilesystemStorage",
    "QueuedFileSystemStorage",
    "QueuedRemoteStorage",
    "QueuedStorage",
    "S3Storage",
    "hostname",
]
