"""storage_hooks.E006: a QueuedStorage is used without the app installed.

This module imports nothing of storage_hooks, so any module may import it
to register the check: the storage and field modules do, and so does the
app's ``ready()``. Without the app in ``INSTALLED_APPS`` there is no
``ready()``: the check runs when a QueuedStorage (or a field, or the
package from settings) was imported before ``manage.py check`` runs. A
project that names ``storage_hooks`` only as a string in ``STORAGES`` and
builds it later, on a request, cannot be caught by a check; its first
save fails on the missing ledger table instead.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks

APP = "storage_hooks"


def _aliases() -> list[str]:
    """The STORAGES aliases whose backend is one of this library's."""
    entries = getattr(settings, "STORAGES", None) or {}
    return sorted(
        alias
        for alias, entry in entries.items()
        if isinstance(entry, dict) and str(entry.get("BACKEND", "")).startswith(f"{APP}.")
    )


@checks.register()
def check_installed(**kwargs: Any) -> list[checks.CheckMessage]:
    """E006 when the app is not installed (the ledger is one of its tables)."""
    if apps.is_installed(APP):
        return []
    aliases = _aliases()
    where = f" (STORAGES: {', '.join(map(repr, aliases))})" if aliases else ""
    return [
        checks.Error(
            f"QueuedStorage is used{where} but {APP!r} is not in INSTALLED_APPS.",
            hint=f"Add {APP!r} to INSTALLED_APPS and run 'manage.py migrate': the ledger "
            "is a table of this app.",
            id="storage_hooks.E006",
        )
    ]
