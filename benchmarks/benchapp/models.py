"""One model per storage, so one request saves a row and its file."""

from django.core.files.storage import Storage, storages
from django.db import models


def plain() -> Storage:
    return storages["default"]


def queued() -> Storage:
    return storages["queued"]


def s3() -> Storage:
    return storages["s3"]


class PlainUpload(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(storage=plain, upload_to="uploads", max_length=300)

    def __str__(self) -> str:
        return self.title


class QueuedUpload(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(storage=queued, upload_to="uploads", max_length=300)

    def __str__(self) -> str:
        return self.title


class S3Upload(models.Model):
    title = models.CharField(max_length=200)
    file = models.FileField(storage=s3, upload_to="uploads", max_length=300)

    def __str__(self) -> str:
        return self.title
