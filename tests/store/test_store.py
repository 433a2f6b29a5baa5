"""Migrations run on SQLite and PostgreSQL and are idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

import llmplane.store
from llmplane.store import metadata, migrate

_SCRIPTS = ScriptDirectory(str(Path(llmplane.store.__file__).parent / "migrations"))


def test_migration_creates_tables_and_indexes(engine: Engine) -> None:
    inspector = inspect(engine)
    assert {
        "virtual_keys",
        "usage_ledger",
        "usage_rollups",
        "teams",
        "services",
        "budgets",
        "audit_log",
        "budget_alerts",
        "changes",
        "config_fingerprints",
        "incidents",
    } <= set(inspector.get_table_names())
    indexes = {i["name"] for i in inspector.get_indexes("usage_ledger")}
    assert {"ix_usage_ledger_created_at", "ix_usage_ledger_key_created"} <= indexes
    rollup_indexes = {i["name"] for i in inspector.get_indexes("usage_rollups")}
    assert {
        "ix_usage_rollups_day_team",
        "ix_usage_rollups_day_service",
        "ix_usage_rollups_day_key",
    } <= rollup_indexes


def test_migrating_twice_is_harmless(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        assert (
            connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            == _SCRIPTS.get_current_head()
        )


def test_migrations_match_the_table_definitions(engine: Engine) -> None:
    with engine.connect() as connection:
        drift = compare_metadata(MigrationContext.configure(connection), metadata)
    assert drift == []
