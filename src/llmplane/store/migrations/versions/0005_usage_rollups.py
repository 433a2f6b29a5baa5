"""usage rollups: hour and day sums of the ledger, backfilled from the rows already there

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_DIMENSIONS = ("team_id", "service_id", "key_id", "model", "deployment")
# Partial indexes over day buckets (see llmplane.store.tables.usage_rollups).
_DAY_INDEXES = {
    "ix_usage_rollups_day_team": "team_id",
    "ix_usage_rollups_day_service": "service_id",
    "ix_usage_rollups_day_key": "key_id",
}

# The start of the UTC hour or day of created_at, in the form SQLAlchemy stores (SQLite:
# 'YYYY-MM-DD HH:MM:SS.ffffff' text) or as a timestamptz whatever the session's time zone.
_BUCKETS = {
    "sqlite": {
        "hour": "strftime('%Y-%m-%d %H:00:00.000000', created_at)",
        "day": "strftime('%Y-%m-%d 00:00:00.000000', created_at)",
    },
    "postgresql": {
        "hour": "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        "day": "date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    },
}


def upgrade() -> None:
    op.create_table(
        "usage_rollups",
        sa.Column("grain", sa.String(length=8), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("team_id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("deployment", sa.String(length=200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "bucket", *_DIMENSIONS, name="pk_usage_rollups"),
    )
    day = sa.text("grain = 'day'")
    with op.batch_alter_table("usage_rollups", schema=None) as batch_op:
        for name, column in _DAY_INDEXES.items():
            batch_op.create_index(name, [column, "bucket"], sqlite_where=day, postgresql_where=day)
    buckets = _BUCKETS[op.get_bind().dialect.name]
    for grain in ("hour", "day"):
        # Fixed SQL: the only inputs are the literals above.
        op.execute(
            "INSERT INTO usage_rollups (grain, bucket, team_id, service_id, key_id, model, "  # noqa: S608
            "deployment, requests, errors, prompt_tokens, completion_tokens, cached_tokens, "
            "cost_nanousd, latency_ms_sum) "
            f"SELECT '{grain}', {buckets[grain]}, coalesce(team_id, ''), "
            "coalesce(service_id, ''), coalesce(key_id, ''), model, deployment, count(*), "
            "sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END), sum(prompt_tokens), "
            "sum(completion_tokens), sum(cached_tokens), sum(cost_nanousd), sum(latency_ms) "
            "FROM usage_ledger GROUP BY 2, 3, 4, 5, 6, 7"
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_rollups", schema=None) as batch_op:
        for name in _DAY_INDEXES:
            batch_op.drop_index(name)
    op.drop_table("usage_rollups")
