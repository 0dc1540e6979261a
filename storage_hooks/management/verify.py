"""Checking that REMOTE files are on the remote (``manage.py storage_hooks verify``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .. import ledger
from ..maintenance import SCHEMA, StorageFinder, Tick, chunks, enqueue_on_commit
from ..status import Status

if TYPE_CHECKING:
    from ..models import StoredFile
    from ..storage import QueuedStorage


@dataclass
class Problem:
    """A REMOTE file that is not on the remote as recorded."""

    key: str
    name: str
    #: "missing", "size" (another size than recorded) or "error" (the
    #: remote could not be asked; ``detail`` says why).
    kind: str
    expected_size: int | None
    actual_size: int | None = None
    #: "requeued" (--fix, the local copy exists), "lost" (--fix, no local
    #: copy left), or "" (not fixed).
    action: str = ""
    detail: str = ""


@dataclass
class VerifyReport:
    """What :func:`verify_remote` found."""

    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: REMOTE rows not checked because no storage of this process has their key.
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "verify", "ok": self.ok, **asdict(self)}


def remote_rows(keys: Iterable[str] | None = None) -> QuerySet[StoredFile]:
    """The ledger's REMOTE rows (of ``keys``, when given)."""
    query = ledger.model().objects.using(ledger.db_alias()).filter(status=Status.REMOTE)
    if keys:
        query = query.filter(storage_key__in=list(keys))
    return query


def verify_remote(
    keys: Iterable[str] | None = None, *, fix: bool = False, tick: Tick | None = None
) -> VerifyReport:
    """Check that every REMOTE file exists on its remote with the recorded
    size (one size request per file).

    With ``fix``, a file that is missing or has another size is set QUEUED
    (attempts reset) and handed to the runner, if its local copy still
    exists; otherwise it is reported as lost. A remote file of another size
    is not overwritten by that transfer unless it turns out to be ours: it
    fails with a name conflict, and the file is served locally meanwhile.
    ``tick(n)`` is called after each chunk of ``n`` rows (progress bars).
    """
    report = VerifyReport()
    unknown: Counter[str] = Counter()
    find = StorageFinder()
    query = remote_rows(keys).only("pk", "storage_key", "name", "size", "status", "host")
    for batch in chunks(query):
        for row in batch:
            storage = find(row.storage_key)
            if storage is None:
                unknown[row.storage_key] += 1
                continue
            report.checked += 1
            problem = _check(storage, row)
            if problem:
                if fix and problem.kind != "error":
                    problem.action = _refetch(storage, row)
                report.problems.append(problem)
        if tick:
            tick(len(batch))
    report.unknown = dict(sorted(unknown.items()))
    return report


def _check(storage: QueuedStorage, row: StoredFile) -> Problem | None:
    remote = storage.remote
    try:
        size = remote.size(row.name)
    except FileNotFoundError:
        return Problem(row.storage_key, row.name, "missing", row.size)
    except Exception as exc:
        # Some storages raise their own error for a missing file.
        try:
            missing = not remote.exists(row.name)
        except Exception:
            missing = False
        if missing:
            return Problem(row.storage_key, row.name, "missing", row.size)
        detail = f"{type(exc).__name__}: {exc}"
        return Problem(row.storage_key, row.name, "error", row.size, detail=detail)
    if row.size is not None and size != row.size:
        return Problem(row.storage_key, row.name, "size", row.size, size)
    return None


def _refetch(storage: QueuedStorage, row: StoredFile) -> str:
    """Queue a REMOTE file again from its local copy: "requeued" or "lost"."""
    if not storage.local.exists(row.name):
        return "lost"
    with transaction.atomic(using=ledger.db_alias()):
        changed = (
            ledger.rows(row.storage_key)
            .filter(pk=row.pk, status=Status.REMOTE)
            .update(
                status=Status.QUEUED,
                attempts=0,
                last_error="",
                transferred_at=None,
                updated_at=timezone.now(),
                # What is on the remote now is not the copy we verified: the
                # transfer must not take it for an unfinished write of ours.
                remote_write_started=False,
            )
        )
        if not changed:  # deleted or changed meanwhile: not ours to touch
            return ""
        ledger.remember_on_commit(row.storage_key, row.name, Status.QUEUED)
        enqueue_on_commit(storage, row.name, row.host)
    return "requeued"
