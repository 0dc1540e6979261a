"""The ledger's state machine: every read and change of a file's row.

One row per (storage key, name). The states and who moves a row between them::

    save ──> LOCAL (delayed) ──transfer()──> QUEUED ──claim──> TRANSFERRING
    save ──> QUEUED                                            │      │
                         QUEUED <──── failed, will retry ──────┘      │
                         FAILED <──── failed for good ────────────────┤
                         REMOTE <──── proven equal on the remote ─────┘
    delete() ──> DELETING ──files removed (after commit)──> row removed
    verify --fix, nothing left ──> LOST

Every change is one conditional statement, so concurrent actors serialise
on the row: a worker finishes only the attempt it claimed (``pk``, status
and ``attempts`` match), ``delete`` marks a row the others then leave alone,
and the code that removes a file takes the row's lock first (:func:`lock`).
A name with no row is locked by inserting a placeholder row
(:func:`hold_name`), so that a save of that name waits or picks another.

Changes are published to the cache (:mod:`storage_hooks.statecache`) once
they commit; reads ask the cache first and the database on a miss.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone

from . import statecache
from .conf import conf
from .status import LOCAL_STATES, Status

if TYPE_CHECKING:
    from .models import StoredFile

#: States whose row a new save, transfer or replacement may change.
LIVE_STATES = (*LOCAL_STATES, Status.REMOTE)


def model() -> type[StoredFile]:
    """The ledger model; a clear error when the app is not installed."""
    if not apps.is_installed("storage_hooks"):
        raise ImproperlyConfigured(
            'QueuedStorage keeps its ledger in a table of the app "storage_hooks": add it to '
            "INSTALLED_APPS and run 'manage.py migrate'."
        )
    from .models import StoredFile

    return StoredFile


def db_alias() -> str:
    """The database alias the ledger is written to."""
    return conf.DATABASE or router.db_for_write(model())


def objects() -> Any:
    """Every ledger row, on the ledger's database."""
    return model().objects.using(db_alias())


def rows(key: str) -> Any:
    """The rows of storage key ``key``."""
    return objects().filter(storage_key=key)


def _publish(key: str, name: str, status: str | None) -> None:
    statecache.publish_on_commit(key, name, status, db_alias())


def clear_memory() -> None:
    """Forget what this process remembers of files on the remote."""
    statecache.clear_memory()


# -- reads -----------------------------------------------------------------


def status(key: str, name: str) -> Status | None:
    """The status of ``name``, or None when the ledger does not know it."""
    using = db_alias()
    changed = statecache.changed_here(key, name, using)
    value = None if changed else statecache.get(key, name)
    if value is None:
        return fresh_status(key, name, cache=not changed)
    return None if value == statecache.UNKNOWN else Status(value)


def fresh_status(key: str, name: str, *, cache: bool = True) -> Status | None:
    """The status in the database, whatever the cache says (and the cache
    refilled with it)."""
    found = rows(key).filter(name=name).values_list("status", flat=True).first()
    if cache:
        statecache.fill(key, {name: found or statecache.UNKNOWN})
    return Status(found) if found else None


def statuses(key: str, names: Iterable[str]) -> dict[str, Status | None]:
    """Statuses of many names: one cache round trip and at most one query."""
    names = list(dict.fromkeys(names))
    using = db_alias()
    changed = {n for n in names if statecache.changed_here(key, n, using)}
    found = statecache.get_many(key, [n for n in names if n not in changed])
    missing = [name for name in names if name not in found]
    if missing:
        from_db = dict(rows(key).filter(name__in=missing).values_list("name", "status"))
        read = {name: from_db.get(name, statecache.UNKNOWN) for name in missing}
        found.update(read)
        statecache.fill(key, {n: v for n, v in read.items() if n not in changed})
    return {n: None if found[n] == statecache.UNKNOWN else Status(found[n]) for n in names}


def knows(key: str, name: str) -> bool:
    return rows(key).filter(name=name).exists()


def get(key: str, name: str) -> StoredFile | None:
    return rows(key).filter(name=name).first()


def derivatives(key: str, source: str) -> dict[str, str]:
    """``{variant: name}`` of the derivatives recorded for ``source``."""
    found = rows(key).filter(derived_from=source).values_list("variant", "name")
    return dict(found)


def source_of(key: str, name: str) -> str | None:
    """The name ``name`` was derived from, or None for an original (or an
    unknown name)."""
    found = rows(key).filter(name=name).values_list("derived_from", flat=True).first()
    return found or None


# -- saving ----------------------------------------------------------------


def inserts_if_absent() -> bool:
    """Whether the ledger's database can insert a row unless its name is
    taken, in one statement (PostgreSQL and SQLite: ON CONFLICT DO NOTHING).
    Then ``save`` need not ask the ledger for a free name beforehand."""
    return transaction.get_connection(db_alias()).vendor in ("postgresql", "sqlite")


def insert_if_absent(key: str, name: str, **values: Any) -> bool:
    """Insert the row of ``name`` unless the ledger already has one: True
    if inserted. One statement, no error inside the caller's transaction;
    a concurrent insert of the same name waits for this one's transaction.
    Where the database cannot do that in one statement, a savepoint does."""
    using = db_alias()
    connection = transaction.get_connection(using)
    now = timezone.now()
    values = {"storage_key": key, "name": name, "created_at": now, "updated_at": now, **values}
    if connection.vendor not in ("postgresql", "sqlite"):
        try:
            with transaction.atomic(using=using):
                rows(key).create(**values)
        except IntegrityError:
            return False
        statecache.publish_on_commit(key, name, values.get("status"), using, new=True)
        return True
    sql, fields = _insert_statement(connection)
    params = [
        field.get_db_prep_save(values.get(field.name, default), connection)
        for field, default in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = cursor.rowcount == 1
    if inserted:
        statecache.publish_on_commit(key, name, values.get("status"), using, new=True)
    return inserted


#: (vendor, table) -> the INSERT ... ON CONFLICT DO NOTHING statement and
#: its fields, each with its default (None where it must be made per row).
_insert_statements: dict[tuple[str, str], tuple[str, list[tuple[Any, Any]]]] = {}


def _insert_statement(connection: Any) -> tuple[str, list[tuple[Any, Any]]]:
    """The statement of :func:`insert_if_absent` for ``connection``, built
    once per database vendor (a save makes it on every call otherwise)."""
    stored = model()
    table = stored._meta.db_table
    found = _insert_statements.get((connection.vendor, table))
    if found is None:
        fields = [f for f in stored._meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        sql = (
            f"INSERT INTO {quote(table)} "
            f"({', '.join(quote(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING"
        )
        found = (sql, [(f, f.get_default()) for f in fields])
        if not any(callable(f.default) for f in fields):
            _insert_statements[(connection.vendor, table)] = found
    return found


def record_saved(key: str, name: str, **values: Any) -> StoredFile:
    """Record a file just written locally (inside the caller's transaction);
    IntegrityError if the name is recorded."""
    row = rows(key).create(storage_key=key, name=name, **values)
    statecache.publish_on_commit(key, name, values.get("status"), db_alias(), new=True)
    return row


def unrecord(key: str, name: str) -> None:
    """Remove a row this transaction just inserted, before its file was put
    in place (the local name turned out to be taken)."""
    rows(key).filter(name=name).delete()
    _publish(key, name, None)


def overwrite(key: str, name: str, **values: Any) -> StoredFile | None:
    """Record new content for a recorded name (an overwriting save): the
    row is locked, and its transfer starts over. The remote copy may be
    replaced by the transfer only if this library wrote it. None if the
    row is gone or being deleted."""
    row = lock(key, name, states=LIVE_STATES)
    if row is None:
        return None
    ours = row.status == Status.REMOTE or row.remote_write_started
    changes = {
        **values,
        "attempts": 0,
        "last_error": "",
        "failure": "",
        "preprocessed": False,
        "transferred_at": None,
        "remote_write_started": ours,
        "updated_at": timezone.now(),
    }
    rows(key).filter(pk=row.pk).update(**changes)
    _publish(key, name, values.get("status"))
    for field, value in changes.items():
        setattr(row, field, value)
    return row


def replace_content(
    key: str, name: str, *, size: int, checksum: str, pk: int | None = None
) -> bool:
    """Record the new size and checksum of a file whose local copy is being
    replaced (not on the remote yet); takes the row's lock. False if the row
    is not in such a state (or not the row ``pk``)."""
    query = rows(key).filter(name=name, status__in=LOCAL_STATES)
    if pk is not None:
        query = query.filter(pk=pk)
    return bool(query.update(size=size, checksum=checksum, updated_at=timezone.now()))


# -- locking and deleting --------------------------------------------------


def lock(key: str, name: str, *, states: Iterable[str] | None = None) -> StoredFile | None:
    """Take the lock of the row of ``name`` for the current transaction
    (an UPDATE: it waits for a concurrent change of the row and holds the
    row until commit, on PostgreSQL and SQLite alike) and return it; None
    if there is no such row (in one of ``states``)."""
    query = rows(key).filter(name=name)
    if states is not None:
        query = query.filter(status__in=list(states))
    if not query.update(updated_at=F("updated_at")):
        return None
    return query.first()


def hold_name(key: str, name: str) -> tuple[bool, StoredFile | None]:
    """Lock ``name`` whether or not it has a row: ``(True, None)`` when a
    placeholder row (status DELETING) was inserted, which the caller
    removes with :func:`finish_delete`; ``(False, row)`` when the name has
    a row, now locked."""
    if insert_if_absent(key, name, status=Status.DELETING, host="", checksum=""):
        return True, None
    return False, lock(key, name)


def begin_delete(key: str, name: str) -> StoredFile | None:
    """Mark the row of ``name`` DELETING (taking its lock) and return it as
    it was before; for a name without a row, a placeholder row is inserted
    and returned (``pk`` set, status DELETING, nothing on the remote). None
    if the file is already being deleted."""
    held, row = hold_name(key, name)
    if held:
        return rows(key).filter(name=name).first()
    if row is None or row.status == Status.DELETING:
        return None
    # A DELETING row must still say whether the remote copy is ours to
    # remove, for the delete that `retry` finishes after an interruption.
    ours = row.status == Status.REMOTE or row.remote_write_started
    rows(key).filter(pk=row.pk).update(
        status=Status.DELETING, remote_write_started=ours, updated_at=timezone.now()
    )
    _publish(key, name, Status.DELETING)
    return row


def finish_delete(row: StoredFile) -> None:
    """Remove the row of a deleted file once its files are gone."""
    rows(row.storage_key).filter(pk=row.pk, status=Status.DELETING).delete()
    _publish(row.storage_key, row.name, None)


def delete(key: str, name: str) -> None:
    """Remove the row of ``name`` outright (tests, repairs)."""
    rows(key).filter(name=name).delete()
    _publish(key, name, None)


def deleting_since(before: datetime, keys: Iterable[str] | None = None) -> Any:
    """The DELETING rows unchanged since ``before``: deletes interrupted
    after their commit (the process died before the files were removed)."""
    query = objects().filter(status=Status.DELETING, updated_at__lte=before)
    return query.filter(storage_key__in=list(keys)) if keys is not None else query


# -- transfers -------------------------------------------------------------


def requeue(key: str, name: str, *, reset_attempts: bool) -> bool:
    """Mark a file QUEUED again unless it is on the remote, being deleted
    or lost. False if there is nothing to queue."""
    changes: dict[str, Any] = {"status": Status.QUEUED, "updated_at": timezone.now()}
    if reset_attempts:
        changes["attempts"] = 0
        changes["failure"] = ""
    updated = rows(key).filter(name=name, status__in=LOCAL_STATES).update(**changes)
    if updated:
        _publish(key, name, Status.QUEUED)
    return bool(updated)


def claim(key: str, name: str) -> StoredFile | None:
    """Take a QUEUED file for one attempt. Exactly one of several concurrent
    callers gets the row (with ``attempts`` counting this attempt)."""
    with transaction.atomic(using=db_alias()):
        updated = (
            rows(key)
            .filter(name=name, status=Status.QUEUED)
            .update(
                status=Status.TRANSFERRING,
                attempts=F("attempts") + 1,
                updated_at=timezone.now(),
            )
        )
        if not updated:
            return None
        row = rows(key).get(name=name)
    statecache.publish_now(key, name, Status.TRANSFERRING)
    return row


def updates_returning() -> bool:
    """Whether the ledger's database returns the rows an UPDATE changed
    (``RETURNING``: PostgreSQL, SQLite 3.35+), so that many files are
    claimed or recorded in one round trip. MariaDB and Oracle return rows
    only from other statements."""
    connection = transaction.get_connection(db_alias())
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert
    )


class _Sql:
    """Quoted names of the ledger's table and columns, and values prepared
    for its connection, for the statements the ORM cannot write."""

    def __init__(self) -> None:
        self.meta = model()._meta
        self.connection = transaction.get_connection(db_alias())
        quote = self.connection.ops.quote_name
        self.table, self.pk = quote(self.meta.db_table), quote(self.meta.pk.column)
        self.columns = {f.name: quote(f.column) for f in self.meta.concrete_fields}

    def __getattr__(self, field: str) -> str:
        """``q.status``: the quoted column of the field ``status``."""
        return self.columns[field]

    def now(self) -> Any:
        return self.meta.get_field("updated_at").get_db_prep_value(timezone.now(), self.connection)


def claim_many(key: str, names: Iterable[str]) -> list[StoredFile]:
    """Take every QUEUED file among ``names`` for one attempt each (in the
    order given): one statement where the database returns updated rows
    (:func:`updates_returning`), else one :func:`claim` per name. Exactly one
    of several concurrent callers gets each row, as with :func:`claim`.

    For the names of one message (the statement has a parameter per name).
    Where rows can be locked one by one (PostgreSQL) the statement skips
    those another transaction holds, and they are then claimed one at a
    time, waiting as :func:`claim` does: a statement waiting for one row
    while holding others could deadlock with a transaction that locks
    several of them (a save overwriting files of the batch)."""
    names = list(dict.fromkeys(names))
    if not updates_returning():
        return [row for name in names if (row := claim(key, name)) is not None]
    claimed = _claim_returning(key, names)
    if len(claimed) < len(names) and _skips_locked():
        taken = {row.name for row in claimed}
        held = rows(key).filter(
            name__in=[name for name in names if name not in taken], status=Status.QUEUED
        )
        claimed += [
            row for name in held.values_list("name", flat=True) if (row := claim(key, name))
        ]
    order = {name: index for index, name in enumerate(names)}
    return sorted(claimed, key=lambda row: order[row.name])


def _skips_locked() -> bool:
    connection = transaction.get_connection(db_alias())
    return bool(connection.features.has_select_for_update_skip_locked)


def _claim_returning(key: str, names: list[str]) -> list[StoredFile]:
    """``UPDATE ... RETURNING`` the QUEUED rows among ``names``, now
    TRANSFERRING with one more attempt; the cache learns them at once."""
    if not names:
        return []
    q = _Sql()
    listed = ", ".join(["%s"] * len(names))
    where = f"{q.storage_key} = %s AND {q.status} = %s AND {q.name} IN ({listed})"
    if _skips_locked():
        where = f"{q.pk} IN (SELECT {q.pk} FROM {q.table} WHERE {where} FOR UPDATE SKIP LOCKED)"
    columns = ", ".join(q.columns.values())
    sql = (
        f"UPDATE {q.table} SET {q.status} = %s, {q.attempts} = {q.attempts} + 1, "
        f"{q.updated_at} = %s WHERE {where} RETURNING {columns}"
    )
    params = [Status.TRANSFERRING.value, q.now(), key, Status.QUEUED.value, *names]
    claimed = list(objects().raw(sql, params))
    statecache.publish_many_now((key, row.name, Status.TRANSFERRING) for row in claimed)
    return claimed


def _attempt(row: StoredFile) -> Any:
    """The row, if it is still the attempt that was claimed."""
    return rows(row.storage_key).filter(
        pk=row.pk, status=Status.TRANSFERRING, attempts=row.attempts
    )


def _finish(row: StoredFile, **changes: Any) -> bool:
    """Apply ``changes`` if ``row`` is still the attempt we claimed."""
    changes["updated_at"] = timezone.now()
    updated = _attempt(row).update(**changes)
    if updated:
        statecache.publish_now(row.storage_key, row.name, changes.get("status", row.status))
    return bool(updated)


def refresh(row: StoredFile) -> bool:
    """Reload the size and checksum of the claimed ``row`` (a receiver may
    have replaced the local copy); False if the attempt is no longer ours."""
    found = _attempt(row).values("size", "checksum", "preprocessed").first()
    if found is None:
        return False
    row.size, row.checksum, row.preprocessed = (
        found["size"],
        found["checksum"],
        found["preprocessed"],
    )
    return True


def mark_preprocessed(row: StoredFile) -> bool:
    """Record that the preprocessors ran on the claimed file."""
    if _attempt(row).update(preprocessed=True):
        row.preprocessed = True
        return True
    return False


def mark_remote_write_started(row: StoredFile) -> None:
    """Record, before the first byte is written, that the remote file under
    ``row.name`` is about to be ours: a later attempt may then replace it."""
    if not row.remote_write_started:
        # The statement of _attempt(row).update(...), written out: it runs
        # once per file, and the ORM's compiling it cost more CPU than the
        # round trip (a busy worker's threads share one GIL).
        q = _Sql()
        sql = (
            f"UPDATE {q.table} SET {q.remote_write_started} = %s "
            f"WHERE {q.pk} = %s AND {q.status} = %s AND {q.attempts} = %s"
        )
        with q.connection.cursor() as cursor:
            cursor.execute(sql, [True, row.pk, Status.TRANSFERRING.value, row.attempts])
        row.remote_write_started = True


def forget_remote_write(row: StoredFile) -> None:
    """Undo :func:`mark_remote_write_started`: the write did not happen, and
    the name on the remote may be another writer's."""
    if row.remote_write_started:
        rows(row.storage_key).filter(pk=row.pk).update(remote_write_started=False)
        row.remote_write_started = False


def mark_remote(row: StoredFile, etag: str = "") -> bool:
    """The copy is proven: REMOTE, if the attempt is still ours."""
    return _finish(
        row,
        status=Status.REMOTE,
        last_error="",
        failure="",
        remote_etag=etag[:255],
        transferred_at=timezone.now(),
    )


def mark_remote_many(proven: Iterable[tuple[StoredFile, str]]) -> set[int]:
    """:func:`mark_remote` for many proven copies ``(row, etag)``: one
    statement where the database returns updated rows, each row changed
    only if it is still the attempt that was claimed (``pk``, status
    TRANSFERRING, ``attempts``), and one cache write. Returns the ``pk`` of
    the rows recorded; the others were deleted or claimed again meanwhile."""
    proven = list(proven)
    if not updates_returning():
        return {row.pk for row, etag in proven if mark_remote(row, etag)}
    if not proven:
        return set()
    q = _Sql()
    now = q.now()
    cases = " ".join(["WHEN %s THEN %s"] * len(proven))
    attempt = f"({q.pk} = %s AND {q.storage_key} = %s AND {q.attempts} = %s)"
    sql = (
        f"UPDATE {q.table} SET {q.status} = %s, {q.last_error} = %s, {q.failure} = %s, "
        f"{q.transferred_at} = %s, {q.updated_at} = %s, "
        f"{q.remote_etag} = CASE {q.pk} {cases} ELSE {q.remote_etag} END "
        f"WHERE {q.status} = %s AND ({' OR '.join([attempt] * len(proven))}) RETURNING {q.pk}"
    )
    params: list[Any] = [Status.REMOTE.value, "", "", now, now]
    for row, etag in proven:
        params += [row.pk, etag[:255]]
    params.append(Status.TRANSFERRING.value)
    for row, _ in proven:
        params += [row.pk, row.storage_key, row.attempts]
    with q.connection.cursor() as cursor:
        cursor.execute(sql, params)
        recorded = {pk for (pk,) in cursor.fetchall()}
    statecache.publish_many_now(
        (row.storage_key, row.name, Status.REMOTE) for row, _ in proven if row.pk in recorded
    )
    return recorded


def mark_failed(row: StoredFile, error: str, *, final: bool, kind: str = "error") -> bool:
    status = Status.FAILED if final else Status.QUEUED
    return _finish(row, status=status, last_error=error[:4000], failure=kind[:32])


# -- operations on many rows (retry, verify, sync, rekey) -------------------


def requeue_many(
    found: Iterable[tuple[int, str, str]],
    *,
    was: Collection[str],
    reset_attempts: bool,
    stamp: datetime | None = None,
) -> int:
    """Mark the rows ``(pk, key, name)`` QUEUED in one UPDATE, where their
    status is still one of ``was``; attempts reset with ``reset_attempts``.
    Call it inside a transaction that locked the rows. The cache learns the
    change on commit in one round trip. Returns the number changed."""
    found = list(found)
    if not found:
        return 0
    changes: dict[str, Any] = {"status": Status.QUEUED, "updated_at": stamp or timezone.now()}
    if reset_attempts:
        changes["attempts"] = 0
        changes["failure"] = ""
    pks = [pk for pk, _, _ in found]
    changed = objects().filter(pk__in=pks, status__in=list(was)).update(**changes)
    statecache.publish_many_on_commit(
        ((key, name, Status.QUEUED) for _, key, name in found), db_alias()
    )
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
        _publish(key, name, Status.LOST)
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
        _publish(key, name, Status.QUEUED)
    return bool(changed)


def insert_many(found: list[StoredFile]) -> list[StoredFile]:
    """Insert the unsaved rows ``found`` (one query when nothing races with
    this), inside the caller's transaction; the cache learns them on commit.
    Rows whose name was recorded meanwhile (a concurrent save) are dropped:
    the inserted ones are returned."""
    using = db_alias()
    created: list[StoredFile] = []
    try:
        with transaction.atomic(using=using):
            objects().bulk_create(found)
        created = found
    except IntegrityError:
        for row in found:
            try:
                with transaction.atomic(using=using):
                    row.save(using=using, force_insert=True)
            except IntegrityError:
                continue
            created.append(row)
    statecache.publish_many_on_commit(
        ((row.storage_key, row.name, row.status) for row in created), using
    )
    return created


def rekey(old: str, new: str) -> int:
    """Move every row of storage key ``old`` to ``new`` (one UPDATE). The
    caller checked that no name is in both. The cache learns the moved
    names under both keys on commit."""
    using = db_alias()
    moved = rows(old).values_list("name", "status")
    batch: list[tuple[str, str, str | None]] = []
    for name, state in moved.iterator(chunk_size=2000):
        batch += [(old, name, None), (new, name, state)]
        if len(batch) >= 4000:
            statecache.publish_many_on_commit(batch, using)
            batch = []
    statecache.publish_many_on_commit(batch, using)
    return int(rows(old).update(storage_key=new))
