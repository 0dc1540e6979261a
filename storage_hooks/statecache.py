"""The accelerator in front of the ledger: a Django cache shared by every
process, and a small memory in each process of the files on the remote.

Nothing here is a source of truth. A miss, a flushed cache or a cache server
that cannot be reached only costs a query: every cache error is logged (at
most once per ``LOG_CACHE_ERRORS_EVERY`` seconds) and answered as a miss.

What a transaction changed is published to the cache only when it commits;
until then reads of those names in that transaction skip the cache (they
must see the uncommitted change, which other processes must not).

A new row (a save) needs no entry of its own: what the cache may hold for
its name from before (nothing, or "unknown name") sends reads to the local
copy, where the new file is. That stale entry only has to go, and it does
not have to go before the request returns: where the Celery runner
publishes in the background, the publisher thread deletes it
(:func:`drop_later`). A delete cannot put a stale value in the cache, so it
needs no order with the worker's changes or this process's own; until it
is done, this process reads those names from the ledger.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.core.cache import caches
from django.db import transaction

from .conf import conf
from .status import Status

logger = logging.getLogger("storage_hooks")

T = TypeVar("T")

#: Cached for names the ledger does not know.
UNKNOWN = "-"

_errors_lock = threading.Lock()
_last_error_logged = 0.0
_local = threading.local()


def _log_error(action: str, exc: BaseException) -> None:
    global _last_error_logged
    every = float(conf.LOG_CACHE_ERRORS_EVERY or 0)
    now = time.monotonic()
    with _errors_lock:
        if now - _last_error_logged < every and _last_error_logged:
            return
        _last_error_logged = now
    logger.warning(
        "The cache %r failed (%s: %s: %s); answering from the ledger. (Logged at most once "
        "every %gs.)",
        conf.CACHE,
        action,
        type(exc).__name__,
        exc,
        every,
    )


def _safely(action: str, call: Callable[[], T], default: T) -> T:
    try:
        return call()
    except Exception as exc:  # the cache is an accelerator: any failure is a miss
        _log_error(action, exc)
        return default


def _cache() -> Any:
    return caches[conf.CACHE]


def cache_key(key: str, name: str) -> str:
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    return f"{conf.CACHE_PREFIX}:{key}:{digest}"


def timeout(value: str) -> int | None:
    # A file on the remote stays there until deleted, which publishes the
    # change; the other states change behind a process's back, so they are
    # trusted briefly.
    return None if value == Status.REMOTE else int(conf.CACHE_TIMEOUT)


# -- this process's memory of files on the remote ---------------------------


class RemoteMemory:
    """A bounded set of ``(key, name)`` seen on the remote, each entry
    trusted for ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float) -> None:
        self.size, self.ttl = size, ttl
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, item: tuple[str, str]) -> bool:
        with self._lock:
            seen = self._seen.get(item)
            if seen is None:
                return False
            if time.monotonic() - seen >= self.ttl:
                del self._seen[item]
                return False
            self._seen.move_to_end(item)
            return True

    def add(self, item: tuple[str, str]) -> None:
        with self._lock:
            self._seen[item] = time.monotonic()
            self._seen.move_to_end(item)
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)

    def discard(self, item: tuple[str, str]) -> None:
        with self._lock:
            self._seen.pop(item, None)


_memory: RemoteMemory | None = None


def memory() -> RemoteMemory | None:
    """This process's memory of files on the remote (None when disabled)."""
    global _memory
    size, ttl = int(conf.MEMORY_SIZE), float(conf.MEMORY_TIMEOUT)
    if size <= 0 or ttl <= 0:
        return None
    found = _memory
    if found is None or found.size != size or found.ttl != ttl:
        found = _memory = RemoteMemory(size, ttl)
    return found


def memorize(key: str, name: str, value: str | None) -> None:
    found = memory()
    if found is None:
        return
    if value == Status.REMOTE:
        found.add((key, name))
    else:
        found.discard((key, name))


def remembers_remote(key: str, name: str) -> bool:
    found = memory()
    return found is not None and (key, name) in found


def clear_memory() -> None:
    """Forget everything this process remembers (tests; after a restore)."""
    global _memory
    _memory = None


# -- names changed by the current transaction --------------------------------


def _changed(using: str) -> set[tuple[str, str]]:
    """The names the current transaction of ``using`` changed. Outside a
    transaction the set is emptied: what a rolled-back transaction left in
    it is forgotten then (until that, those names only skip the cache)."""
    per_db: dict[str, set[tuple[str, str]]] = _local.__dict__.setdefault("changed", {})
    changed = per_db.setdefault(using, set())
    if changed and transaction.get_autocommit(using):
        changed.clear()
    return changed


def changed_here(key: str, name: str, using: str) -> bool:
    """Whether reads of ``name`` must skip the cache here: the current
    transaction changed it, or its entry waits for the publisher thread."""
    return (key, name) in _changed(using) or holds(key, name)


def publish_on_commit(
    key: str, name: str, status: str | None, using: str, *, new: bool = False
) -> None:
    """Publish a change of ``name`` to the cache once it commits (at once
    in autocommit). The entry of a ``new`` row waiting for its transfer is
    handed to the runner's publisher thread where there is one (see the
    module's text)."""
    memorize(key, name, None)
    if not transaction.get_autocommit(using):
        _changed(using).add((key, name))

    def publish() -> None:
        _changed(using).discard((key, name))
        if not (new and status == Status.QUEUED and _dropped_later(key, name)):
            publish_now(key, name, status)

    transaction.on_commit(publish, using=using)


def publish_many_on_commit(
    key_name_status_items: Iterable[tuple[str, str, str | None]], using: str
) -> None:
    """:func:`publish_on_commit` for many names: one ``set_many`` per
    timeout once the transaction commits (one round trip for a chunk of
    re-queued files), errors tolerated as every cache call's."""
    items = [(key, name, status or UNKNOWN) for key, name, status in key_name_status_items]
    if not items:
        return
    in_transaction = not transaction.get_autocommit(using)
    for key, name, _ in items:
        memorize(key, name, None)
        if in_transaction:
            _changed(using).add((key, name))

    def publish() -> None:
        changed = _changed(using)
        for key, name, _ in items:
            changed.discard((key, name))
        publish_many_now(items)

    transaction.on_commit(publish, using=using)


def publish_many_now(key_name_status_items: Iterable[tuple[str, str, str | None]]) -> None:
    """:func:`publish_now` for many names: one ``set_many`` per timeout
    (one round trip for the files of a batch claimed or recorded at once)."""
    by_timeout: dict[int | None, dict[str, str]] = {}
    for key, name, status in key_name_status_items:
        value = status or UNKNOWN
        memorize(key, name, value)
        by_timeout.setdefault(timeout(value), {})[cache_key(key, name)] = value
    for seconds, values in by_timeout.items():
        _set_many(values, seconds)


def _set_many(values: dict[str, str], seconds: int | None) -> None:
    _safely("set_many", lambda: _cache().set_many(values, seconds), None)


def publish_now(key: str, name: str, status: str | None) -> None:
    value = status or UNKNOWN
    memorize(key, name, value)
    _safely("set", lambda: _cache().set(cache_key(key, name), value, timeout(value)), None)


# -- stale entries of new rows, deleted by the publisher thread ---------------


class _Dropping:
    """The entries this process handed to its publisher thread to delete:
    waiting (``names``) and being deleted right now (``busy``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.names: set[tuple[str, str]] = set()
        self.busy: set[tuple[str, str]] = set()


_dropping = _Dropping()

if hasattr(os, "register_at_fork"):  # a forked child's parent deletes those
    os.register_at_fork(after_in_child=lambda: _dropping.__init__())  # type: ignore[misc]


def _dropped_later(key: str, name: str) -> bool:
    """Hand the entry of ``name`` to the runner's publisher thread to be
    deleted; False (nothing handed over) where there is no such thread."""
    try:
        from .runners import get_runner

        publisher = get_runner().background()
    except Exception:  # a broken RUNNER is reported where the message is sent
        return False
    if publisher is None:
        return False
    drop_later([(key, name)], publisher.wake)
    return True


def drop_later(key_names: Iterable[tuple[str, str]], wake: Callable[[], None]) -> None:
    """Have the publisher thread delete the entries of ``key_names`` (it
    runs :func:`drop_held` when ``wake`` is called). Until it has, this
    process reads those names from the ledger."""
    with _dropping.lock:
        _dropping.names.update(key_names)
    try:
        wake()
    except Exception:  # no thread (none can be started): delete them here
        drop_held()


def holds(key: str, name: str) -> bool:
    """Whether ``name``'s entry waits for the publisher thread to delete it
    (this process then reads the ledger, not the cache)."""
    if not (_dropping.names or _dropping.busy):
        return False
    with _dropping.lock:
        return (key, name) in _dropping.names or (key, name) in _dropping.busy


def drop_held() -> None:
    """Delete the entries handed over so far, in one round trip (the
    publisher thread calls this before each message it sends)."""
    with _dropping.lock:
        # busy first: a name is in one of the two sets at every moment.
        _dropping.busy.update(_dropping.names)
        taken, _dropping.names = _dropping.names, set()
    if not taken:
        return
    try:
        keys = [cache_key(key, name) for key, name in taken]
        _safely("delete_many", lambda: _cache().delete_many(keys), None)
    finally:
        with _dropping.lock:
            _dropping.busy.difference_update(taken)


# -- reads -------------------------------------------------------------------


def get(key: str, name: str) -> str | None:
    """The cached value for ``name`` (a status or ``UNKNOWN``), or None."""
    if remembers_remote(key, name):
        return str(Status.REMOTE)
    value = _safely("get", lambda: _cache().get(cache_key(key, name)), None)
    if value == Status.REMOTE:
        memorize(key, name, value)
    return value


def get_many(key: str, names: Iterable[str]) -> dict[str, str]:
    names = list(names)
    found = {name: str(Status.REMOTE) for name in names if remembers_remote(key, name)}
    wanted = {cache_key(key, name): name for name in names if name not in found}
    if wanted:
        empty: dict[str, str] = {}
        cached = _safely("get_many", lambda: dict(_cache().get_many(list(wanted))), empty)
        found.update((wanted[ck], value) for ck, value in cached.items())
    return found


def _add(ck: str, value: str) -> None:
    _safely("add", lambda: _cache().add(ck, value, timeout(value)), None)


def fill(key: str, values: dict[str, str]) -> None:
    """Cache what was just read from the ledger (``add``: a change that
    raced with the read and was published meanwhile wins)."""
    remote = {cache_key(key, n): v for n, v in values.items() if v == Status.REMOTE}
    for name, value in values.items():
        memorize(key, name, value)
        if value != Status.REMOTE:
            _add(cache_key(key, name), value)
    if remote:
        # Final until a delete, which publishes the change: one round trip.
        _safely("set_many", lambda: _cache().set_many(remote, None), None)
