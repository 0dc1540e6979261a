"""Health of the ledger: what is pending, what is stuck, what is really remote.

Plain functions that return reports, so the ``storage_hooks`` management
command, a periodic Celery task and a project's own code share one
implementation::

    from storage_hooks.maintenance import retry_stuck

    report = retry_stuck()          # what `manage.py storage_hooks retry` does

Rows are read in primary-key chunks (never the whole ledger at once) and
every change goes through the ledger's own functions and the storage's own
queueing, so the cache, the ``transfer_queued`` signal and host-affine
routing behave as they do for a save.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from . import ledger
from .conf import conf
from .exceptions import UnknownStorageKey
from .registry import configured_storages, get_storage
from .status import Status

if TYPE_CHECKING:
    from .models import StoredFile
    from .storage import QueuedStorage

#: Rows read per query.
CHUNK = 500

#: States of a file that is not on the remote yet.
PENDING = (Status.LOCAL, Status.QUEUED, Status.TRANSFERRING, Status.FAILED)

#: Version of the dictionaries below as ``--json`` prints them.
SCHEMA = 1

Tick = Callable[[int], Any]


def chunks(queryset: QuerySet[StoredFile], size: int = CHUNK) -> Iterator[list[StoredFile]]:
    """The rows of ``queryset`` in primary-key order, ``size`` at a time.

    Each chunk is its own query, so rows may be changed between chunks
    (unlike a cursor, which some databases do not isolate from writes).
    """
    last = 0
    while batch := list(queryset.filter(pk__gt=last).order_by("pk")[:size]):
        yield batch
        last = batch[-1].pk


class StorageFinder:
    """``registry.get_storage`` with memory: each key is looked up once,
    and an unknown key is answered with None instead of an error."""

    def __init__(self) -> None:
        self._found: dict[str, QueuedStorage | None] = {}

    def __call__(self, key: str) -> QueuedStorage | None:
        if key not in self._found:
            try:
                self._found[key] = get_storage(key)
            except UnknownStorageKey:
                self._found[key] = None
        return self._found[key]


def enqueue_on_commit(storage: QueuedStorage, name: str, host: str = "") -> None:
    """Hand ``name`` to the storage's runner once the transaction commits,
    routed to the host that saved it."""
    transaction.on_commit(
        partial(storage.enqueue, name, host=host or None), using=ledger.db_alias()
    )


# -- status -----------------------------------------------------------------


def _pending_dict(row: StoredFile, now: datetime) -> dict[str, Any]:
    return {
        "key": row.storage_key,
        "name": row.name,
        "status": str(row.status),
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "age_seconds": round((now - row.created_at).total_seconds(), 3),
        "attempts": row.attempts,
        "last_error": row.last_error,
    }


def status_summary(keys: Iterable[str] | None = None) -> dict[str, Any]:
    """Counts by status per storage key, and the oldest pending file.

    Keys come from the ledger and from the QueuedStorages of
    ``settings.STORAGES`` (so a configured storage with no file shows up
    with zeros). One query for the counts, one per key with pending files.
    """
    now = timezone.now()
    wanted = set(keys or ())
    query = ledger.model().objects.using(ledger.db_alias())
    if wanted:
        query = query.filter(storage_key__in=wanted)
    counts: dict[str, Counter[str]] = {}
    grouped = query.values_list("storage_key", "status").annotate(n=Count("pk")).order_by()
    for key, state, number in grouped:
        counts.setdefault(key, Counter())[state] = number
    for storage in configured_storages().values():
        if not wanted or storage.key in wanted:
            counts.setdefault(storage.key, Counter())
    for key in wanted:
        counts.setdefault(key, Counter())
    finder = StorageFinder()
    storages: list[dict[str, Any]] = []
    oldest: dict[str, Any] | None = None
    for key in sorted(counts):
        by_status = {str(state): counts[key][state] for state in Status}
        pending = None
        if any(by_status[state] for state in PENDING):
            row = (
                query.filter(storage_key=key, status__in=PENDING)
                .order_by("created_at", "pk")
                .first()
            )
            pending = _pending_dict(row, now) if row else None
        if pending and (oldest is None or pending["age_seconds"] > oldest["age_seconds"]):
            oldest = pending
        storages.append(
            {
                "key": key,
                "known": finder(key) is not None,
                "counts": by_status,
                "total": sum(by_status.values()),
                "oldest_pending": pending,
            }
        )
    totals = {str(state): sum(s["counts"][state] for s in storages) for state in Status}
    return {
        "schema": SCHEMA,
        "now": now.isoformat(),
        "storages": storages,
        "totals": totals,
        "total": sum(totals.values()),
        "oldest_pending": oldest,
    }


# -- retry ------------------------------------------------------------------


@dataclass
class RetryReport:
    """What :func:`retry_stuck` did."""

    #: Seconds without a change after which a QUEUED/TRANSFERRING row counted.
    stuck_after: float
    #: ``{"key", "name", "status" (before), "host"}`` of every re-queued file.
    requeued: list[dict[str, str]] = field(default_factory=list)
    #: Rows left alone because no storage of this process has their key.
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "retry", "ok": self.ok, **asdict(self)}


def retry_stuck(stuck_after: float | None = None, keys: Iterable[str] | None = None) -> RetryReport:
    """Re-queue every FAILED file (attempts reset), and every QUEUED or
    TRANSFERRING one whose row has not changed for ``stuck_after`` seconds
    (default: the STUCK_AFTER setting), e.g. after a lost message or a
    killed worker.

    Idempotent and safe to run at any time, from several processes at once:
    each chunk of rows is locked while it is re-queued (on databases that
    lock rows), rows another process holds are skipped, and a transfer that
    runs twice is harmless. Rows of storage keys unknown to this process
    are counted in ``unknown`` and left alone.
    """
    seconds = float(conf.STUCK_AFTER if stuck_after is None else stuck_after)
    if seconds < 0:
        raise ValueError(f"stuck_after must be >= 0 seconds, not {seconds}.")
    cutoff = timezone.now() - timedelta(seconds=seconds)
    query = (
        ledger.model()
        .objects.using(ledger.db_alias())
        .filter(
            Q(status=Status.FAILED)
            | Q(status__in=(Status.QUEUED, Status.TRANSFERRING), updated_at__lte=cutoff)
        )
    )
    if keys:
        query = query.filter(storage_key__in=list(keys))
    query = query.only("pk", "storage_key", "name", "status", "host").order_by("pk")
    report = RetryReport(stuck_after=seconds)
    unknown: Counter[str] = Counter()
    find = StorageFinder()
    last = 0
    while True:
        # One transaction per chunk: the rows read are locked until their
        # new state commits, so a worker's claim of one of them waits, and
        # the transfers are handed to the runner after the commit.
        with transaction.atomic(using=ledger.db_alias()):
            locked = query.filter(pk__gt=last).select_for_update(skip_locked=True)
            batch = list(locked[:CHUNK])
            if not batch:
                break
            last = batch[-1].pk
            for row in batch:
                storage = find(row.storage_key)
                if storage is None:
                    unknown[row.storage_key] += 1
                elif _requeue(storage, row):
                    report.requeued.append(
                        {
                            "key": row.storage_key,
                            "name": row.name,
                            "status": str(row.status),
                            "host": row.host,
                        }
                    )
    report.unknown = dict(sorted(unknown.items()))
    return report


def _requeue(storage: QueuedStorage, row: StoredFile) -> bool:
    """Mark ``row`` QUEUED (attempts reset if it FAILED) and queue it when
    the transaction commits."""
    reset = row.status == Status.FAILED
    if not ledger.requeue(row.storage_key, row.name, reset_attempts=reset):
        return False
    enqueue_on_commit(storage, row.name, row.host)
    return True
