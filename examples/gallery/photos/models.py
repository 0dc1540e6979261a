"""A photo (a QueuedImageField) and the lifecycle events of its files."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.db import models
from django.utils import timezone

from storage_hooks.errors import public_message
from storage_hooks.fields import QueuedImageField
from storage_hooks.hooks import Thumbnails
from storage_hooks.models import StoredFile
from storage_hooks.storage import QueuedStorage


def photo_storage() -> QueuedStorage:
    """The QueuedStorage of ``STORAGES["photos"]``.

    A callable keeps the configuration in settings (and out of migrations):
    the same model runs against moto in the demo and Amazon S3 elsewhere.
    """
    storage = storages["photos"]
    if not isinstance(storage, QueuedStorage):
        raise ImproperlyConfigured("STORAGES['photos'] must be a storage_hooks.QueuedStorage.")
    return storage


class Photo(models.Model):
    title = models.CharField(max_length=200, blank=True)
    image = QueuedImageField(
        storage=photo_storage,
        upload_to="photos/%Y/%m/",
        max_length=255,
        width_field="width",
        height_field="height",
    )
    width = models.PositiveIntegerField(null=True, editable=False)
    height = models.PositiveIntegerField(null=True, editable=False)
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-uploaded_at", "-pk"]

    def __str__(self) -> str:
        return self.title or self.image.name

    @property
    def thumbnail_names(self) -> list[str]:
        """The names of this photo's thumbnails (they exist once its first
        transfer has started): see :func:`thumbnails_of`."""
        return thumbnails_of([self.image.name])[self.image.name]

    @property
    def file_names(self) -> list[str]:
        """Every file of this photo in the storage: the original first."""
        return [self.image.name, *self.thumbnail_names]


def thumbnails_of(names: list[str]) -> dict[str, list[str]]:
    """The thumbnails of each original in ``names``, with one query: the
    ledger records which file each derivative was made from. For an
    original with none recorded (not transferred yet), the names the
    Thumbnails hook would give them."""
    storage = photo_storage()
    found: dict[str, list[str]] = {name: [] for name in names}
    rows = StoredFile.objects.filter(storage_key=storage.key, derived_from__in=names)
    for source, name in rows.order_by("variant").values_list("derived_from", "name"):
        found[source].append(name)
    hooks = [hook for hook in storage.hooks if isinstance(hook, Thumbnails)]
    for name, thumbnails in found.items():
        if not thumbnails:
            thumbnails += [
                hook.thumbnail_name(name, label) for hook in hooks for label in hook.sizes
            ]
    return found


class Event(models.Model):
    """One lifecycle signal, as a receiver in photos/receivers.py saw it."""

    class Kind(models.TextChoices):
        SAVED_LOCALLY = "saved_locally", "saved locally"
        TRANSFER_QUEUED = "transfer_queued", "transfer queued"
        TRANSFER_STARTED = "transfer_started", "transfer started"
        TRANSFERRED = "transferred", "transferred"
        TRANSFER_FAILED = "transfer_failed", "transfer failed"
        LOCAL_DELETED = "local_deleted", "local copy deleted"
        #: Not a signal: the transferred file is smaller than the upload,
        #: because StripMetadata removed its EXIF/XMP/IPTC data.
        METADATA_STRIPPED = "metadata_stripped", "metadata stripped"

    time = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    name = models.CharField("file", max_length=1024, db_index=True)
    process = models.CharField(max_length=100, help_text="Where the receiver ran.")
    attempt = models.PositiveIntegerField(null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True, help_text="Seconds the copy took.")
    error = models.TextField(
        blank=True, help_text="The error's text (redacted), for staff: the admin shows it."
    )
    failure = models.CharField(
        max_length=32, blank=True, help_text="The failure's kind: what visitors are told."
    )
    note = models.CharField(max_length=200, blank=True)
    will_retry = models.BooleanField(null=True, blank=True)

    class Meta:
        # Time order: the web server and the worker record events side by
        # side, and an event recorded inside a transaction gets its id
        # before events that commit earlier.
        ordering = ["time", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def public_error(self) -> str:
        """What a visitor may read about this event's failure."""
        return public_message(self.failure) if self.kind == self.Kind.TRANSFER_FAILED else ""
