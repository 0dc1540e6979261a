"""Reading the environment for settings.py: a few small, strict helpers.

The gallery runs with no environment at all (the demo defaults); each
``GALLERY_*`` variable swaps one part for a real service. A malformed value
stops the start with a message that names the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def env(name: str, default: str = "") -> str:
    """The variable's value, or ``default`` when it is unset or empty."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    value = env(name).strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be 1/0, true/false, yes/no or on/off, not {value!r}.")


def env_number(name: str, default: float) -> float:
    value = env(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, not {value!r}.")
    return number


def env_int(name: str, default: int) -> int:
    number = env_number(name, default)
    if number != int(number):
        raise ImproperlyConfigured(f"{name} must be a whole number, not {number!r}.")
    return int(number)


def database(url: str) -> dict[str, Any]:
    """A ``DATABASES`` entry from ``sqlite:///path`` or
    ``postgres://user:password@host:port/name``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path),
            # The web server and the worker write at the same time: wait for
            # the lock instead of failing, and let readers read meanwhile.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise ImproperlyConfigured(
        f"GALLERY_DATABASE_URL must start with sqlite:/// or postgres://, not {url!r}."
    )


def cache(url: str) -> dict[str, Any]:
    """A ``CACHES`` entry from ``file:///path`` or ``redis://host:port/db``.

    The cache must be shared by the web server and the worker: the ledger
    caches each file's status, and a per-process cache (LocMem) would keep
    showing a file as queued after the worker moved it.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        return {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": unquote(parts.path),
        }
    if parts.scheme in ("redis", "rediss"):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    raise ImproperlyConfigured(
        f"GALLERY_CACHE_URL must start with file:/// or redis://, not {url!r}."
    )


def folder(path: Path) -> Path:
    """``path``, created if missing."""
    path.mkdir(parents=True, exist_ok=True)
    return path
