"""Model fields whose files know their transfer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Model
from django.db.models.fields.files import FieldFile, FileField, ImageField, ImageFieldFile

from .status import Status
from .storage import QueuedStorage


class QueuedFileMixin:
    """What a file of a queued field adds: ``transfer()`` and ``status``."""

    name: str | None
    storage: Any

    def _queued_storage(self) -> Any:
        if not isinstance(self.storage, QueuedStorage):
            raise TypeError(
                f"The storage of this field is {type(self.storage).__name__}, not a "
                "QueuedStorage: there is nothing to transfer."
            )
        if not self.name:
            raise ValueError("This field has no file.")
        return self.storage

    def transfer(self) -> None:
        """Queue the transfer of this file (a delayed or failed one)."""
        self._queued_storage().transfer(self.name)

    @property
    def status(self) -> Status | None:
        """The file's ``Status``, or None when the ledger doesn't know it."""
        return self._queued_storage().status(self.name) if self.name else None


class QueuedFieldFile(QueuedFileMixin, FieldFile):
    pass


class QueuedImageFieldFile(QueuedFileMixin, ImageFieldFile):
    pass


class QueuedFileField(FileField):
    """A FileField whose files have ``.transfer()`` and ``.status``."""

    attr_class = QueuedFieldFile


class QueuedImageField(ImageField):
    """An ImageField whose files have ``.transfer()`` and ``.status``."""

    attr_class = QueuedImageFieldFile


#: django-queued-storage's name for QueuedFileField.
RemoteFileField = QueuedFileField


def prefetch_statuses(objects: Iterable[Model], *fields: str) -> None:
    """Look up, in one query per storage, where the files of ``fields`` on
    ``objects`` are, so that rendering their ``.url`` afterwards costs no
    query and no cache round trip (each process remembers files on the
    remote). For a page of images::

        photos = list(Photo.objects.all()[:100])
        prefetch_statuses(photos, "image")
    """
    objects = list(objects)
    by_storage: dict[int, tuple[Any, list[str]]] = {}
    for field_name in fields:
        for obj in objects:
            file = getattr(obj, field_name)
            if file and isinstance(file.storage, QueuedStorage):
                entry = by_storage.setdefault(id(file.storage), (file.storage, []))
                entry[1].append(file.name)
    for storage, names in by_storage.values():
        storage.statuses(names)


__all__ = ["QueuedFileField", "QueuedImageField", "RemoteFileField", "prefetch_statuses"]
