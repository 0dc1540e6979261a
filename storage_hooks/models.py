"""The ledger: one row per file saved through a QueuedStorage.

It is the source of truth for where a file is; the cache in front of it
(see :mod:`storage_hooks.ledger`) only spares queries.
"""

from __future__ import annotations

from django.db import models

from .names import KEY_MAX_LENGTH, NAME_MAX_LENGTH
from .status import Status


class StoredFile(models.Model):
    storage_key = models.CharField(max_length=KEY_MAX_LENGTH)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.LOCAL)
    size = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField("SHA-256", max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    failure = models.CharField(
        max_length=32,
        blank=True,
        help_text="The kind of the last failure (conflict, rejected, verification, ...): "
        "what a visitor may be told; last_error has the details.",
    )
    host = models.CharField(
        max_length=255, blank=True, help_text="The host that saved the file locally."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    transferred_at = models.DateTimeField(null=True, blank=True)
    remote_write_started = models.BooleanField(
        default=False,
        help_text="An attempt began writing the file to the remote, so a file found there "
        "under its name may be that attempt's unfinished copy (and may be replaced).",
    )
    remote_etag = models.CharField(
        max_length=255,
        blank=True,
        help_text="What identifies the copy this library wrote to the remote (S3: its ETag), "
        "so that only that copy is ever deleted.",
    )
    preprocessed = models.BooleanField(
        default=False,
        help_text="The storage's preprocessors ran on the file (they do not run again).",
    )
    derived_from = models.CharField(
        max_length=NAME_MAX_LENGTH,
        blank=True,
        help_text="For a derivative (a thumbnail), the name of the file it was made from.",
    )
    variant = models.CharField(
        max_length=64, blank=True, help_text="For a derivative, which one (a thumbnail's label)."
    )

    class Meta:
        verbose_name = "stored file"
        constraints = [
            models.UniqueConstraint(fields=["storage_key", "name"], name="storage_hooks_key_name")
        ]
        indexes = [
            models.Index(fields=["status", "updated_at"], name="storage_hooks_status_upd"),
            # Migration 0004 (built concurrently on PostgreSQL): what the
            # operations read on a ledger of millions of rows. Partial
            # indexes hold the few rows that are not REMOTE only.
            models.Index(
                fields=["status", "failure", "storage_key"],
                name="storage_hooks_attention",
                condition=models.Q(
                    status__in=["local", "queued", "transferring", "failed", "deleting", "lost"]
                ),
            ),
            models.Index(
                fields=["status", "updated_at"],
                name="storage_hooks_retry",
                condition=models.Q(status__in=["queued", "transferring"])
                | (models.Q(status="failed") & ~models.Q(failure="rejected")),
            ),
            models.Index(
                fields=["storage_key", "created_at"],
                name="storage_hooks_pending_age",
                condition=models.Q(status__in=["local", "queued", "transferring", "failed"]),
            ),
            models.Index(
                fields=["name"], name="storage_hooks_name_prefix", opclasses=["varchar_pattern_ops"]
            ),
            models.Index(
                fields=["storage_key", "derived_from"],
                name="storage_hooks_derived",
                condition=~models.Q(derived_from=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.storage_key}:{self.name} ({self.status})"
