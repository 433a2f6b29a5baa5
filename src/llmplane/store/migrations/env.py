"""Alembic environment: runs on the connection handed over by :func:`llmplane.store.migrate`."""

from __future__ import annotations

from alembic import context

from llmplane.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through llmplane.store.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
