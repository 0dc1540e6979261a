"""Every setting of storage_hooks, read when used through one typed object.

Settings live in one dict, ``settings.STORAGE_HOOKS``; ``conf.RETRIES`` is
its ``"RETRIES"`` key, or the default. The three settings of
django-queued-storage are honoured where that dict is silent. Nothing is read
at import time, so ``override_settings`` works everywhere.

Each setting is a property of :class:`Settings` with a precise type, so
callers need no casts; :mod:`storage_hooks.checks` refuses values of the
wrong type at ``manage.py check``, so the types hold in a checked project.
"""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

#: Every key of ``STORAGE_HOOKS`` and its default (documented on the
#: property of the same name below).
DEFAULTS: dict[str, Any] = {
    "RUNNER": "celery",
    "QUEUE": "storage_hooks",
    "RETRIES": 5,
    "RETRY_DELAY": 60,
    "RETRY_DELAY_MAX": 600,
    "CACHE": "default",
    "CACHE_PREFIX": "storage_hooks",
    "CACHE_TIMEOUT": 60,
    "LOG_CACHE_ERRORS_EVERY": 60,
    "MEMORY_SIZE": 10_000,
    "MEMORY_TIMEOUT": 30,
    "CONDITIONAL_WRITES": True,
    "PROOF": "auto",
    "STUCK_AFTER": 900,
    "HOST_QUEUES": False,
    "HOSTNAME": None,
    "DATABASE": None,
    "BATCH_SIZE": 50,
    "BATCH_THREADS": 8,
    "MULTIPART_UPLOADS": 1,
    "PUBLISH": "background",
}

#: django-queued-storage's names, used where ``STORAGE_HOOKS`` is silent.
LEGACY = {
    "RETRIES": "QUEUED_STORAGE_RETRIES",
    "RETRY_DELAY": "QUEUED_STORAGE_RETRY_DELAY",
    "CACHE_PREFIX": "QUEUED_STORAGE_CACHE_PREFIX",
}

#: The values ``PUBLISH`` accepts (:mod:`storage_hooks.runners.publisher`).
PUBLISHES = ("background", "inline")

#: The values ``PROOF`` accepts (the modes of :mod:`storage_hooks.proof`).
PROOFS = ("auto", "readback", "size")


class Settings:
    """The effective settings, one typed property per key.

    The merged values are kept until a setting changes (Django sends
    ``setting_changed`` for ``override_settings``), so reading one on a hot
    path such as ``url()`` costs a dict lookup.
    """

    def __init__(self) -> None:
        self._merged: dict[str, Any] | None = None

    # -- plumbing ------------------------------------------------------------

    @property
    def user_settings(self) -> dict[str, Any]:
        """``settings.STORAGE_HOOKS`` as given (``{}`` when missing or no
        dict: the checks report that as storage_hooks.E005)."""
        value = getattr(settings, "STORAGE_HOOKS", None) or {}
        return dict(value) if isinstance(value, dict) else {}

    def _merge(self) -> dict[str, Any]:
        merged = dict(DEFAULTS)
        for name, legacy in LEGACY.items():
            if hasattr(settings, legacy):
                merged[name] = getattr(settings, legacy)
        merged.update({k: v for k, v in self.user_settings.items() if k in DEFAULTS})
        self._merged = merged
        return merged

    def _get(self, name: str) -> Any:
        merged = self._merged if self._merged is not None else self._merge()
        return merged[name]

    def reset(self, **kwargs: Any) -> None:
        """Forget the merged values (connected to ``setting_changed``)."""
        if kwargs.get("setting") in (None, "STORAGE_HOOKS", *LEGACY.values()):
            self._merged = None

    def unknown_keys(self) -> list[str]:
        """Keys of ``STORAGE_HOOKS`` that mean nothing (typos)."""
        return sorted(set(self.user_settings) - set(DEFAULTS))

    # -- the settings ----------------------------------------------------------

    @property
    def RUNNER(self) -> str:
        """What runs the transfers: ``"celery"`` (default), ``"tasks"``
        (django.tasks), ``"immediate"`` (in the saving process, at commit),
        or a dotted path to a ``Runner`` subclass."""
        return self._get("RUNNER")

    @property
    def QUEUE(self) -> str:
        """The Celery queue, or django.tasks queue name, of the transfers.
        Default ``"storage_hooks"``."""
        return self._get("QUEUE")

    @property
    def RETRIES(self) -> int:
        """Retries after the first attempt: a file gets at most
        ``RETRIES + 1`` attempts. Default 5 (legacy: ``QUEUED_STORAGE_RETRIES``)."""
        return self._get("RETRIES")

    @property
    def RETRY_DELAY(self) -> float:
        """Seconds before the first retry; the delay doubles each attempt,
        with jitter. Default 60 (legacy: ``QUEUED_STORAGE_RETRY_DELAY``)."""
        return self._get("RETRY_DELAY")

    @property
    def RETRY_DELAY_MAX(self) -> float:
        """The longest delay between two attempts, in seconds. Default 600.
        Keep it below the broker's visibility timeout (Redis: one hour) and
        below ``STUCK_AFTER``, so a periodic ``retry`` does not cut short a
        back-off."""
        return self._get("RETRY_DELAY_MAX")

    @property
    def CACHE(self) -> str:
        """The alias of ``CACHES`` in front of the ledger. Default
        ``"default"``. With a runner other than ``"immediate"`` it must be
        shared by every process (Redis, Memcached, the database cache)."""
        return self._get("CACHE")

    @property
    def CACHE_PREFIX(self) -> str:
        """The prefix of this library's cache keys. Default
        ``"storage_hooks"`` (legacy: ``QUEUED_STORAGE_CACHE_PREFIX``)."""
        return self._get("CACHE_PREFIX")

    @property
    def CACHE_TIMEOUT(self) -> int:
        """Seconds a cached status of a file not yet on the remote is
        trusted. Default 60."""
        return self._get("CACHE_TIMEOUT")

    @property
    def LOG_CACHE_ERRORS_EVERY(self) -> float:
        """Seconds between two logged cache errors: while the cache server
        is down every answer comes from the ledger, and the log gets one line
        per this many seconds, not one per request. Default 60."""
        return self._get("LOG_CACHE_ERRORS_EVERY")

    @property
    def MEMORY_SIZE(self) -> int:
        """How many files each process remembers as transferred, so ``url()``
        of such a file costs no round trip. 0 turns it off. Default 10000."""
        return self._get("MEMORY_SIZE")

    @property
    def MEMORY_TIMEOUT(self) -> float:
        """Seconds a process remembers a file as transferred; a delete by
        another process shows here when the entry expires. Default 30."""
        return self._get("MEMORY_TIMEOUT")

    @property
    def CONDITIONAL_WRITES(self) -> bool | str:
        """S3 remotes: send ``If-None-Match: *`` so the remote refuses to
        overwrite a name another writer took meanwhile. ``True`` (default):
        the header and an existence check; ``"only"``: the header alone (one
        request fewer per file, for servers known to honour it); ``False``:
        the existence check alone."""
        return self._get("CONDITIONAL_WRITES")

    @property
    def PROOF(self) -> str:
        """How a transfer is proven before the file counts as remote:
        ``"auto"`` (default: the strongest proof the remote offers, e.g.
        S3's ChecksumSHA256, else a read-back), ``"readback"`` (the copy is
        read back and hashed), ``"size"`` (the remote size only: cheapest,
        weakest)."""
        return self._get("PROOF")

    @property
    def STUCK_AFTER(self) -> float:
        """Seconds without a ledger change after which ``storage_hooks
        retry`` re-queues a QUEUED or TRANSFERRING file. Default 900."""
        return self._get("STUCK_AFTER")

    @property
    def HOST_QUEUES(self) -> bool:
        """Route each transfer to a queue named for the host that saved the
        file (``"<QUEUE>.<host>"``), for web servers with their own disks.
        Default ``False``."""
        return self._get("HOST_QUEUES")

    @property
    def HOSTNAME(self) -> str | None:
        """The name this host records in the ledger for ``HOST_QUEUES``.
        Default ``None``: ``socket.gethostname()``."""
        return self._get("HOSTNAME")

    @property
    def DATABASE(self) -> str | None:
        """The database alias of the ledger. Default ``None``: what the
        database routers say."""
        return self._get("DATABASE")

    @property
    def BATCH_SIZE(self) -> int:
        """The most files one transfer message carries (Celery runner): the
        saves of one transaction are sent in messages of this many files.
        1 sends a message per file. Default 50."""
        return self._get("BATCH_SIZE")

    @property
    def BATCH_THREADS(self) -> int:
        """How many files of one message a worker transfers at once, each in
        a thread of its own (I/O bound: the threads wait on S3 and the
        database). Default 8."""
        return self._get("BATCH_THREADS")

    @property
    def MULTIPART_UPLOADS(self) -> int:
        """How many multipart uploads (big files) a worker process sends at
        once; each already sends its parts in parallel. The other big files
        of a batch wait for their turn (their small files do not), which
        passes on once an upload's last part is sent. 0: no limit. Default
        1."""
        return self._get("MULTIPART_UPLOADS")

    @property
    def PUBLISH(self) -> str:
        """Celery runner: who sends the transfer messages of a save.
        ``"background"`` (default): the process's publisher thread, after
        the request handed them over, grouping a burst of saves into batch
        messages; ``"inline"``: the committing request, before it goes on."""
        return self._get("PUBLISH")


conf = Settings()
setting_changed.connect(conf.reset)


def hostname() -> str:
    """The name this host records in the ledger (for host-affine queues)."""
    return conf.HOSTNAME or socket.gethostname()
