"""Re-queueing failed and stuck transfers (``manage.py storage_hooks retry``).

The cost is in the rows to re-queue, not in the ledger's size: candidates
come from a partial ``(status, updated_at)`` index of the rows ``retry`` may
re-queue (FAILED ones not refused for good, QUEUED and TRANSFERRING ones),
each chunk of them is
locked and re-queued with one UPDATE, and each file is then handed to the
runner once the chunk's transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from .. import ledger
from ..conf import conf
from ..status import Status
from .common import CHUNK, SCHEMA, enqueue_on_commit, objects, process_storages
from .rows import requeue_many

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
    #: Rows left alone because no storage of this process has their key.
    unknown: dict[str, int] = field(default_factory=dict)
    #: LOST files per key: no copy is left to re-queue.
    lost: dict[str, int] = field(default_factory=dict)
    #: Whether FAILED files refused for good (failure "rejected") were left
    #: alone (``purge --rejected`` deletes them).
    rejected_left: bool = False

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.lost

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "retry", "ok": self.ok, **asdict(self)}


def _per_key(query: Any) -> dict[str, int]:
    grouped = query.values_list("storage_key").annotate(n=Count("pk")).order_by()
    return dict(sorted(grouped))


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
    failed = Q(status=Status.FAILED) & ~Q(failure__in=FINAL_FAILURES)
    stuck = Q(status__in=(Status.QUEUED, Status.TRANSFERRING), updated_at__lte=cutoff)
    wanted = list(keys or ())
    base = objects()
    if wanted:
        base = base.filter(storage_key__in=wanted)
    storages = process_storages()
    report = RetryReport(stuck_after=seconds)
    report.unknown = _per_key(base.filter(failed | stuck).exclude(storage_key__in=storages))
    report.lost = _per_key(base.filter(status=Status.LOST))
    report.rejected_left = base.filter(status=Status.FAILED, failure__in=FINAL_FAILURES).exists()
    candidates = (
        base.filter(failed | stuck, storage_key__in=storages)
        .values_list("pk", "storage_key", "name", "status", "host")
        .order_by()
    )
    while True:
        # One transaction per chunk: the rows read are locked until their
        # new state commits, so a worker's claim of one of them waits, and
        # the transfers are handed to the runner after the commit. A
        # re-queued row no longer matches (QUEUED, changed after the
        # cutoff), so the loop ends when nothing is left.
        with transaction.atomic(using=ledger.db_alias()):
            batch = list(candidates.select_for_update(skip_locked=True)[:CHUNK])
            if not batch:
                break
            stamp = max(timezone.now(), cutoff + timedelta(microseconds=1))
            by_state: dict[bool, list[tuple[int, str, str]]] = {True: [], False: []}
            for pk, key, name, state, _host in batch:
                by_state[state == Status.FAILED].append((pk, key, name))
            requeue_many(by_state[True], was=(Status.FAILED,), reset_attempts=True, stamp=stamp)
            requeue_many(
                by_state[False],
                was=(Status.QUEUED, Status.TRANSFERRING),
                reset_attempts=False,
                stamp=stamp,
            )
            for _pk, key, name, state, host in batch:
                enqueue_on_commit(storages[key], name, host)
                report.requeued.append(
                    {"key": key, "name": name, "status": str(state), "host": host}
                )
    return report
