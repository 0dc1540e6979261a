"""Health of the ledger: kept importable for projects that call these
functions; the operations live in :mod:`storage_hooks.ops`, one module
each::

    from storage_hooks.maintenance import retry_stuck

    report = retry_stuck()          # what `manage.py storage_hooks retry` does
"""

from .ops.common import CHUNK, SCHEMA, StorageFinder, Tick, chunks
from .ops.retry import RetryReport, retry_stuck
from .ops.status import status_summary
from .status import PENDING_STATES as PENDING

__all__ = [
    "CHUNK",
    "PENDING",
    "SCHEMA",
    "RetryReport",
    "StorageFinder",
    "Tick",
    "chunks",
    "retry_stuck",
    "status_summary",
]
