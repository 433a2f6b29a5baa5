"""Persistence: tables, engines and Alembic migrations; the only package that speaks SQL."""

from llmplane.store.db import create_engine, migrate
from llmplane.store.tables import metadata, usage_ledger, virtual_keys

__all__ = ["create_engine", "metadata", "migrate", "usage_ledger", "virtual_keys"]
