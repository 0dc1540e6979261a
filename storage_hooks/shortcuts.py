"""The shortcuts of django-queued-storage, as thin QueuedStorage subclasses.

Import them from ``storage_hooks.storage``; that is also the path written
into migrations.
"""

from __future__ import annotations

from typing import Any

from django.utils.deconstruct import deconstructible

from .storage import QueuedStorage

#: The same class as QueuedStorage, under django-queued-storage's name.
QueuedRemoteStorage = QueuedStorage


@deconstructible(path="storage_hooks.storage.QueuedFileSystemStorage")
class QueuedFileSystemStorage(QueuedStorage):
    """Local is a ``FileSystemStorage``; say only where files go."""

    def __init__(self, remote: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("local", "django.core.files.storage.FileSystemStorage")
        super().__init__(remote=remote, **kwargs)


@deconstructible(path="storage_hooks.storage.DoubleFilesystemStorage")
class DoubleFilesystemStorage(QueuedStorage):
    """Both sides are ``FileSystemStorage`` (give each a ``location``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("local", "django.core.files.storage.FileSystemStorage")
        kwargs.setdefault("remote", "django.core.files.storage.FileSystemStorage")
        super().__init__(**kwargs)


@deconstructible(path="storage_hooks.storage.S3Storage")
class S3Storage(QueuedStorage):
    """Local ``FileSystemStorage``, remote django-storages' ``S3Storage``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("local", "django.core.files.storage.FileSystemStorage")
        kwargs.setdefault("remote", "storages.backends.s3.S3Storage")
        super().__init__(**kwargs)


@deconstructible(path="storage_hooks.storage.DelayedStorage")
class DelayedStorage(QueuedStorage):
    """Nothing is queued on save; ``transfer(name)`` queues a file."""

    def __init__(self, local: Any = None, remote: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("delayed", True)
        super().__init__(local, remote, **kwargs)
