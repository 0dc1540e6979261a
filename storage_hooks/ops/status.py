"""Counts by status per storage key, and the oldest pending file
(``manage.py storage_hooks status``).

Flat in the size of the ledger: the states that need attention (everything
but REMOTE) are counted exactly through a partial index that holds only
those rows; the REMOTE count comes from PostgreSQL's statistics (labelled an
estimate) unless ``exact=True``; the oldest pending file is the first entry
of the ``(storage_key, created_at)`` index of pending rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Count
from django.utils import timezone

from ..status import PENDING_STATES, Status
from .common import (
    ATTENTION,
    SCHEMA,
    StorageFinder,
    estimate,
    is_postgresql,
    ledger_keys,
    objects,
    process_storages,
)

if TYPE_CHECKING:
    from ..models import StoredFile


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
        "failure": row.failure,
    }


def oldest_pending(key: str) -> StoredFile | None:
    """The pending file of ``key`` saved first (one index probe)."""
    return (
        objects()
        .filter(storage_key=key, status__in=PENDING_STATES)
        .order_by("created_at")
        .only(
            "storage_key",
            "name",
            "status",
            "created_at",
            "updated_at",
            "attempts",
            "last_error",
            "failure",
        )
        .first()
    )


#: Below this many rows in the ledger (PostgreSQL's estimate) REMOTE files
#: are counted exactly: it costs a few milliseconds.
ESTIMATE_ABOVE = 200_000


def _remote_counts(keys: list[str], exact: bool) -> tuple[dict[str, int], bool]:
    """REMOTE rows per key, and whether the numbers are estimates."""
    remote = objects().filter(status=Status.REMOTE)
    if exact or not is_postgresql() or estimate(objects()) < ESTIMATE_ABOVE:
        grouped = (
            remote.filter(storage_key__in=keys)
            .values_list("storage_key")
            .annotate(n=Count("*"))
            .order_by()
        )
        return dict(grouped), False
    return {key: estimate(remote.filter(storage_key=key)) for key in keys}, True


def status_summary(keys: Iterable[str] | None = None, *, exact: bool = False) -> dict[str, Any]:
    """Counts by status per storage key, and the oldest pending file.

    Keys: those given, else the ledger's and those of this process's
    storages. ``remote_estimated`` says whether the REMOTE counts are
    PostgreSQL's estimate (``exact=True`` counts them, reading every
    REMOTE row of the keys). A constant number of queries per key.
    """
    now = timezone.now()
    wanted = list(dict.fromkeys(keys or ()))
    shown = wanted or sorted({*ledger_keys(), *process_storages()})
    counts: dict[str, Counter[str]] = {key: Counter() for key in shown}
    attention = objects().filter(status__in=ATTENTION)
    if wanted:
        attention = attention.filter(storage_key__in=wanted)
    grouped = attention.values_list("storage_key", "status").annotate(n=Count("*")).order_by()
    for key, state, number in grouped:
        counts.setdefault(key, Counter())[state] = number
    remote, estimated = _remote_counts(shown, exact)
    for key, number in remote.items():
        counts[key][Status.REMOTE] = number
    finder = StorageFinder()
    storages: list[dict[str, Any]] = []
    oldest: dict[str, Any] | None = None
    for key in sorted(counts):
        by_status = {str(state): counts[key][state] for state in Status}
        pending = None
        if any(by_status[state] for state in PENDING_STATES):
            row = oldest_pending(key)
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
        "remote_estimated": estimated,
        "storages": storages,
        "totals": totals,
        "total": sum(totals.values()),
        "oldest_pending": oldest,
    }
