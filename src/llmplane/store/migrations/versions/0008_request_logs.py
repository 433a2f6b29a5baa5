"""request logs: per-team body logging policy and the request_logs table

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_bodies", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("log_retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "request_logs",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=True),
        sa.Column("service_id", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("operation", sa.String(50), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("served_model", sa.String(200), nullable=True),
        sa.Column("deployment", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(50), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(100), nullable=True),
        sa.Column("error_code", sa.String(100), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("request_body", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=False),
    )
    for name, columns in (
        ("ix_request_logs_request_id", ["request_id"]),
        ("ix_request_logs_team_created", ["team_id", "created_at"]),
        ("ix_request_logs_key_created", ["key_id", "created_at"]),
        ("ix_request_logs_user_created", ["user_id", "created_at"]),
        ("ix_request_logs_model_created", ["model", "created_at"]),
        ("ix_request_logs_created_at", ["created_at"]),
        ("ix_request_logs_expires_at", ["expires_at"]),
    ):
        op.create_index(name, "request_logs", columns)


def downgrade() -> None:
    op.drop_table("request_logs")
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("log_retention_days")
        batch_op.drop_column("log_bodies")
