"""storage_hooks: Django storage with a queue behind it.

Save to a local storage at once; a background worker transfers each file
to a remote storage (S3 and friends). The documentation is in docs/ (a
Sphinx site: ``make docs``).
"""

from __future__ import annotations

from typing import Any

from . import signals
from .status import Status

__all__ = ["FallbackStorage", "QueuedStorage", "Status", "signals"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Storages are imported on first use so that importing the package
    # (e.g. from settings) loads no model code.
    if name == "QueuedStorage":
        from .storage import QueuedStorage

        return QueuedStorage
    if name == "FallbackStorage":
        from .fallback import FallbackStorage

        return FallbackStorage
    raise AttributeError(f"module 'storage_hooks' has no attribute {name!r}")
