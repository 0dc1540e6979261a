"""Telling credentials apart from other storage options.

A ``QueuedStorage`` is deconstructible: its constructor arguments are
written into migrations (when a model field uses it) and into every pickle.
Credentials given as ``remote_options`` end up there in plain text; the
documented way is a ``STORAGES`` alias whose ``OPTIONS`` read them from the
environment. :func:`credential_options` finds them for ``manage.py check``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

#: Option names that hold a credential.
NAMES = frozenset(
    {
        "secret_key",
        "access_key",
        "password",
        "session_token",
        "security_token",
        "account_key",
        "connection_string",
        "sas_token",
    }
)
#: A name containing one of these words holds a credential too.
WORDS = ("secret", "password", "token", "credential", "access_key")


def is_credential_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in NAMES or any(word in lowered for word in WORDS)


def has_user_info(value: str) -> bool:
    """Whether a URL carries ``user[:password]@`` (endpoint credentials)."""
    if "://" not in value:
        return False
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    return bool(parts.username or parts.password)


def credential_options(value: Any, where: str = "", *, depth: int = 6) -> list[str]:
    """Where in ``value`` (a dict of options, a list, or a deconstructible
    object such as a Storage instance) a credential sits, e.g.
    ``["remote_options['secret_key']", "remote_options['endpoint_url']"]``.
    Empty values (``None``, ``""``) don't count."""
    if depth < 0:
        return []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}[{key!r}]" if where else str(key)
            if isinstance(key, str) and is_credential_name(key) and item not in (None, ""):
                found.append(path)
            else:
                found += credential_options(item, path, depth=depth - 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found += credential_options(item, f"{where}[{index}]", depth=depth - 1)
    elif isinstance(value, str):
        if has_user_info(value):
            found.append(f"{where} (user info in the URL)")
    elif not isinstance(value, type) and callable(getattr(value, "deconstruct", None)):
        try:
            _, args, kwargs = value.deconstruct()
        except Exception:  # not deconstructible after all: nothing written
            return []
        found += credential_options(list(args), f"{where}.args", depth=depth - 1)
        found += credential_options(dict(kwargs), where, depth=depth - 1)
    return found
