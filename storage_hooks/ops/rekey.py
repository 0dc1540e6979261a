"""Moving the ledger rows of one storage key to another
(``manage.py storage_hooks rekey OLD NEW``).

For installs whose storage key changed (a storage built without ``key=``
got another derived key, or was given an alias later): the files are where
they were, only their ledger rows carry the old key. Stop the workers
first; queued transfers still carry the old key, so run ``retry`` after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count

from .. import ledger
from ..models import KEY_MAX_LENGTH
from ..status import Status
from .common import SCHEMA, objects

#: Names in both keys listed at most in a report.
SHOWN = 50


class RekeyRefused(ValueError):
    """The rows cannot be moved as asked (the message says why)."""


@dataclass
class RekeyReport:
    old: str
    new: str
    dry_run: bool
    #: Rows moved (or, with dry_run, that would move), by status.
    counts: dict[str, int] = field(default_factory=dict)
    #: Names the new key already has (the first SHOWN of them): refused.
    conflicts: list[str] = field(default_factory=list)
    conflict_count: int = 0

    @property
    def moved(self) -> int:
        return 0 if self.conflicts else sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "rekey", "moved": self.moved, **asdict(self)}


def rekey_storage(old: str, new: str, *, dry_run: bool = False) -> RekeyReport:
    """Move every ledger row of key ``old`` to key ``new``, unless ``new``
    already has a row of the same name (then nothing moves and
    ``conflicts`` names them). Raises RekeyRefused for a bad request."""
    if old == new:
        raise RekeyRefused(f"The old and the new key are both {old!r}.")
    if not new or len(new) > KEY_MAX_LENGTH:
        raise RekeyRefused(
            f"The new key {new!r} must have 1 to {KEY_MAX_LENGTH} characters (it has {len(new)})."
        )
    report = RekeyReport(old=old, new=new, dry_run=dry_run)
    with transaction.atomic(using=ledger.db_alias()):
        source = objects().filter(storage_key=old)
        grouped = source.values_list("status").annotate(n=Count("*")).order_by()
        report.counts = {str(state): number for state, number in grouped}
        if not report.counts:
            raise RekeyRefused(f"The ledger has no row of the key {old!r}: nothing to move.")
        clash = objects().filter(storage_key=new, name__in=source.values("name"))
        report.conflict_count = clash.count()
        report.conflicts = list(clash.order_by("name").values_list("name", flat=True)[:SHOWN])
        if report.conflicts or dry_run:
            return report
        # A save that took one of the names meanwhile makes the UPDATE fail
        # on the unique constraint, and nothing moves.
        try:
            with transaction.atomic(using=ledger.db_alias()):
                ledger.rekey(old, new)
        except IntegrityError:
            raise RekeyRefused(
                f"A file was saved under the key {new!r} with a name of {old!r} while the "
                "rows moved; nothing moved. Stop the sites and workers, and run rekey again."
            ) from None
    return report


def in_flight(report: RekeyReport) -> int:
    """Rows that were queued or transferring when moved: their messages
    carry the old key (``retry`` queues them again)."""
    return sum(report.counts.get(str(s), 0) for s in (Status.QUEUED, Status.TRANSFERRING))
