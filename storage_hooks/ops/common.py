"""What every operation shares: chunked reads, finding storages by key,
queueing after commit, and counting cheaply on a big ledger."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import QuerySet

from .. import ledger
from ..exceptions import UnknownStorageKey
from ..registry import configured_storages, get_storage, known_storages
from ..status import Status

if TYPE_CHECKING:
    from ..models import StoredFile
    from ..storage import QueuedStorage

#: Rows read or changed per query.
CHUNK = 500

#: Version of the dictionaries the reports print with ``--json``.
SCHEMA = 1

#: States that need an operator's attention: everything but REMOTE. The
#: ledger keeps a partial index of these rows (migration 0004), so they are
#: counted exactly at any table size.
ATTENTION = tuple(state for state in Status if state != Status.REMOTE)

Tick = Callable[[int], Any]


def objects() -> QuerySet[StoredFile]:
    """Every ledger row, on the ledger's database."""
    return ledger.objects()


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


def process_storages() -> dict[str, QueuedStorage]:
    """The QueuedStorages of this process by key: ``settings.STORAGES``'
    and every one built so far (model fields' included)."""
    found: dict[str, QueuedStorage] = {}
    for storage in [*configured_storages().values(), *known_storages()]:
        found.setdefault(storage.key, storage)
    return dict(sorted(found.items()))


def ledger_keys() -> list[str]:
    """The storage keys that have rows in the ledger, without reading the
    table: one probe of the (storage_key, name) index per key (a "loose
    index scan"), where ``SELECT DISTINCT`` would read every row."""
    model = ledger.model()
    connection = connections[ledger.db_alias()]
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(str(model._meta.get_field("storage_key").column))
    sql = (
        f"WITH RECURSIVE keys(k) AS ("
        f" SELECT MIN({column}) FROM {table}"
        f" UNION ALL"
        f" SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > keys.k)"
        f" FROM keys WHERE keys.k IS NOT NULL"
        f") SELECT k FROM keys WHERE k IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def unknown_keys(keys: Iterable[str], *, ledger_too: bool = True) -> list[str]:
    """The keys of ``keys`` that name no storage of this process (and, with
    ``ledger_too``, have no row in the ledger either)."""
    mine = process_storages()
    missing = [key for key in dict.fromkeys(keys) if key not in mine]
    if ledger_too and missing:
        stored = {k for k in missing if objects().filter(storage_key=k).exists()}
        missing = [key for key in missing if key not in stored]
    return missing


def unknown_key_message(keys: Iterable[str]) -> str:
    """What to tell someone who named storage keys nobody knows."""
    known = sorted({*process_storages(), *ledger_keys()})
    named = ", ".join(map(repr, keys))
    return (
        f"Unknown storage key {named}: no QueuedStorage of this process and no ledger row "
        f"has it. Known keys: {', '.join(known) or 'none'}."
    )


def is_postgresql() -> bool:
    return bool(connections[ledger.db_alias()].vendor == "postgresql")


def estimate(queryset: QuerySet[Any]) -> int:
    """The number of rows PostgreSQL's planner expects ``queryset`` to
    return (its statistics; no row is read). PostgreSQL only."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
