"""Indexes for the operations on a big ledger (status, retry, the admin).

Not atomic: on PostgreSQL each index is built ``CONCURRENTLY``, so writes
to the ledger go on while it is built (it takes longer, and cannot run in a
transaction). If a concurrent build fails, PostgreSQL leaves an INVALID
index behind: drop it (``DROP INDEX CONCURRENTLY <name>``) and migrate again.
"""

from django.db import migrations, models

from storage_hooks.ops.indexes import AddIndexSafely


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("storage_hooks", "0003_ledger_round2"),
    ]

    operations = [
        AddIndexSafely(
            model_name="storedfile",
            index=models.Index(
                condition=models.Q(
                    status__in=["local", "queued", "transferring", "failed", "deleting", "lost"]
                ),
                fields=["status", "failure", "storage_key"],
                name="storage_hooks_attention",
            ),
        ),
        AddIndexSafely(
            model_name="storedfile",
            index=models.Index(
                condition=models.Q(status__in=["queued", "transferring"])
                | (models.Q(status="failed") & ~models.Q(failure="rejected")),
                fields=["status", "updated_at"],
                name="storage_hooks_retry",
            ),
        ),
        AddIndexSafely(
            model_name="storedfile",
            index=models.Index(
                condition=models.Q(status__in=["local", "queued", "transferring", "failed"]),
                fields=["storage_key", "created_at"],
                name="storage_hooks_pending_age",
            ),
        ),
        AddIndexSafely(
            model_name="storedfile",
            index=models.Index(
                fields=["name"], name="storage_hooks_name_prefix", opclasses=["varchar_pattern_ops"]
            ),
        ),
        AddIndexSafely(
            model_name="storedfile",
            index=models.Index(
                condition=~models.Q(derived_from=""),
                fields=["storage_key", "derived_from"],
                name="storage_hooks_derived",
            ),
        ),
    ]
