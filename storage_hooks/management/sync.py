"""Moved to :mod:`storage_hooks.ops.sync`; kept importable."""

from ..ops.sync import MIN_AGE, SyncReport, sized_listing, sync_storage, walk

__all__ = ["MIN_AGE", "SyncReport", "sized_listing", "sync_storage", "walk"]
