"""the prompt registry: prompts, versions, labels, label history; prompt on ledger rows

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("usage_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt", sa.String(200), nullable=True))
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("team_id", sa.String(64), nullable=True),
        sa.Column("description", sa.String(2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_prompts_team_id", "prompts", ["team_id"])
    op.create_table(
        "prompt_versions",
        sa.Column("prompt_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("message", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name="fk_prompt_versions_prompt"),
        sa.PrimaryKeyConstraint("prompt_id", "version", name="pk_prompt_versions"),
    )
    op.create_index(
        "ix_prompt_versions_fingerprint", "prompt_versions", ["prompt_id", "fingerprint"]
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompts.id"], name="fk_prompt_labels_prompt"),
        sa.PrimaryKeyConstraint("prompt_id", "label", name="pk_prompt_labels"),
    )
    op.create_table(
        "prompt_label_history",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_prompt_label_history_prompt_label",
        "prompt_label_history",
        ["prompt_id", "label", "id"],
    )


def downgrade() -> None:
    op.drop_table("prompt_label_history")
    op.drop_table("prompt_labels")
    op.drop_table("prompt_versions")
    op.drop_table("prompts")
    with op.batch_alter_table("usage_ledger", schema=None) as batch_op:
        batch_op.drop_column("prompt")
