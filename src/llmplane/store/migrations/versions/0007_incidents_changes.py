"""the incident log and the changes that can cause incidents

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_changes_created_at", "changes", ["created_at"], unique=False)
    op.create_table(
        "config_fingerprints",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "subject", name="pk_config_fingerprints"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=True),
        sa.Column("resolution", sa.String(length=2000), nullable=True),
        sa.Column("cause_kind", sa.String(length=16), nullable=True),
        sa.Column("cause_subject", sa.String(length=200), nullable=True),
        sa.Column("cause_change_id", _BIG_ID, nullable=True),
        sa.Column("team_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["cause_change_id"], ["changes.id"], name="fk_incidents_cause_change"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"], unique=False)
    op.create_index("ix_incidents_closed_at", "incidents", ["closed_at"], unique=False)
    op.create_index("ix_incidents_team_id", "incidents", ["team_id"], unique=False)


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("config_fingerprints")
    op.drop_table("changes")
