"""Reading and changing the ledger, with the cache in front of it.

Every state change goes to the database first and to the cache after the
change commits. Reads ask the cache, then the database; they never ask a
storage. A flushed cache therefore changes no answer and costs no remote
call, only a query.

In front of the cache, each process remembers for a short while
(``MEMORY_TIMEOUT``) which files are on the remote, the state a file keeps
for the rest of its life: ``url()`` of a transferred file then costs no
round trip at all. A change made by another process (a delete, a
``verify --fix``) reaches this memory when the entry expires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import router, transaction
from django.db.models import F
from django.utils import timezone

from .conf import conf
from .lru import UrlMemory
from .status import Status

if TYPE_CHECKING:
    from .models import StoredFile

#: Cached for names the ledger does not know.
_UNKNOWN = "-"

_remote_memory: UrlMemory | None = None


def _memory() -> UrlMemory | None:
    """This process's memory of files on the remote (None when disabled)."""
    global _remote_memory
    size, ttl = int(conf.MEMORY_SIZE), float(conf.MEMORY_TIMEOUT)
    if size <= 0 or ttl <= 0:
        return None
    memory = _remote_memory
    if memory is None or memory.size != size or memory.ttl != ttl:
        memory = _remote_memory = UrlMemory(size, ttl)
    return memory


def _memorize(key: str, name: str, value: str | None) -> None:
    memory = _memory()
    if memory is None:
        return
    if value == Status.REMOTE:
        memory.put(f"{key}\0{name}", 1)
    else:
        memory.forget(f"{key}\0{name}")


def clear_memory() -> None:
    """Forget everything this process remembers (tests; after a restore)."""
    global _remote_memory
    _remote_memory = None


def on_remote(key: str, name: str) -> bool:
    """Whether this process remembers ``name`` as on the remote (no I/O)."""
    memory = _memory()
    return memory is not None and memory.get(f"{key}\0{name}") is not None


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


def _cache() -> BaseCache:
    return caches[conf.CACHE]


def _cache_key(key: str, name: str) -> str:
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    return f"{conf.CACHE_PREFIX}:{key}:{digest}"


def _timeout(status: str) -> int | None:
    # A file on the remote stays there until deleted, which updates the
    # cache; the other states change behind a process's back, so they are
    # trusted briefly.
    return None if status == Status.REMOTE else conf.CACHE_TIMEOUT


def _remember(key: str, name: str, status: str | None) -> None:
    value = status or _UNKNOWN
    _cache().set(_cache_key(key, name), value, _timeout(value))
    _memorize(key, name, value)


def remember_on_commit(key: str, name: str, status: str | None) -> None:
    """Update the cache once the current transaction commits.

    Until then, reads inside this transaction skip the cache for this name
    and ask the database, which shows them the change.
    """
    _memorize(key, name, None)
    _changed_here().add((key, name))
    transaction.on_commit(lambda: _remember(key, name, status), using=db_alias())


def _changed_here() -> set[tuple[str, str]]:
    """The (key, name) pairs the current transaction changed (empty outside
    one). Kept on the connection, for its outermost atomic block only."""
    connection = transaction.get_connection(db_alias())
    if not connection.in_atomic_block:
        return set()
    block = id(connection.atomic_blocks[0]) if connection.atomic_blocks else 0
    mark = getattr(connection, "_storage_hooks_changed", None)
    if mark is None or mark[0] != block:
        mark = (block, set())
        connection._storage_hooks_changed = mark
    return mark[1]


def _cacheable(key: str, name: str) -> bool:
    # A row this transaction changed may still be rolled back: don't
    # publish what we read of it to other processes through the cache.
    # Rows it did not touch read as committed, and may be cached (so url()
    # inside ATOMIC_REQUESTS views still fills the cache).
    return (key, name) not in _changed_here()


def rows(key: str) -> Any:
    return model().objects.using(db_alias()).filter(storage_key=key)


def status(key: str, name: str) -> Status | None:
    """The status of ``name``, or None when the ledger does not know it."""
    if on_remote(key, name):
        return Status.REMOTE
    cache = _cache()
    ckey = _cache_key(key, name)
    cacheable = _cacheable(key, name)
    value = cache.get(ckey) if cacheable else None
    if value is None:
        found = rows(key).filter(name=name).values_list("status", flat=True).first()
        value = found or _UNKNOWN
        if cacheable:
            # add, not set: a state change that raced with this read wins.
            cache.add(ckey, value, _timeout(value))
            _memorize(key, name, value)
    elif value == Status.REMOTE:
        _memorize(key, name, value)
    return None if value == _UNKNOWN else Status(value)


def statuses(key: str, names: Iterable[str]) -> dict[str, Status | None]:
    """Statuses of many names: one cache round trip and at most one query."""
    names = list(dict.fromkeys(names))
    remembered: dict[str, str] = {n: Status.REMOTE for n in names if on_remote(key, n)}
    found = dict(remembered)
    changed = _changed_here()
    ckeys = {
        _cache_key(key, name): name
        for name in names
        if name not in found and (key, name) not in changed
    }
    cache = _cache()
    if ckeys:
        found.update((ckeys[ck], v) for ck, v in cache.get_many(list(ckeys)).items())
    missing = [name for name in names if name not in found]
    if missing:
        from_db = dict(rows(key).filter(name__in=missing).values_list("name", "status"))
        remote = {}
        for name in missing:
            value = found[name] = from_db.get(name, _UNKNOWN)
            if (key, name) in changed:
                continue
            if value == Status.REMOTE:
                # Final until a delete, which updates the cache: set them
                # all in one round trip.
                remote[_cache_key(key, name)] = value
            else:
                # add, not set: a state change that raced with this read wins.
                cache.add(_cache_key(key, name), value, _timeout(value))
        if remote:
            cache.set_many(remote, None)
    for name, value in found.items():
        if value == Status.REMOTE and name not in remembered:
            _memorize(key, name, value)
    return {name: None if found[name] == _UNKNOWN else Status(found[name]) for name in names}


def knows(key: str, name: str) -> bool:
    return rows(key).filter(name=name).exists()


def derivatives(key: str, source: str) -> dict[str, str]:
    """``{variant: name}`` of the derivatives recorded for ``source``."""
    found = rows(key).filter(derived_from=source).values_list("variant", "name")
    return dict(found)


def source_of(key: str, name: str) -> str | None:
    """The name ``name`` was derived from, or None for an original (or an
    unknown name)."""
    found = rows(key).filter(name=name).values_list("derived_from", flat=True).first()
    return found or None


def inserts_if_absent() -> bool:
    """Whether the ledger's database can insert a row unless its name is
    taken, in one statement (PostgreSQL and SQLite: ON CONFLICT DO NOTHING).
    Then ``save`` need not ask the ledger for a free name beforehand."""
    return transaction.get_connection(db_alias()).vendor in ("postgresql", "sqlite")


def insert_if_absent(
    key: str,
    name: str,
    *,
    status: Status,
    size: int,
    checksum: str,
    host: str,
    **extra: Any,
) -> bool:
    """Record a file just written locally, unless the ledger already knows
    the name: True if recorded. One round trip, no error inside the
    caller's transaction. Needs ``inserts_if_absent()``."""
    stored = model()
    connection = transaction.get_connection(db_alias())
    now = timezone.now()
    values = {
        "storage_key": key,
        "name": name,
        "status": str(status),
        "size": size,
        "checksum": checksum,
        "host": host,
        "created_at": now,
        "updated_at": now,
        **extra,
    }
    fields = [f for f in stored._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(stored._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT DO NOTHING"
    )
    params = [
        f.get_db_prep_save(values[f.name] if f.name in values else f.get_default(), connection)
        for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = cursor.rowcount == 1
    if inserted:
        remember_on_commit(key, name, status)
    return inserted


def record_saved(
    key: str,
    name: str,
    *,
    status: Status,
    size: int,
    checksum: str,
    host: str,
    **extra: Any,
) -> StoredFile:
    """Record a file just written locally (inside the caller's transaction)."""
    row = rows(key).create(
        storage_key=key,
        name=name,
        status=status,
        size=size,
        checksum=checksum,
        host=host,
        **extra,
    )
    remember_on_commit(key, name, status)
    return row


def requeue(key: str, name: str, *, reset_attempts: bool) -> bool:
    """Mark a file QUEUED again unless it is on the remote. False if unknown
    or already remote."""
    changes: dict[str, Any] = {"status": Status.QUEUED, "updated_at": timezone.now()}
    if reset_attempts:
        changes["attempts"] = 0
    updated = rows(key).filter(name=name).exclude(status=Status.REMOTE).update(**changes)
    if updated:
        remember_on_commit(key, name, Status.QUEUED)
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
    _remember(key, name, Status.TRANSFERRING)
    return row


def _finish(row: StoredFile, **changes: Any) -> bool:
    """Apply ``changes`` if ``row`` is still the attempt we claimed."""
    changes["updated_at"] = timezone.now()
    updated = (
        rows(row.storage_key)
        .filter(pk=row.pk, status=Status.TRANSFERRING, attempts=row.attempts)
        .update(**changes)
    )
    if updated:
        _remember(row.storage_key, row.name, changes["status"])
    return bool(updated)


def mark_remote_write_started(row: StoredFile) -> None:
    """Record, before the first byte is written, that the remote file under
    ``row.name`` is about to be ours: a later attempt may then replace it."""
    if not row.remote_write_started:
        rows(row.storage_key).filter(pk=row.pk).update(remote_write_started=True)
        row.remote_write_started = True


def forget_remote_write(row: StoredFile) -> None:
    """Undo :func:`mark_remote_write_started`: the write did not happen, and
    the name on the remote may be another writer's."""
    if row.remote_write_started:
        rows(row.storage_key).filter(pk=row.pk).update(remote_write_started=False)
        row.remote_write_started = False


def mark_remote(row: StoredFile) -> bool:
    return _finish(row, status=Status.REMOTE, last_error="", transferred_at=timezone.now())


def mark_failed(row: StoredFile, error: str, *, final: bool) -> bool:
    status = Status.FAILED if final else Status.QUEUED
    return _finish(row, status=status, last_error=error[:4000])


def still_exists(row: StoredFile) -> bool:
    return rows(row.storage_key).filter(pk=row.pk).exists()


def delete(key: str, name: str) -> None:
    rows(key).filter(name=name).delete()
    remember_on_commit(key, name, None)
