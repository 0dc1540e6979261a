"""QueuedStorage: save locally at once, transfer to the remote in the background.

The shortcuts django-queued-storage users know (``QueuedFileSystemStorage``,
``S3Storage``, ...) are at the end of this module.

How one name is kept consistent when several processes save, delete and
transfer it at once: every operation that creates or removes a file first
holds the name's ledger row (an insert refused for a recorded name, or the
row's lock), and only then touches a file; a local file is written under a
private name and linked into place only once the name's row is held. See
:mod:`storage_hooks.ledger` and :mod:`storage_hooks.localfiles`.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cached_property, partial
from typing import IO, Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage
from django.core.files.utils import validate_file_name
from django.db import IntegrityError, transaction

from . import (
    batching,
    installed,  # noqa: F401  (registers storage_hooks.E006)
    ledger,
    localfiles,
    registry,
    s3,
    signals,
)
from .conf import hostname
from .hooks import resolve_hook
from .localfiles import HashingFile, is_local_fs
from .names import KEY_MAX_LENGTH, NAME_MAX_LENGTH, canonical
from .naming import with_taken
from .resolve import (
    build_storage,
    fingerprint,
    import_or_none,
    location_identity,
    normalize,
    without_secrets,
)
from .runners import get_runner, log_not_queued
from .status import GONE_STATES, Status

LEGACY_TASKS = {
    "queued_storage.tasks.Transfer": False,
    "queued_storage.tasks.TransferAndDelete": True,
}

_WRITE_FLAGS = frozenset("wax+")


class AlreadyTransferred(ValueError):
    """The file is on the remote: its local copy can no longer be replaced."""


class QueuedStorage(Storage):
    """A Storage that writes to ``local`` and transfers each file to ``remote``.

    ``save`` writes locally, records the file in the ledger and queues its
    transfer when the transaction commits. Reads go to ``local`` until the
    remote copy is proven equal to the recorded SHA-256, then to ``remote``.
    Deconstructible (for migrations) and picklable, in both cases without
    the credentials of its options.
    """

    #: What the registry looks for in ``STORAGES`` backends.
    is_queued_storage = True
    #: The import path written into migrations.
    deconstruct_path = "storage_hooks.storage.QueuedStorage"

    def __new__(cls, *args: Any, **kwargs: Any) -> QueuedStorage:
        obj = super().__new__(cls)
        obj._constructor_args = (args, kwargs)  # type: ignore[attr-defined]
        return obj

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
        if key is not None and (not isinstance(key, str) or not key):
            raise ImproperlyConfigured(f"key must be a non-empty string, not {key!r}.")
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
                    "hooks=[storage_hooks.hooks.DeleteLocal()]; see 'Hooks' in the docs."
                )
            if LEGACY_TASKS[task]:
                self._hook_specs.append("storage_hooks.hooks.DeleteLocal")
        self._hooks: list[Any] | None = None
        if not any(isinstance(spec, str) for spec in self._hook_specs):
            # Nothing to import: connect now. Hooks given by dotted path are
            # connected by connect_hooks() on first use, as importing them
            # while models are loading could run in a circle.
            self.connect_hooks()
        registry.register(self)

    # -- identity, migrations and pickles ----------------------------------

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """For migrations: the constructor's arguments, less credentials
        (see :func:`storage_hooks.resolve.without_secrets`)."""
        args, kwargs = self._constructor_args  # type: ignore[attr-defined]
        return type(self).deconstruct_path, (), _safe_kwargs(_as_keywords(type(self), args, kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickle names the storage by its key: the unpickling process uses
        # its own registered storage of that key (with its credentials), or
        # builds one from the arguments, less credentials.
        _, args, kwargs = self.deconstruct()
        return (_restore, (type(self), self.key, args, kwargs))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key={self.key!r}>"

    @cached_property
    def key(self) -> str:
        """This storage's identity in the ledger and in task payloads: the
        ``key=`` given, else its ``STORAGES`` alias, else a key derived from
        where its files live (never from hooks, options of behaviour or
        credentials)."""
        if self._key:
            return self._key
        alias = registry.alias_of(self)
        if alias is not None:
            return alias
        mine = self._where()
        for alias, entry in _storages_setting().items():
            backend = entry.get("BACKEND")
            cls = import_or_none(backend) if isinstance(backend, str) else backend
            if cls is type(self) and _where_of(entry.get("OPTIONS") or {}) == mine:
                return alias
        return f"{type(self).__name__.lower()}-{fingerprint(mine)}"[:KEY_MAX_LENGTH]

    @property
    def has_explicit_key(self) -> bool:
        """Whether the key is named (``key=`` or a STORAGES alias), as the
        checks recommend, rather than derived."""
        return bool(self._key) or registry.alias_of(self) is not None

    def _where(self) -> dict[str, Any]:
        return location_identity(
            self._local_spec, self.local_options, self._remote_spec, self.remote_options
        )

    # -- configuration ---------------------------------------------------

    @cached_property
    def local(self) -> Storage:
        """The resolved local Storage."""
        return build_storage(self._local_spec, self.local_options, role="local")

    @cached_property
    def remote(self) -> Storage:
        """The resolved remote Storage (on S3 with a bounded-memory
        ``transfer_config`` unless it has its own, see :func:`s3.bound_memory`)."""
        remote = build_storage(self._remote_spec, self.remote_options, role="remote")
        s3.bound_memory(remote)
        return remote

    def connect_hooks(self) -> list[Any]:
        """Resolve the hooks and connect each to this storage, once; called
        when the storage is built, or on its first save or transfer when a
        hook is given by dotted path. Returns the hooks."""
        if self._hooks is None:
            resolved = [resolve_hook(spec) for spec in self._hook_specs]
            for hook in resolved:
                hook.connect(self)
            self._hooks = resolved
        return self._hooks

    @property
    def hooks(self) -> list[Any]:
        """The hook objects (connected)."""
        return self.connect_hooks()

    # -- names -----------------------------------------------------------

    def get_valid_name(self, name: str) -> str:
        return self.local.get_valid_name(name)

    def get_alternative_name(self, file_root: str, file_ext: str) -> str:
        return self.local.get_alternative_name(file_root, file_ext)

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

    def _naming(self, *, ask_ledger: bool = False) -> Storage:
        """The local storage's own naming rules (``get_available_name``,
        ``get_alternative_name``, ``allow_overwrite``), with "taken" meaning
        taken locally, in the ledger or (``check_remote``) on the remote."""
        return with_taken(self.local, partial(self._taken, ask_ledger=ask_ledger))

    def _may_overwrite(self, name: str) -> bool:
        """Whether the local storage's naming keeps a taken name (it
        overwrites: ``allow_overwrite``, or a ``get_available_name`` of its
        own that returns the name as it is)."""
        # Only this name taken: a naming that looks for another name finds
        # one at once; an overwriting one keeps it.
        try:
            kept = with_taken(self.local, lambda other: other == name).get_available_name(name)
        except SuspiciousFileOperation:
            return False
        return bool(kept == name)

    def _other_name(self, file_root: str, file_ext: str) -> str:
        """Django's own alternative name (an overwriting storage's is the
        name itself), for a name that may not be overwritten."""
        return Storage.get_alternative_name(self.local, file_root, file_ext)

    def _foreign_remote(self, name: str) -> bool:
        """Whether the remote holds a file under ``name`` that this library
        did not write (only asked with ``check_remote``)."""
        if not self.check_remote or not self.remote.exists(name):
            return False
        row = ledger.get(self.key, name)
        return row is None or not (row.status == Status.REMOTE or row.remote_write_started)

    def get_available_name(self, name: Any, max_length: int | None = None) -> str:
        """A name free locally and unknown to the ledger (and free on the
        remote with ``check_remote=True``), found by the local storage's own
        rules. A local storage that overwrites (``allow_overwrite``) keeps
        the name, unless a remote file this library did not write has it."""
        name = canonical(name)
        limit = min(max_length or NAME_MAX_LENGTH, NAME_MAX_LENGTH)
        candidate = canonical(self._naming().get_available_name(name, max_length=limit))
        if (
            candidate == name
            and self.check_remote  # (cheapest first: asked on every save)
            and self._may_overwrite(name)
            and self._foreign_remote(name)
        ):
            candidate = localfiles.free_name(
                name, limit, partial(self._taken, ask_ledger=True), self._other_name
            )
        return candidate

    # -- writing ---------------------------------------------------------

    def save(self, name: Any, content: Any, max_length: int | None = None) -> str:
        """Save locally under a free name, record it, queue its transfer at
        commit; returns the name."""
        if name is None:
            name = content.name
        if not hasattr(content, "chunks"):
            content = File(content, name)
        name = self.get_available_name(canonical(name), max_length=max_length)
        name = self._save(name, content, max_length=max_length)
        validate_file_name(name, allow_relative_path=True)
        return name

    def save_derivative(
        self, source: str, name: str, content: Any, *, variant: str, max_length: int | None = None
    ) -> str:
        """Save ``content`` as a derivative of the file ``source`` (a
        thumbnail, for one) under ``name`` or, if that is taken, another free
        name; the ledger records which file it derives from and which
        ``variant`` it is, so it is never taken for an upload (nor an upload
        for it). Returns the name saved; queued like any saved file."""
        source = canonical(source)
        if not hasattr(content, "chunks"):
            content = File(content, name)
        name = self.get_available_name(canonical(name), max_length=max_length)
        derived = {"derived_from": source, "variant": variant}
        return self._save(name, content, max_length=max_length, derived=derived)

    def derivatives(self, source: str) -> dict[str, str]:
        """``{variant: name}`` of the derivatives recorded for ``source``."""
        return ledger.derivatives(self.key, canonical(source))

    def source_of(self, name: str) -> str | None:
        """The name of the file ``name`` was derived from; None for an
        original or an unknown name."""
        return ledger.source_of(self.key, canonical(name))

    def _save(
        self,
        name: str,
        content: Any,
        max_length: int | None = None,
        derived: dict[str, str] | None = None,
    ) -> str:
        name = canonical(name)
        self.connect_hooks()
        limit = min(max_length or NAME_MAX_LENGTH, NAME_MAX_LENGTH)
        values = {
            "status": Status.LOCAL if self.delayed else Status.QUEUED,
            "host": hostname(),
            **(derived or {}),
        }
        if is_local_fs(self.local):
            name, size, checksum = self._save_file(name, content, limit, values)
        else:
            name, size, checksum = self._save_other(name, content, limit, values)
        signals.send(signals.saved_locally, self, name=name, size=size, checksum=checksum)
        if not self.delayed:
            self.enqueue_on_commit(name)
        return name

    def _save_file(
        self, name: str, content: Any, limit: int, values: dict[str, Any]
    ) -> tuple[str, int, str]:
        """Write to a local file system: under a private name first, then
        into place once the name's ledger row is held."""
        written = localfiles.write_private(self.local, name, content)
        return self._place(written, limit, values, exact=False), written.size, written.checksum

    def _place(
        self, written: localfiles.Written, limit: int, values: dict[str, Any], *, exact: bool
    ) -> str:
        """Put a written file in place under ``written.name`` (or, unless
        ``exact``, another free name) once its ledger row is held; the
        private file is removed if it could not be placed."""
        name = written.name
        placed = False
        try:
            values = {**values, "size": written.size, "checksum": written.checksum}
            for _ in range(20):
                overwrite = self._may_overwrite(name)
                if ledger.insert_if_absent(self.key, name, **values):
                    try:
                        if overwrite:
                            localfiles.replace_into_place(_moved(written, name))
                        else:
                            localfiles.link_into_place(written, name)
                    except FileExistsError:
                        # An untracked local file has the name: never
                        # overwritten. Let the row go and take another name.
                        ledger.unrecord(self.key, name)
                    except BaseException:
                        ledger.unrecord(self.key, name)  # no row without its file
                        raise
                    else:
                        placed = True
                        return name
                elif overwrite and ledger.overwrite(self.key, name, **values):
                    localfiles.replace_into_place(_moved(written, name))
                    placed = True
                    return name
                if exact:
                    raise FileExistsError(f"{name!r} was taken meanwhile; nothing was written.")
                taken = name
                name = canonical(
                    self._naming(ask_ledger=True).get_available_name(name, max_length=limit)
                )
                if name == taken:  # a naming that keeps names, meeting one it may not take
                    name = localfiles.free_name(
                        name,
                        limit,
                        partial(self._taken, ask_ledger=True),
                        self._other_name,
                    )
            raise FileExistsError(f"No free name near {name!r}: twenty were taken meanwhile.")
        finally:
            if not placed:
                localfiles.discard(written)

    def _record_written(self, written: localfiles.Written) -> str:
        """Put a file written through ``open(name, "w")`` in place under its
        name, and record and queue it as ``save`` would."""
        values = {"status": Status.LOCAL if self.delayed else Status.QUEUED, "host": hostname()}
        localfiles.seal(written)
        name = self._place(written, NAME_MAX_LENGTH, values, exact=True)
        signals.send(
            signals.saved_locally, self, name=name, size=written.size, checksum=written.checksum
        )
        if not self.delayed:
            self.enqueue_on_commit(name)
        return name

    def _save_other(
        self, name: str, content: Any, limit: int, values: dict[str, Any]
    ) -> tuple[str, int, str]:
        """Write to a local storage that is not a file system (the storage
        writes, the bytes are hashed as it reads them)."""
        source = HashingFile(content, name)
        name = canonical(self.local.save(name, source, max_length=limit))
        checksum = source.hexdigest()
        if checksum is None:
            checksum, size = localfiles.digest(self.local, name)
        else:
            size = source.bytes_read
        values = {**values, "size": size, "checksum": checksum}
        try:
            with transaction.atomic(using=ledger.db_alias()):
                ledger.record_saved(self.key, name, **values)
        except IntegrityError:
            self.local.delete(name)
            raise FileExistsError(
                f"{name!r} was recorded by another save at the same moment; nothing was kept."
            ) from None
        return name, size, checksum

    def replace_local(self, name: str, content: Any) -> None:
        """Atomically replace the local copy of a file that is not on the
        remote yet, and record its new size and SHA-256 (its transfer is
        then proven against the new bytes). For ``transfer_started``
        receivers and other code that changes an upload before it leaves.

        Raises ``AlreadyTransferred`` (a ValueError) for a file on the
        remote, ``FileNotFoundError`` for an unknown or deleted one."""
        self._replace_local(canonical(name), content)

    def _replace_local(self, name: str, content: Any, *, pk: int | None = None) -> tuple[int, str]:
        if not is_local_fs(self.local):
            raise ImproperlyConfigured(
                "replace_local() needs a local FileSystemStorage (it replaces the file by an "
                "atomic rename)."
            )
        if not hasattr(content, "chunks") and not hasattr(content, "read"):
            from django.core.files.base import ContentFile

            content = ContentFile(content)
        written = localfiles.write_private(self.local, name, content)
        placed = False
        try:
            with transaction.atomic(using=ledger.db_alias()):
                recorded = ledger.replace_content(
                    self.key, name, size=written.size, checksum=written.checksum, pk=pk
                )
                if not recorded:
                    state = ledger.fresh_status(self.key, name)
                    if state == Status.REMOTE:
                        raise AlreadyTransferred(
                            f"{name!r} is already on the remote: its local copy can no longer "
                            "be replaced. Save the new content under a new name."
                        )
                    raise FileNotFoundError(
                        f"{name!r} is not a file of {self!r} waiting for its transfer."
                    )
                localfiles.replace_into_place(written)
                placed = True
        finally:
            if not placed:
                localfiles.discard(written)
        return written.size, written.checksum

    def enqueue_on_commit(self, name: str, *, host: str | None = None) -> None:
        """Hand ``name`` to the runner once the current transaction commits
        (at once in autocommit), routed to ``host`` (the one that saved it)."""
        batching.enqueue_on_commit(self, name, host or None)

    def enqueue(self, name: str, *, host: str | None = None, countdown: float = 0) -> None:
        """Hand the transfer of ``name`` to the runner now (no ledger change).

        ``transfer_queued`` is sent just before, so that its receivers run
        before the transfer starts, even with a runner that runs it at once.
        A runner that cannot take it (broker down) is logged, not raised:
        the file is saved and QUEUED, and ``manage.py storage_hooks retry``
        queues it again.
        """
        self._hand_over(
            [name],
            lambda runner, host: runner.enqueue(self.key, name, host=host, countdown=countdown),
            host,
        )

    def enqueue_many(self, names: list[str], *, host: str | None = None) -> None:
        """Hand the transfers of ``names`` to the runner now, as few messages
        as it can (``transfer_queued`` is sent for each name first). A runner
        that cannot take them is logged, as in :meth:`enqueue`."""
        if len(names) == 1:
            self.enqueue(names[0], host=host)
            return
        self._hand_over(
            names, lambda runner, host: runner.enqueue_many(self.key, names, host=host), host
        )

    def _hand_over(
        self, names: list[str], send: Callable[[Any, str], None], host: str | None
    ) -> None:
        """Send ``transfer_queued`` for ``names``, then ``send(runner, host)``;
        a runner that cannot take them is logged, not raised."""
        for name in names:
            signals.send(signals.transfer_queued, self, name=name)
        runner = get_runner()
        try:
            send(runner, host or hostname())
        except Exception:
            log_not_queued(names, runner.describe())

    def transfer(self, name: str) -> None:
        """Queue the transfer of a saved file (delayed, failed, or lost in
        the queue). Harmless for a file already on the remote."""
        name = canonical(name)
        state = ledger.status(self.key, name)
        if state is None or state in GONE_STATES:
            raise FileNotFoundError(f"{name!r} was not saved through {self!r}.")
        if state in (Status.REMOTE, Status.TRANSFERRING):
            return
        if ledger.requeue(self.key, name, reset_attempts=state == Status.FAILED):
            self.enqueue_on_commit(name)

    # -- deleting ----------------------------------------------------------

    def delete(self, name: Any) -> None:
        """Remove the file from both storages and from the ledger.

        Transactional: inside ``atomic()`` the row is marked DELETING and the
        files are removed when the transaction commits (a rollback leaves
        the file as it was). A remote copy is removed only if this library
        wrote it; a foreign remote file of the same name is never touched.
        If removing fails, the row stays DELETING and ``manage.py
        storage_hooks retry`` finishes the job."""
        if not name:
            raise ValueError("The name must be given to delete().")
        name = canonical(name)
        localfiles.check_inside_root(self.local, name)  # refuse before anything is marked
        using = ledger.db_alias()
        in_transaction = not transaction.get_autocommit(using)
        with transaction.atomic(using=using):
            row = ledger.begin_delete(self.key, name)
            if row is not None:
                transaction.on_commit(
                    partial(self.remove_files, row), using=using, robust=in_transaction
                )

    def remove_files(self, row: Any) -> None:
        """Remove the files of a row marked DELETING (``row`` as it was
        before), then the row. Also what repairs an interrupted delete."""
        name = row.name
        if row.status == Status.REMOTE or row.remote_write_started:
            remote_s3 = s3.as_s3(self.remote)
            if remote_s3 is not None and row.remote_etag:
                s3.delete_if_etag(remote_s3, name, row.remote_etag)
            else:
                self.remote.delete(name)
        localfiles.unlink(self.local, name)
        ledger.finish_delete(row)

    def remove_local_copy(self, name: str, *, checksum: str | None = None) -> bool:
        """Delete the local copy of a file on the remote (what ``DeleteLocal``
        does), holding its ledger row meanwhile so that no concurrent save
        of the name can be hit. False if the file is not (or no longer) on
        the remote with this checksum."""
        name = canonical(name)
        with transaction.atomic(using=ledger.db_alias()):
            row = ledger.lock(self.key, name, states=[Status.REMOTE])
            if row is None or (checksum is not None and row.checksum != checksum):
                return False
            return localfiles.unlink(self.local, name)

    # -- routing ---------------------------------------------------------

    def status(self, name: str) -> Status | None:
        """The file's ``Status``, or None for a name the ledger doesn't know
        (or a file being deleted)."""
        state = ledger.status(self.key, canonical(name))
        return None if state == Status.DELETING else state

    def statuses(self, names: Iterable[str]) -> dict[str, Status | None]:
        """Statuses of many names with one cache call and at most one query;
        also warms the cache so the ``url`` calls that follow cost no query."""
        found = ledger.statuses(self.key, (canonical(name) for name in names))
        return {name: None if s == Status.DELETING else s for name, s in found.items()}

    def urls(self, names: Iterable[str]) -> dict[str, str]:
        """The ``url`` of many files with one cache round trip (and at most
        one query), for a page of images."""
        found = ledger.statuses(self.key, (canonical(name) for name in names))
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
        name = canonical(name)
        state = ledger.status(self.key, name)
        if state == Status.REMOTE:
            return self.remote
        if state in GONE_STATES:
            raise FileNotFoundError(f"{name!r} has been deleted.")
        localfiles.check_inside_root(self.local, name)
        return self.local

    def _read(self, name: Any, method: str, *args: Any) -> Any:
        """``method(name, *args)`` of the storage that has the file; a local
        copy found missing makes the ledger itself (not the cache) be asked
        again, in case another process just finished the transfer."""
        name = canonical(name)
        storage = self.get_storage(name)
        try:
            return getattr(storage, method)(name, *args)
        except FileNotFoundError:
            if storage is self.remote or ledger.fresh_status(self.key, name) != Status.REMOTE:
                raise
        return getattr(self.remote, method)(name, *args)

    def _open(self, name: str, mode: str = "rb") -> File:
        name = canonical(name)
        if _WRITE_FLAGS & set(mode):
            return self._open_for_writing(name, mode)
        if is_local_fs(self.local, reading=True) and ledger.status(self.key, name) != Status.REMOTE:
            if ledger.status(self.key, name) in GONE_STATES:
                raise FileNotFoundError(f"{name!r} has been deleted.")
            try:
                opened = localfiles.open_for_reading(self.local, name)
            except FileNotFoundError:
                if ledger.fresh_status(self.key, name) != Status.REMOTE:
                    raise
            else:
                # As FileSystemStorage: text unless "b", and the File's name
                # is the path (so that it can be opened again after close()).
                text = "b" not in mode
                return File(io.TextIOWrapper(opened) if text else opened, self.local.path(name))
        return self._read(name, "open", mode)

    def _open_for_writing(self, name: str, mode: str) -> File:
        """``open(name, "w")`` of a new name: the file is written aside, then
        put in place, recorded and queued when it is closed. A recorded
        name is refused: its ledger row and remote copy would go stale."""
        if ledger.status(self.key, name) is not None:
            raise PermissionError(
                f"{name!r} is recorded in the ledger: open(name, {mode!r}) would change it "
                "behind the ledger's back. Save new content with storage.save() (with "
                "allow_overwrite on the local storage to keep the name), or replace the "
                "local copy of a file not yet transferred with storage.replace_local()."
            )
        if mode.replace("b", "").replace("t", "") in ("w", "x"):
            if self.local.exists(name):
                raise FileExistsError(f"{name!r} exists locally, unrecorded; it is not replaced.")
            if is_local_fs(self.local):
                fh, written = localfiles.create_private(self.local, name)
                return _NewFile(self, fh, text="b" not in mode, written=written)
            # Closed by _NewFile.close(), which saves what was written. (A
            # real file: SpooledTemporaryFile lacks readable() before 3.11.)
            buffer = tempfile.TemporaryFile()  # noqa: SIM115
            return _NewFile(self, buffer, text="b" not in mode, name=name)
        localfiles.check_inside_root(self.local, name)
        return self.local.open(name, mode)

    def exists(self, name: Any) -> bool:
        name = canonical(name)
        state = ledger.status(self.key, name)
        if state in GONE_STATES:
            return False
        if state == Status.REMOTE:
            return bool(self.remote.exists(name))
        localfiles.check_inside_root(self.local, name)
        if self.local.exists(name):
            return True
        return (
            state is not None
            and ledger.fresh_status(self.key, name) == Status.REMOTE
            and bool(self.remote.exists(name))
        )

    def size(self, name: Any) -> int:
        return int(self._read(name, "size"))

    def url(self, name: Any) -> str:
        if name is None:
            return self.local.url(name)
        name = canonical(name)
        # No symlink check: a URL reads nothing, and url() is a hot path.
        return (self.remote if self.using_remote(name) else self.local).url(name)

    def path(self, name: Any) -> str:
        return str(self._read(name, "path"))

    def get_accessed_time(self, name: Any) -> datetime:
        return self._read(name, "get_accessed_time")

    def get_created_time(self, name: Any) -> datetime:
        return self._read(name, "get_created_time")

    def get_modified_time(self, name: Any) -> datetime:
        return self._read(name, "get_modified_time")

    def listdir(self, path: Any) -> tuple[list[str], list[str]]:
        path = "" if path in ("", None) else str(path)
        dirs: dict[str, None] = {}
        files: dict[str, None] = {}
        for storage in (self.local, self.remote):
            try:
                found_dirs, found_files = storage.listdir(path)
            except FileNotFoundError:
                continue
            dirs.update(dict.fromkeys(found_dirs))
            files.update(
                dict.fromkeys(f for f in found_files if not f.startswith(localfiles.TEMP_PREFIX))
            )
        return sorted(dirs), sorted(files)

    def open_local(self, name: str) -> IO[bytes]:
        """Open the local copy for reading (for hooks), never outside the
        local root."""
        return localfiles.open_binary(self.local, canonical(name))


class _NewFile(File):
    """What ``open(name, "w")`` of a new name returns: on ``close()`` the
    written file is put in place, recorded and queued (see ``save``)."""

    def __init__(
        self,
        storage: QueuedStorage,
        fh: IO[bytes],
        *,
        text: bool,
        written: localfiles.Written | None = None,
        name: str | None = None,
    ) -> None:
        self._binary = fh
        super().__init__(io.TextIOWrapper(fh) if text else fh, written.name if written else name)
        self._storage = storage
        self._written = written
        self._pending = True

    def close(self) -> None:
        if not self._pending:
            super().close()
            return
        self._pending = False
        if self._written is not None:
            super().close()
            self._storage._record_written(self._written)
            return
        # A local storage that is not a file system: what was written is
        # saved under exactly this name, as save() would.
        assert self.file is not None
        assert self.name is not None
        self.file.flush()
        self._binary.seek(0)
        saved = self._storage._save(self.name, File(self._binary, self.name))
        super().close()
        if saved != self.name:
            raise FileExistsError(f"{self.name!r} was taken meanwhile; it was saved as {saved!r}.")


def _moved(written: localfiles.Written, name: str) -> localfiles.Written:
    """``written``, to be put in place under ``name`` (same directory)."""
    written.name = name
    return written


def _storages_setting() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.STORAGES)


def _where_of(options: dict[str, Any]) -> dict[str, Any]:
    return location_identity(
        options.get("local"),
        dict(options.get("local_options") or {}),
        options.get("remote"),
        dict(options.get("remote_options") or {}),
    )


def _as_keywords(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments, all by keyword."""
    return {k: v for k, v in normalize(cls, args, kwargs).items() if k != "class"}


def _safe_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    safe = dict(kwargs)
    for role in ("local", "remote"):
        spec = safe.get(role)
        options = safe.get(f"{role}_options")
        if isinstance(spec, Storage) and hasattr(spec, "deconstruct") and not options:
            path, _, spec_kwargs = spec.deconstruct()
            safe[role] = path
            if spec_kwargs:
                safe[f"{role}_options"] = dict(spec_kwargs)
        if safe.get(f"{role}_options"):
            safe[f"{role}_options"] = without_secrets(safe[f"{role}_options"])
    return safe


def _restore(
    cls: type[QueuedStorage], key: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> QueuedStorage:
    for storage in registry.known_storages():
        if storage.key == key and type(storage) is cls:
            return storage
    return cls(*args, **{**kwargs, "key": key})


# -- the shortcuts kept from django-queued-storage ---------------------------

#: The same class as QueuedStorage, under django-queued-storage's name.
QueuedRemoteStorage = QueuedStorage

FILE_SYSTEM = "django.core.files.storage.FileSystemStorage"


class QueuedFileSystemStorage(QueuedStorage):
    """Local is a ``FileSystemStorage``; say only where files go."""

    deconstruct_path = "storage_hooks.storage.QueuedFileSystemStorage"

    def __init__(self, remote: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("local", FILE_SYSTEM)
        super().__init__(remote=remote, **kwargs)


class DoubleFilesystemStorage(QueuedStorage):
    """Both sides are ``FileSystemStorage`` (give each a ``location``)."""

    deconstruct_path = "storage_hooks.storage.DoubleFilesystemStorage"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("local", FILE_SYSTEM)
        kwargs.setdefault("remote", FILE_SYSTEM)
        super().__init__(**kwargs)


class S3Storage(QueuedStorage):
    """Local ``FileSystemStorage``, remote django-storages' ``S3Storage``."""

    deconstruct_path = "storage_hooks.storage.S3Storage"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("local", FILE_SYSTEM)
        kwargs.setdefault("remote", "storages.backends.s3.S3Storage")
        super().__init__(**kwargs)


class DelayedStorage(QueuedStorage):
    """Nothing is queued on save; ``transfer(name)`` queues a file."""

    deconstruct_path = "storage_hooks.storage.DelayedStorage"

    def __init__(self, local: Any = None, remote: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("delayed", True)
        super().__init__(local, remote, **kwargs)


__all__ = [
    "AlreadyTransferred",
    "DelayedStorage",
    "DoubleFilesystemStorage",
    "QueuedFileSystemStorage",
    "QueuedRemoteStorage",
    "QueuedStorage",
    "S3Storage",
    "hostname",
]
