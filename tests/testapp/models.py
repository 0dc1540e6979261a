from django.db import models

from storage_hooks.fields import QueuedFileField, QueuedImageField
from storage_hooks.storage import DelayedStorage, QueuedStorage

MEMORY = "django.core.files.storage.InMemoryStorage"

#: A storage built on a model field (not in STORAGES): found by its key.
field_storage = QueuedStorage(local=MEMORY, remote=MEMORY, key="testapp-documents")

#: A delayed one: files wait for ``.transfer()``.
draft_storage = DelayedStorage(MEMORY, MEMORY, key="testapp-drafts")


class Document(models.Model):
    file = QueuedFileField(storage=field_storage, upload_to="docs")

    def __str__(self) -> str:
        return self.file.name or ""


class Photo(models.Model):
    image = QueuedImageField(
        storage=field_storage, upload_to="photos", blank=True, width_field="width"
    )
    width = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.image.name or ""


class Draft(models.Model):
    file = QueuedFileField(storage=draft_storage, upload_to="drafts")

    def __str__(self) -> str:
        return self.file.name or ""
