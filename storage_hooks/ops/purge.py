"""Deleting files refused for good (``manage.py storage_hooks purge --rejected``).

A file a preprocessor refused (``Rejected``: a virus scanner's verdict, a
policy) is FAILED with the failure "rejected" and its local copy is kept for
inspection. Purging deletes each through its own storage
(``storage.delete(name)``), which removes the local copy and the row; the
remote was never written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..status import Status
from .common import SCHEMA, StorageFinder, Tick, chunks, objects


@dataclass
class PurgeReport:
    dry_run: bool
    #: ``{"key", "name", "reason"}`` of every file deleted (or, with
    #: dry_run, that would be).
    deleted: list[dict[str, str]] = field(default_factory=list)
    #: ``{"key", "name", "error"}`` of files whose delete failed.
    errors: list[dict[str, str]] = field(default_factory=list)
    #: Rows left alone because no storage of this process has their key.
    unknown: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.unknown

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "command": "purge", "ok": self.ok, **asdict(self)}


def rejected_rows(keys: Iterable[str] | None = None) -> Any:
    """The ledger rows of files refused for good."""
    query = objects().filter(status=Status.FAILED, failure="rejected")
    if keys:
        query = query.filter(storage_key__in=list(keys))
    return query


def purge_rejected(
    keys: Iterable[str] | None = None,
    *,
    dry_run: bool = False,
    rows: Any = None,
    tick: Tick | None = None,
) -> PurgeReport:
    """Delete every rejected file (of ``keys``, or of the queryset
    ``rows``) through its storage. Nothing is deleted with ``dry_run``."""
    report = PurgeReport(dry_run=dry_run)
    query = (
        rejected_rows(keys)
        if rows is None
        else rows.filter(status=Status.FAILED, failure="rejected")
    )
    unknown: Counter[str] = Counter()
    find = StorageFinder()
    query = query.only("pk", "storage_key", "name", "last_error")
    for batch in chunks(query):
        for row in batch:
            storage = find(row.storage_key)
            if storage is None:
                unknown[row.storage_key] += 1
                continue
            entry = {"key": row.storage_key, "name": row.name, "reason": row.last_error}
            if not dry_run:
                try:
                    storage.delete(row.name)
                except Exception as exc:  # reported per file; the others go on
                    report.errors.append(
                        {"key": row.storage_key, "name": row.name, "error": f"{exc!r}"}
                    )
                    continue
            report.deleted.append(entry)
        if tick:
            tick(len(batch))
    report.unknown = dict(sorted(unknown.items()))
    return report
