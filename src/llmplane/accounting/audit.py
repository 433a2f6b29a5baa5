"""The append-only audit log: who changed what, from what, to what, and when.

Every admin write records its entry in the same transaction as the change, so
there is no change without its entry and no entry without its change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection, Engine

from llmplane.store.tables import audit_log


def record_audit(
    connection: Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Append one entry inside the caller's transaction."""
    connection.execute(
        insert(audit_log).values(
            created_at=datetime.now(UTC),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
        )
    )


def list_audit(
    engine: Engine, *, limit: int = 100, object_type: str | None = None
) -> list[dict[str, Any]]:
    """The newest entries first."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if object_type is not None:
        query = query.where(audit_log.c.object_type == object_type)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        {
            "id": row["id"],
            "at": (
                row["created_at"].replace(tzinfo=UTC)
                if row["created_at"].tzinfo is None
                else row["created_at"]
            ).isoformat(),
            "actor": row["actor"],
            "action": row["action"],
            "object_type": row["object_type"],
            "object_id": row["object_id"],
            "before": row["before"],
            "after": row["after"],
        }
        for row in rows
    ]
