"""Migration 0004: the operations' indexes, built without locking a big
ledger on PostgreSQL."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection, connections
from django.db.migrations.loader import MigrationLoader

from storage_hooks.models import StoredFile
from storage_hooks.ops.indexes import AddIndexSafely

migration = importlib.import_module("storage_hooks.migrations.0004_ops_indexes").Migration


def sql_of(operation: AddIndexSafely, backwards: bool = False, using: str = "default") -> str:
    database = connections[using]
    state = MigrationLoader(database).project_state(("storage_hooks", "0003_ledger_round2"))
    after = state.clone()
    operation.state_forwards("storage_hooks", after)
    with database.schema_editor(collect_sql=True, atomic=False) as editor:
        if backwards:
            operation.database_backwards("storage_hooks", editor, after, state)
        else:
            operation.database_forwards("storage_hooks", editor, state, after)
    return "\n".join(editor.collected_sql)


def test_the_migration_is_not_atomic_and_adds_every_index_of_the_model() -> None:
    assert migration.atomic is False
    assert all(isinstance(op, AddIndexSafely) for op in migration.operations)
    added = {op.index.name for op in migration.operations}
    assert added <= {index.name for index in StoredFile._meta.indexes}
    assert "storage_hooks_derived" in added


@pytest.mark.django_db(transaction=True)  # CONCURRENTLY runs outside transactions
@pytest.mark.parametrize("backwards", [False, True])
def test_indexes_are_built_concurrently_on_postgresql_only(backwards: bool) -> None:
    sql = sql_of(migration.operations[0], backwards=backwards)
    assert "storage_hooks_attention" in sql
    if connection.vendor == "postgresql":
        assert "CONCURRENTLY" in sql
    else:
        assert "CONCURRENTLY" not in sql


@pytest.mark.django_db
def test_the_indexes_exist_after_migrate() -> None:
    with connection.cursor() as cursor:
        indexes = connection.introspection.get_constraints(cursor, StoredFile._meta.db_table)
    for name in (
        "storage_hooks_attention",
        "storage_hooks_retry",
        "storage_hooks_pending_age",
        "storage_hooks_name_prefix",
        "storage_hooks_derived",
    ):
        assert name in indexes


@pytest.mark.django_db(transaction=True, databases=["default", "ops_pg"])
@pytest.mark.usefixtures("ops_pg")
@pytest.mark.parametrize("backwards", [False, True])
def test_a_postgresql_database_gets_its_indexes_concurrently(backwards: bool) -> None:
    sql = sql_of(migration.operations[0], backwards=backwards, using="ops_pg")
    assert "storage_hooks_attention" in sql
    assert "CONCURRENTLY" in sql
