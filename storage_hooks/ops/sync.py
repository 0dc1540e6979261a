"""Adopting files the ledger does not know (``manage.py storage_hooks sync``).

Files already in a storage's local folder (a media folder from before
storage_hooks) are recorded and queued as if they had just been saved;
with ``remote=True`` the names already on the remote are recorded as
REMOTE, so that ``save`` never picks them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import Storage
from django.db import transaction
from django.utils import timezone

from .. import ledger
from ..localfiles import (
    NAME_MAX_LENGTH,
    check_inside_root,
    check_name,
    digest,
)
from ..project import is_project_file, project_root_problem
from ..status import Status
from .common import CHUNK, SCHEMA, Tick
from .listing import sized_listing, walk

if TYPE_CHECKING:
    from ..models import StoredFile
    from ..storage import QueuedStorage

T = TypeVar("T")

#: Files modified more recently than this many seconds are left for the next
#: run: they may be an upload whose ledger row is not committed yet.
MIN_AGE = 60


class UnsafeRoot(ValueError):
    """The local root holds the Django project: sync refuses it."""


@dataclass
class SyncReport:
    """What :func:`sync_storage` did (or, with ``dry_run``, would do)."""

    key: str
    dry_run: bool
    #: The status adopted local files get: "queued", or "local" when delayed.
    status: str
    #: Files found locally / on the remote (known to the ledger or not).
    seen_local: int = 0
    seen_remote: int = 0
    #: Local files recorded (and queued unless the storage is delayed).
    adopted: list[str] = field(default_factory=list)
    #: Remote names recorded as REMOTE.
    recorded_remote: list[str] = field(default_factory=list)
    #: ``{"name", "kind", "reason"}`` of files left alone; kind is "recent"
    #: (modified less than ``min_age`` ago: next run), "name" (a name the
    #: ledger cannot hold), "unreadable" or "project" (a file of the Django
    #: project: manage.py, the settings package, an SQLite database).
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "sync", **asdict(self)}


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _unusable(name: str) -> str:
    """Why the ledger cannot record ``name``, or "" when it can."""
    if len(name) > NAME_MAX_LENGTH:
        return f"name longer than {NAME_MAX_LENGTH} characters"
    try:
        check_name(name)
    except SuspiciousFileOperation as exc:
        return str(exc)
    return ""


def _outside(storage: Storage, name: str) -> str:
    """Why ``name`` must not be read (a symlink out of the root), or ""."""
    try:
        check_inside_root(storage, name)
    except SuspiciousFileOperation as exc:
        return str(exc)
    return ""


def _of_project(storage: QueuedStorage, name: str) -> bool:
    root = getattr(storage.local, "location", None)
    return bool(root) and is_project_file(os.path.join(str(root), name))


def _too_new(storage: Storage, name: str, min_age: float) -> bool:
    if min_age <= 0:
        return False
    try:
        modified = storage.get_modified_time(name)
    except (NotImplementedError, OSError):
        return False
    if timezone.is_naive(modified):
        modified = timezone.make_aware(modified)
    return timezone.now() - modified < timedelta(seconds=min_age)


def _unknown(key: str, names: list[str]) -> list[str]:
    """The names of ``names`` the ledger does not know (one query)."""
    known = set(ledger.rows(key).filter(name__in=names).values_list("name", flat=True))
    return [name for name in names if name not in known]


def _insert(storage: QueuedStorage, rows: list[StoredFile]) -> list[StoredFile]:
    """Insert ``rows`` through the ledger and queue the QUEUED ones when the
    transaction commits. Rows whose name was recorded meanwhile (a
    concurrent save) are dropped."""
    with transaction.atomic(using=ledger.db_alias()):
        created = ledger.insert_many(rows)
        for row in created:
            if row.status == Status.QUEUED:
                storage.enqueue_on_commit(row.name, host=row.host)
    return created


def sync_storage(
    storage: QueuedStorage,
    *,
    remote: bool = False,
    dry_run: bool = False,
    min_age: float = MIN_AGE,
    tick: Tick | None = None,
) -> SyncReport:
    """Record the local files of ``storage`` the ledger does not know, and
    queue them (QUEUED; LOCAL and not queued for a delayed storage).

    Each file is hashed (SHA-256, streamed) and recorded with its size, as
    ``save`` would; ``transfer_queued`` is sent when it is queued, but not
    ``saved_locally`` (nothing was saved). Files modified less than
    ``min_age`` seconds ago are skipped. With ``remote``, names found only on
    the remote are then recorded as REMOTE with their size and no checksum;
    a name found on both sides is adopted from the local copy, and its
    transfer checks what the remote holds. ``tick(n)`` is called as files
    are looked at. Nothing is written with ``dry_run``.
    """
    from ..storage import hostname

    problem = project_root_problem(storage)
    if problem:
        raise UnsafeRoot(f"sync refuses the storage {storage.key!r}: {problem}")
    key = storage.key
    status = Status.LOCAL if storage.delayed else Status.QUEUED
    report = SyncReport(key=key, dry_run=dry_run, status=str(status))
    host = hostname()
    model = ledger.model()
    planned: set[str] = set()  # names a dry run would adopt
    for batch in batched(walk(storage.local), CHUNK):
        report.seen_local += len(batch)
        rows = []
        for name in _unknown(key, batch):
            kind, reason = "name", _unusable(name)
            if not reason:
                kind, reason = "unreadable", _outside(storage.local, name)
            if not reason and _of_project(storage, name):
                kind, reason = "project", "a file of the Django project; never adopted"
            if not reason and _too_new(storage.local, name, min_age):
                kind = "recent"
                reason = f"modified less than {min_age:g} seconds ago; run sync again later"
            if reason:
                report.skipped.append({"name": name, "kind": kind, "reason": reason})
            elif dry_run:
                report.adopted.append(name)
                planned.add(name)
            else:
                try:
                    checksum, size = digest(storage.local, name)
                except (OSError, SuspiciousFileOperation) as exc:
                    report.skipped.append({"name": name, "kind": "unreadable", "reason": str(exc)})
                    continue
                rows.append(
                    model(
                        storage_key=key,
                        name=name,
                        status=status,
                        size=size,
                        checksum=checksum,
                        host=host,
                    )
                )
        if rows:
            report.adopted += [row.name for row in _insert(storage, rows)]
        if tick:
            tick(len(batch))
    if remote:
        _record_remote(storage, report, planned, tick)
    return report


def _record_remote(
    storage: QueuedStorage, report: SyncReport, planned: set[str], tick: Tick | None
) -> None:
    key = storage.key
    model = ledger.model()
    for batch in batched(sized_listing(storage.remote), CHUNK):
        report.seen_remote += len(batch)
        sizes = dict(batch)
        rows = []
        for name in _unknown(key, list(sizes)):
            reason = _unusable(name)
            if reason:
                report.skipped.append({"name": name, "kind": "name", "reason": reason})
                continue
            if name in planned:
                continue
            if report.dry_run:
                report.recorded_remote.append(name)
                continue
            size = sizes[name]
            if size is None:
                try:
                    size = storage.remote.size(name)
                except (OSError, NotImplementedError):
                    size = None
            rows.append(model(storage_key=key, name=name, status=Status.REMOTE, size=size))
        if rows:
            report.recorded_remote += [row.name for row in _insert(storage, rows)]
        if tick:
            tick(len(batch))
