"""Re-queueing failed and stuck transfers (``manage.py storage_hooks retry``).

The cost is in the rows to re-queue, not in the ledger's size: candidates
come from a partial ``(status, updated_at)`` index of the rows ``retry`` may
re-queue (FAILED ones not refused for good, QUEUED and TRANSFERRING ones),
each chunk of them is
locked and re-queued with one UPDATE, and each file is then handed to the
runner once the chunk's transaction commits.

Deletes interrupted after their commit (a row left DELETING, because the
remote's delete failed or the process died) are finished too, once their
row has not changed for ``stuck_after`` seconds: each row locked, its files
removed by ``storage.remove_files(row)`` and the row with them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from .. import ledger
from ..conf import conf
from ..status import Status
from .common import CHUNK, SCHEMA, objects, process_storages

#: Failures another attempt cannot mend, left alone by ``retry``: a file a
#: preprocessor refused (``purge --rejected`` deletes them).
FINAL_FAILURES = ("rejected",)


@dataclass
class RetryReport:
    """What :func:`retry_stuck` did."""

    #: Seconds without a change after which a QUEUED/TRANSFERRING row counted.
    stuck_after: float
    #: ``{"key", "name", "status" (before), "host"}`` of every re-queued file.
    requeued: list[dict[str, str]] = field(default_factory=list)
    #: Rows left alone because no storage of this process has their key
    #: (counted up to UNKNOWN_CAP per state).
    unknown: dict[str, int] = field(default_factory=dict)
    #: LOST files per key: no copy is left to re-queue.
    lost: dict[str, int] = field(default_factory=dict)
    #: ``{"key", "name"}`` of every interrupted delete finished.
    deleted: list[dict[str, str]] = field(default_factory=list)
    #: ``{"key", "name", "error"}`` of interrupted deletes that failed again
    #: (the row stays DELETING; the next run tries again).
    delete_errors: list[dict[str, str]] = field(default_factory=list)
    #: Whether FAILED files refused for good (failure "rejected") were left
    #: alone (``purge --rejected`` deletes them).
    rejected_left: bool = False

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.lost and not self.delete_errors

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "retry", "ok": self.ok, **asdict(self)}


def _per_key(query: Any) -> dict[str, int]:
    grouped = query.values_list("storage_key").annotate(n=Count("*")).order_by()
    return dict(sorted(grouped))


#: At most this many rows of unknown storage keys are counted per state (a
#: small LIMIT also keeps PostgreSQL from compiling the query with JIT).
UNKNOWN_CAP = 1000


def _kinds(base: Any, cutoff: Any) -> list[tuple[Any, Status]]:
    """The candidates by kind, each ``(query, status)``: one query per
    status, so that each is a range of the partial retry index in
    ``updated_at`` order (a plan that a bad row estimate cannot turn into a
    table scan)."""
    return [
        (base.filter(status=Status.FAILED).exclude(failure__in=FINAL_FAILURES), Status.FAILED),
        (base.filter(status=Status.QUEUED, updated_at__lte=cutoff), Status.QUEUED),
        (base.filter(status=Status.TRANSFERRING, updated_at__lte=cutoff), Status.TRANSFERRING),
    ]


def retry_stuck(stuck_after: float | None = None, keys: Iterable[str] | None = None) -> RetryReport:
    """Re-queue every FAILED file (attempts reset; not those refused for
    good), and every QUEUED or TRANSFERRING one whose row has not changed
    for ``stuck_after`` seconds (default: the STUCK_AFTER setting), e.g.
    after a lost message or a killed worker.

    Idempotent and safe to run at any time, from several processes at once:
    each chunk of rows is locked while it is re-queued (on databases that
    lock rows), rows another process holds are skipped, and a transfer that
    runs twice is harmless. Rows of storage keys unknown to this process are
    counted in ``unknown`` and left alone; LOST files are counted in
    ``lost`` (nothing can be re-queued: no copy is left).
    """
    seconds = float(conf.STUCK_AFTER if stuck_after is None else stuck_after)
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"stuck_after must be >= 0 seconds and finite, not {seconds}.")
    cutoff = timezone.now() - timedelta(seconds=min(seconds, 10**9))
    wanted = list(keys or ())
    base = objects()
    if wanted:
        base = base.filter(storage_key__in=wanted)
    storages = process_storages()
    report = RetryReport(stuck_after=seconds)
    unknown: Counter[str] = Counter()
    elsewhere = base.exclude(storage_key__in=storages)
    deleting = elsewhere.filter(status=Status.DELETING, updated_at__lte=cutoff)
    for query in [*(query for query, _ in _kinds(elsewhere, cutoff)), deleting]:
        found = query.order_by("updated_at").values_list("storage_key", flat=True)
        unknown.update(found[:UNKNOWN_CAP])
    report.unknown = dict(sorted(unknown.items()))
    report.lost = _per_key(base.filter(status=Status.LOST))
    report.rejected_left = base.filter(status=Status.FAILED, failure__in=FINAL_FAILURES).exists()
    for query, state in _kinds(base.filter(storage_key__in=storages), cutoff):
        candidates = query.order_by("updated_at").values_list("pk", "storage_key", "name", "host")
        while _requeue_chunk(candidates, state, cutoff, storages, report):
            pass
    _finish_deletes(ledger.deleting_since(cutoff, list(storages)), wanted, storages, report)
    return report


def _finish_deletes(
    query: Any, wanted: list[str], storages: dict[str, Any], report: RetryReport
) -> None:
    """Finish the interrupted deletes of ``query``: each row is locked (rows
    another process holds are skipped) while ``storage.remove_files(row)``
    removes its files and then the row; a failure is reported and the row
    left DELETING for the next run."""
    if wanted:
        query = query.filter(storage_key__in=wanted)
    using = ledger.db_alias()
    last = 0
    while pks := list(
        query.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:CHUNK]
    ):
        last = pks[-1]
        for pk in pks:
            with transaction.atomic(using=using):
                row = query.filter(pk=pk).select_for_update(skip_locked=True).first()
                if row is None:  # finished or held meanwhile
                    continue
                entry = {"key": row.storage_key, "name": row.name}
                try:
                    storages[row.storage_key].remove_files(row)
                except Exception as exc:  # reported per file; the others go on
                    report.delete_errors.append({**entry, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                report.deleted.append(entry)


def _requeue_chunk(
    candidates: Any,
    state: Status,
    cutoff: Any,
    storages: dict[str, Any],
    report: RetryReport,
) -> bool:
    """Re-queue one chunk of ``candidates`` (all in ``state``); False when
    there was none left.

    One transaction per chunk: the rows read are locked until their new
    state commits, so a worker's claim of one of them waits, and the
    transfers are handed to the runner after the commit. A re-queued row no
    longer matches (QUEUED, changed after the cutoff), so the loop ends.
    """
    with transaction.atomic(using=ledger.db_alias()):
        batch = list(candidates.select_for_update(skip_locked=True)[:CHUNK])
        if not batch:
            return False
        stamp = max(timezone.now(), cutoff + timedelta(microseconds=1))
        ledger.requeue_many(
            [(pk, key, name) for pk, key, name, _host in batch],
            was=(state,),
            reset_attempts=state == Status.FAILED,
            stamp=stamp,
        )
        for _pk, key, name, host in batch:
            storages[key].enqueue_on_commit(name, host=host)
            report.requeued.append({"key": key, "name": name, "status": str(state), "host": host})
    return True
