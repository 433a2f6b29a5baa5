"""The platform's tables (SQLAlchemy Core): one definition for SQLite and PostgreSQL.

Every record carries team, service and key columns from the start, so that
teams, budgets and attribution (next issues) fit without a rewrite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments a plain INTEGER primary key.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

virtual_keys = Table(
    "virtual_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_hint", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("team_id", String(64), nullable=True, index=True),
    Column("service_id", String(64), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("models", JSON, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("role", String(16), nullable=False, server_default="member"),
    Column("metadata", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

usage_ledger = Table(
    "usage_ledger",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("attempt", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("key_id", String(64), nullable=True),
    Column("team_id", String(64), nullable=True),
    Column("service_id", String(64), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("model", String(200), nullable=False),
    Column("deployment", String(200), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("endpoint", String(50), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_code", String(100), nullable=True),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("usage_estimated", Boolean, nullable=False),
    Column("cost_nanousd", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("tags", JSON, nullable=True),
    Column("prompt", String(200), nullable=True),  # the registered prompt: name@version
    Column("guardrails", JSON, nullable=True),
    UniqueConstraint("request_id", "attempt", name="uq_usage_ledger_request_attempt"),
    Index("ix_usage_ledger_created_at", "created_at"),
    Index("ix_usage_ledger_key_created", "key_id", "created_at"),
    Index("ix_usage_ledger_team_created", "team_id", "created_at"),
)

_DAY_ONLY: dict[str, Any] = {
    "sqlite_where": text("grain = 'day'"),
    "postgresql_where": text("grain = 'day'"),
}

# Sums of the ledger per hour and per day (UTC) and per team, service, key, model and
# deployment, kept in the same transaction as the ledger rows they count, so that spend
# queries and budget loads read a few thousand rows instead of millions. Missing ids are
# '' (not NULL) so that the key below can be the target of an upsert.
usage_rollups = Table(
    "usage_rollups",
    metadata,
    Column("grain", String(8), nullable=False),  # "hour" | "day"
    Column("bucket", DateTime(timezone=True), nullable=False),  # start of the hour or day
    Column("team_id", String(64), nullable=False),
    Column("service_id", String(64), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("deployment", String(200), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),  # status >= 400
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cost_nanousd", BigInteger, nullable=False),
    Column("latency_ms_sum", Float, nullable=False),
    # Its index serves every query by (grain, bucket) range. The indexes by team, service
    # and key cover day buckets only (whole periods: budgets, long ranges); hour buckets are
    # read for the edges of a range, a day or two, and keeping them out of these indexes
    # makes the writer's upserts much cheaper. Queries must spell grain = 'day' as a literal.
    PrimaryKeyConstraint(
        "grain",
        "bucket",
        "team_id",
        "service_id",
        "key_id",
        "model",
        "deployment",
        name="pk_usage_rollups",
    ),
    Index("ix_usage_rollups_day_team", "team_id", "bucket", **_DAY_ONLY),
    Index("ix_usage_rollups_day_service", "service_id", "bucket", **_DAY_ONLY),
    Index("ix_usage_rollups_day_key", "key_id", "bucket", **_DAY_ONLY),
)

teams = Table(
    "teams",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("models", JSON, nullable=True),
    Column("max_tokens", Integer, nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("model_limits", JSON, nullable=True),  # {model: {"rpm": N, "tpm": M}}
    # What the team's requests leave in request_logs (none, metadata, redacted, full) and
    # for how many days; NULL: the platform's defaults.request_logs.
    Column("log_bodies", String(16), nullable=True),
    Column("log_retention_days", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

services = Table(
    "services",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("team_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("team_id", "name", name="uq_services_team_name"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("scope_id", String(64), nullable=False),
    Column("limit_nanousd", BigInteger, nullable=False),
    Column("period", String(16), nullable=False),
    Column("thresholds", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
    UniqueConstraint("scope", "scope_id", name="uq_budgets_scope"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(64), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("budget_id", String(64), nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("spent_nanousd", BigInteger, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("budget_id", "period_start", "threshold", name="uq_budget_alerts_once"),
)

# Every change that can cause an incident: a model's or deployment's configuration (recorded
# by the gateway at start-up), a prompt version, a config change or anything else recorded
# through the admin API. Only non-secret facts: what, which, who, when, a short summary.
changes = Table(
    "changes",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # model | deployment | prompt | config | other
    Column("subject", String(200), nullable=False),  # gpt-4o, openai-east, support-bot@7
    Column("action", String(16), nullable=False),  # added | changed | removed
    Column("summary", String(500), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("team_id", String(64), nullable=True),
)

# The last configuration of each model, deployment and config section the gateway started
# with, its secrets removed: what the next start compares against. A row changes only by
# compare-and-set on its fingerprint, so of replicas starting together exactly one records.
config_fingerprints = Table(
    "config_fingerprints",
    metadata,
    Column("kind", String(16), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("fingerprint", String(64), nullable=False),  # sha256 of the canonical JSON below
    Column("config", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("kind", "subject", name="pk_config_fingerprints"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("title", String(300), nullable=False),
    Column("severity", String(8), nullable=False),  # sev1 (worst) .. sev4
    Column("status", String(8), nullable=False),  # open | closed
    Column("started_at", DateTime(timezone=True), nullable=False),  # impact began
    Column("opened_at", DateTime(timezone=True), nullable=False, index=True),
    Column("closed_at", DateTime(timezone=True), nullable=True, index=True),
    Column("opened_by", String(64), nullable=False),
    Column("closed_by", String(64), nullable=True),
    Column("resolution", String(2000), nullable=True),
    # The cause: a recorded change, or a kind and subject named directly; NULL kind: unknown.
    Column("cause_kind", String(16), nullable=True),
    Column("cause_subject", String(200), nullable=True),
    Column(
        "cause_change_id",
        _BigId,
        ForeignKey("changes.id", name="fk_incidents_cause_change"),
        nullable=True,
    ),
    Column("team_id", String(64), nullable=True, index=True),
)

# One row per request whose team's policy stores request logs (metadata, redacted or full),
# written in batches off the request path and deleted once past expires_at. Request ids are
# the client's when it sent one, so they are indexed, not unique.
request_logs = Table(
    "request_logs",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("request_id", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("policy", String(16), nullable=False),  # metadata | redacted | full
    Column("team_id", String(64), nullable=True),
    Column("service_id", String(64), nullable=True),
    Column("key_id", String(64), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("operation", String(50), nullable=True),
    Column("model", String(200), nullable=True),  # as asked
    Column("served_model", String(200), nullable=True),
    Column("deployment", String(200), nullable=True),
    Column("provider", String(50), nullable=True),
    Column("status", Integer, nullable=False),
    Column("error_type", String(100), nullable=True),
    Column("error_code", String(100), nullable=True),
    Column("stream", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cost_nanousd", BigInteger, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("ttft_ms", Float, nullable=True),
    Column("params", JSON, nullable=True),  # request parameters without content
    Column("request_body", Text, nullable=True),  # JSON text (redacted or full)
    Column("response_body", Text, nullable=True),
    Column("truncated", Boolean, nullable=False),
    Index("ix_request_logs_request_id", "request_id"),
    Index("ix_request_logs_team_created", "team_id", "created_at"),
    Index("ix_request_logs_key_created", "key_id", "created_at"),
    Index("ix_request_logs_user_created", "user_id", "created_at"),
    Index("ix_request_logs_model_created", "model", "created_at"),
    Index("ix_request_logs_created_at", "created_at"),
    Index("ix_request_logs_expires_at", "expires_at"),
)

# The prompt registry: a prompt (name unique platform-wide, owned by a team or, with no
# team, by the platform), its immutable versions, the labels pointing at versions, and
# every label move. Version content is JSON (template, variables, model, params, tools,
# response_format); fingerprint is the SHA-256 of its normal form, so that resubmitting
# the same content finds the existing version.
prompts = Table(
    "prompts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(120), nullable=False, unique=True),
    Column("team_id", String(64), nullable=True, index=True),
    Column("description", String(2000), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column(
        "prompt_id",
        String(64),
        ForeignKey("prompts.id", name="fk_prompt_versions_prompt"),
        nullable=False,
    ),
    Column("version", Integer, nullable=False),
    Column("content", JSON, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("message", String(500), nullable=True),  # what changed, as its author put it
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    PrimaryKeyConstraint("prompt_id", "version", name="pk_prompt_versions"),
    Index("ix_prompt_versions_fingerprint", "prompt_id", "fingerprint"),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column(
        "prompt_id",
        String(64),
        ForeignKey("prompts.id", name="fk_prompt_labels_prompt"),
        nullable=False,
    ),
    Column("label", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(64), nullable=False),
    PrimaryKeyConstraint("prompt_id", "label", name="pk_prompt_labels"),
)

# Append-only. action: set | rollback | refused (an attempt a promotion gate stopped, with
# its evidence) | forced (the admin key moved the label past a refusing gate, with a reason
# and the gate's evidence). from_version is NULL for a label's first move.
prompt_label_history = Table(
    "prompt_label_history",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("prompt_id", String(64), nullable=False),
    Column("label", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(64), nullable=False),
    Column("reason", String(500), nullable=True),
    Column("evidence", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_prompt_label_history_prompt_label", "prompt_id", "label", "id"),
)

# Promotion gates: moving this label of this prompt needs a finished run of ``suite``
# against the version being promoted that passed (and, with require_no_regression, that
# was compared with the version the label holds and did not regress), at most
# max_age_days old when set.
prompt_label_gates = Table(
    "prompt_label_gates",
    metadata,
    Column(
        "prompt_id",
        String(64),
        ForeignKey("prompts.id", name="fk_prompt_label_gates_prompt"),
        nullable=False,
    ),
    Column("label", String(64), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("require_no_regression", Boolean, nullable=False),
    Column("max_age_days", Integer, nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("prompt_id", "label", name="pk_prompt_label_gates"),
)

# The eval harness: a run of a suite (who, which team, on which commit and branch, against
# which target, models and prompt version, with its totals and verdict) and its case
# results (one per case x model x repetition). A case's cache_key (SHA-256 of model,
# rendered messages, parameters and repetition) lets a later run of the same team reuse a
# stored output instead of calling the model again. At most one run per (team, suite) is
# blessed: the baseline later runs compare with.
eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("suite", String(200), nullable=False),
    Column("suite_fingerprint", String(64), nullable=False),
    Column("team_id", String(64), nullable=True),
    Column("key_id", String(64), nullable=False),  # who ran it
    Column("status", String(16), nullable=False),  # running | finished | capped | failed
    Column("target", String(500), nullable=False),
    Column("models", JSON, nullable=False),
    Column("prompt", String(200), nullable=True),  # the resolved name@version
    Column("dataset", String(200), nullable=True),  # a registered dataset's name@version
    Column("git_sha", String(64), nullable=True),
    Column("git_branch", String(200), nullable=True),
    Column("baseline_run_id", String(64), nullable=True),
    Column("blessed", Boolean, nullable=False, server_default=text("false")),
    Column("repetitions", Integer, nullable=False),
    Column("cases_total", Integer, nullable=False),  # planned case results
    Column("cost_usd", Float, nullable=False, server_default=text("0")),
    Column("summary", JSON, nullable=True),  # metrics, thresholds, comparison, verdict
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_eval_runs_suite", "team_id", "suite", "started_at"),
)

eval_cases = Table(
    "eval_cases",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column(
        "run_id", String(64), ForeignKey("eval_runs.id", name="fk_eval_cases_run"), nullable=False
    ),
    Column("case_id", String(200), nullable=False),
    Column("model", String(200), nullable=False),  # '' when the target chose it
    Column("repetition", Integer, nullable=False),
    Column("output", Text, nullable=True),
    Column("scores", JSON, nullable=False),  # {scorer: {value, passed, explanation, details}}
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms", Float, nullable=True),
    Column("error", String(2000), nullable=True),
    Column("cached", Boolean, nullable=False),
    Column("cache_key", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "case_id", "model", "repetition", name="uq_eval_cases_result"),
    Index("ix_eval_cases_cache_key", "cache_key"),
)

# Registered eval datasets: immutable numbered versions of a team's named test set (owner:
# the team's id, '' for the platform's). content is the normal form (JSONL of the parsed
# cases); fingerprint its SHA-256, so pushing the same cases again finds the version.
eval_datasets = Table(
    "eval_datasets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("cases", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("owner", "name", "version", name="uq_eval_datasets_version"),
    Index("ix_eval_datasets_fingerprint", "owner", "name", "fingerprint"),
)
