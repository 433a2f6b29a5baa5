"""the eval harness: runs and their case results

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("suite_fingerprint", sa.String(64), nullable=False),
        sa.Column("team_id", sa.String(64), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.String(200), nullable=True),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("git_branch", sa.String(200), nullable=True),
        sa.Column("baseline_run_id", sa.String(64), nullable=True),
        sa.Column("blessed", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("repetitions", sa.Integer(), nullable=False),
        sa.Column("cases_total", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_eval_runs_suite", "eval_runs", ["team_id", "suite", "started_at"])
    op.create_table(
        "eval_cases",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("repetition", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["eval_runs.id"], name="fk_eval_cases_run"),
        sa.UniqueConstraint(
            "run_id", "case_id", "model", "repetition", name="uq_eval_cases_result"
        ),
    )
    op.create_index("ix_eval_cases_cache_key", "eval_cases", ["cache_key"])


def downgrade() -> None:
    op.drop_index("ix_eval_cases_cache_key", table_name="eval_cases")
    op.drop_table("eval_cases")
    op.drop_index("ix_eval_runs_suite", table_name="eval_runs")
    op.drop_table("eval_runs")
