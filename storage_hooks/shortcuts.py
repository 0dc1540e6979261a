"""The shortcuts of django-queued-storage. They are defined in
:mod:`storage_hooks.storage` (their import path, also written into
migrations); this module only names them together."""

from __future__ import annotations

from .storage import (
    DelayedStorage,
    DoubleFilesystemStorage,
    QueuedFileSystemStorage,
    QueuedRemoteStorage,
    S3Storage,
)

__all__ = [
    "DelayedStorage",
    "DoubleFilesystemStorage",
    "QueuedFileSystemStorage",
    "QueuedRemoteStorage",
    "S3Storage",
]
