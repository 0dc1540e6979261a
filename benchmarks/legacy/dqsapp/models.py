"""The upload model, with django-queued-storage and with plain files."""

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from queued_storage.backends import QueuedStorage

queued = QueuedStorage(
    local="django.core.files.storage.FileSystemStorage",
    remote="storages.backends.s3boto3.S3Boto3Storage",
    local_options=settings.LOCAL,
    remote_options=settings.S3,
)
plain = FileSystemStorage(**settings.PLAIN)


class QueuedUpload(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(storage=queued, upload_to="uploads", max_length=300)

    def __str__(self) -> str:
        return self.title


class PlainUpload(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(storage=plain, upload_to="uploads", max_length=300)

    def __str__(self) -> str:
        return self.title
