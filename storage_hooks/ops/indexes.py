"""Adding indexes to a big ledger without locking it.

``CREATE INDEX`` blocks every write to the table while it runs: minutes on
a ledger of millions of rows. PostgreSQL can build an index
``CONCURRENTLY`` (writes go on; the build takes longer and must run outside
a transaction). :class:`AddIndexSafely` does that on PostgreSQL and a plain
``AddIndex`` elsewhere, so the app does not need ``django.contrib.postgres``
in ``INSTALLED_APPS``. Use it in a migration with ``atomic = False``.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _concurrent(schema_editor: Any) -> bool:
    return bool(schema_editor.connection.vendor == "postgresql")


class AddIndexSafely(migrations.AddIndex):
    """``AddIndexConcurrently`` on PostgreSQL, ``AddIndex`` elsewhere."""

    def describe(self) -> str:
        return f"{super().describe()} (concurrently on PostgreSQL)"

    def _postgres(self) -> Any:
        # Imported only on PostgreSQL: the module needs psycopg.
        from django.contrib.postgres.operations import AddIndexConcurrently

        return AddIndexConcurrently(self.model_name, self.index)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if _concurrent(schema_editor):
            self._postgres().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if _concurrent(schema_editor):
            self._postgres().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
