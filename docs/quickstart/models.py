# uploads/models.py
from django.db import models

from storage_hooks.fields import QueuedFileField


class Document(models.Model):
    file = QueuedFileField(upload_to="documents/")

    def __str__(self) -> str:
        return self.file.name
