"""Every setting of storage_hooks, read when used through one object.

Settings live in one dict, ``settings.STORAGE_HOOKS``. The three settings of
django-queued-storage are honoured where that dict is silent. Nothing is read at
import time, so ``override_settings`` works everywhere.
"""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # "celery", "tasks", "immediate", or a dotted path to a Runner class.
    "RUNNER": "celery",
    # Queue (Celery) or queue name (django.tasks) the transfers go to.
    "QUEUE": "storage_hooks",
    # Retries after the first attempt: at most RETRIES + 1 attempts.
    "RETRIES": 5,
    # First retry delay in seconds; it doubles each attempt, with jitter.
    "RETRY_DELAY": 60,
    # The longest delay between two attempts. Keep it below the broker's
    # visibility timeout (Redis' default is one hour) and below STUCK_AFTER,
    # so a periodic `retry` does not cut short a back-off.
    "RETRY_DELAY_MAX": 600,
    # Cache alias in front of the ledger, and the prefix of its keys.
    "CACHE": "default",
    "CACHE_PREFIX": "storage_hooks",
    # Seconds a cached answer for a file not yet on the remote is trusted.
    "CACHE_TIMEOUT": 60,
    # Each process remembers up to MEMORY_SIZE files it saw on the remote,
    # for MEMORY_TIMEOUT seconds, so url() of a transferred file costs no
    # round trip. 0 turns it off. A delete by another process shows here
    # when the entry expires.
    "MEMORY_SIZE": 10_000,
    "MEMORY_TIMEOUT": 30,
    # S3 remotes: send "If-None-Match: *" so the remote refuses to overwrite
    # a name another writer took meanwhile. True: header and existence check;
    # "only": the header replaces the check (one request fewer per file;
    # for servers known to honour it); False: existence check only.
    "CONDITIONAL_WRITES": True,
    # Seconds without a ledger change after which `retry` re-queues a
    # QUEUED or TRANSFERRING file.
    "STUCK_AFTER": 900,
    # Route each transfer to a queue named for the host that saved the file
    # ("<QUEUE>.<host>"), for web servers with their own local disks.
    "HOST_QUEUES": False,
    # The name recorded for this host when HOST_QUEUES is on (default:
    # socket.gethostname()).
    "HOSTNAME": None,
    # Database alias of the ledger (default: what the routers say).
    "DATABASE": None,
    # How a transfer is proven: "auto", "readback" or "size" (storage_hooks.proof).
    "PROOF": "auto",
    # Seconds between two logged cache errors (the cache is only an accelerator).
    "LOG_CACHE_ERRORS_EVERY": 60,
}

LEGACY = {
    "RETRIES": "QUEUED_STORAGE_RETRIES",
    "RETRY_DELAY": "QUEUED_STORAGE_RETRY_DELAY",
    "CACHE_PREFIX": "QUEUED_STORAGE_CACHE_PREFIX",
}


class Settings:
    """Attribute access to the effective settings (``conf.RETRIES``).

    The merged values are kept until a setting changes (Django sends
    ``setting_changed`` for ``override_settings``), so reading one on a hot
    path such as ``url()`` costs a dict lookup.
    """

    def __init__(self) -> None:
        self._merged: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
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

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(name)
        merged = self._merged if self._merged is not None else self._merge()
        return merged[name]

    def reset(self, **kwargs: Any) -> None:
        """Forget the merged values (connected to ``setting_changed``)."""
        if kwargs.get("setting") in (None, "STORAGE_HOOKS", *LEGACY.values()):
            self._merged = None

    def unknown_keys(self) -> list[str]:
        """Keys of ``STORAGE_HOOKS`` that mean nothing (typos)."""
        return sorted(set(self.user_settings) - set(DEFAULTS))


conf = Settings()
setting_changed.connect(conf.reset)


def hostname() -> str:
    """The name this host records in the ledger (for host-affine queues)."""
    return conf.HOSTNAME or socket.gethostname()
