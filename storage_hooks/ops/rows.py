"""Row changes the operations need that ``storage_hooks.ledger`` does not
have yet: each one statement for many rows, with the cache told on commit
as the ledger's own functions do. (Candidates to move into ``ledger``.)
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone

from .. import ledger, statecache
from ..status import Status
from .common import objects


def requeue_many(
    rows: Iterable[tuple[int, str, str]],
    *,
    was: Collection[str],
    reset_attempts: bool,
    stamp: datetime | None = None,
) -> int:
    """Mark the rows ``(pk, key, name)`` QUEUED in one UPDATE, where their
    status is still one of ``was``; attempts reset with ``reset_attempts``.
    Call it inside a transaction that locked the rows. Returns the number
    changed."""
    rows = list(rows)
    if not rows:
        return 0
    changes: dict[str, Any] = {"status": Status.QUEUED, "updated_at": stamp or timezone.now()}
    if reset_attempts:
        changes["attempts"] = 0
        changes["failure"] = ""
    changed = (
        objects().filter(pk__in=[pk for pk, _, _ in rows], status__in=list(was)).update(**changes)
    )
    using = ledger.db_alias()
    for _, key, name in rows:
        statecache.publish_on_commit(key, name, Status.QUEUED, using)
    return int(changed)


def mark_lost(key: str, pk: int, name: str, reason: str) -> bool:
    """A REMOTE file whose remote copy is missing and that has no local copy:
    LOST (reads treat it as gone). False if the row changed meanwhile."""
    changed = (
        objects()
        .filter(pk=pk, status=Status.REMOTE)
        .update(
            status=Status.LOST,
            failure="missing",
            last_error=reason[:4000],
            updated_at=timezone.now(),
        )
    )
    if changed:
        ledger.remember_on_commit(key, name, Status.LOST)
    return bool(changed)


def requeue_remote(key: str, pk: int, name: str) -> bool:
    """Queue a REMOTE (or LOST) file again from its local copy: its remote
    copy is missing or not the one verified. False if the row changed."""
    changed = (
        objects()
        .filter(pk=pk, status__in=(Status.REMOTE, Status.LOST))
        .update(
            status=Status.QUEUED,
            attempts=0,
            last_error="",
            failure="",
            transferred_at=None,
            updated_at=timezone.now(),
            # What is on the remote now is not the copy we verified: the
            # transfer must not take it for an unfinished write of ours.
            remote_write_started=False,
        )
    )
    if changed:
        ledger.remember_on_commit(key, name, Status.QUEUED)
    return bool(changed)


def rekey(old: str, new: str) -> int:
    """Move every row of storage key ``old`` to ``new`` (one UPDATE). The
    caller checked that no name is in both. The cache learns the moved
    names under both keys on commit."""
    moved = objects().filter(storage_key=old).values_list("name", "status")
    for name, state in moved.iterator(chunk_size=2000):
        ledger.remember_on_commit(old, name, None)
        ledger.remember_on_commit(new, name, state)
    return int(objects().filter(storage_key=old).update(storage_key=new))
