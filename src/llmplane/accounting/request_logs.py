"""Reading, deleting and expiring the stored request logs (``request_logs``).

The rows are written by :mod:`llmplane.telemetry.stored_logs`; this module is what the
admin API and the CLI call: list them by request id, key, model, team, user and time;
show one with its bodies; delete a user's rows on request (audited, for compliance);
and delete the rows past their retention (the gateway's background job, and
``llmplane logs purge``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.errors import NotFoundError
from llmplane.store.tables import request_logs

MAX_LIMIT = 1000
_PURGE_BATCH = 5000
_NANO = 1e-9
_SUMMARY = [c for c in request_logs.c if c.name not in ("request_body", "response_body")]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _summary(row: RowMapping) -> dict[str, Any]:
    return {
        "request_id": row["request_id"],
        "created_at": _iso(row["created_at"]),
        "expires_at": _iso(row["expires_at"]),
        "policy": row["policy"],
        "team_id": row["team_id"],
        "service_id": row["service_id"],
        "key_id": row["key_id"],
        "user": row["user_id"],
        "operation": row["operation"],
        "model": row["model"],
        "served_model": row["served_model"],
        "deployment": row["deployment"],
        "provider": row["provider"],
        "status": row["status"],
        "error_type": row["error_type"],
        "error_code": row["error_code"],
        "stream": bool(row["stream"]),
        "attempts": row["attempts"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cached_tokens": row["cached_tokens"],
        "cost_usd": row["cost_nanousd"] * _NANO,
        "duration_ms": row["duration_ms"],
        "ttft_ms": row["ttft_ms"],
        "params": row["params"],
        "truncated": bool(row["truncated"]),
    }


def _body(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def list_logs(
    engine: Engine,
    *,
    request_id: str | None = None,
    key_id: str | None = None,
    model: str | None = None,
    team_id: str | None = None,
    user_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Rows matching every filter given, newest first, without their bodies (``model`` is
    the model the client asked for or the one that served)."""
    query = select(*_SUMMARY).order_by(request_logs.c.created_at.desc(), request_logs.c.id.desc())
    for column, value in (
        (request_logs.c.request_id, request_id),
        (request_logs.c.key_id, key_id),
        (request_logs.c.team_id, team_id),
        (request_logs.c.user_id, user_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if model is not None:
        query = query.where(
            (request_logs.c.model == model) | (request_logs.c.served_model == model)
        )
    if since is not None:
        query = query.where(request_logs.c.created_at >= since)
    if until is not None:
        query = query.where(request_logs.c.created_at < until)
    query = query.limit(max(1, min(limit, MAX_LIMIT)))
    with engine.connect() as connection:
        return [_summary(row) for row in connection.execute(query).mappings()]


def get_log(engine: Engine, request_id: str, *, team_id: str | None = None) -> dict[str, Any]:
    """The newest row of ``request_id`` (of ``team_id``'s, when given) with its bodies:
    ``request`` and ``response`` (JSON, or text where a body is not JSON; null when the
    policy kept none)."""
    query = (
        select(request_logs)
        .where(request_logs.c.request_id == request_id)
        .order_by(request_logs.c.created_at.desc(), request_logs.c.id.desc())
        .limit(1)
    )
    if team_id is not None:
        query = query.where(request_logs.c.team_id == team_id)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(
            f"No stored request log for request {request_id!r}.", code="request_log_not_found"
        )
    return {
        **_summary(row),
        "request": _body(row["request_body"]),
        "response": _body(row["response_body"]),
    }


def delete_user_logs(
    engine: Engine, user_id: str, *, team_id: str | None = None, actor: str = "admin"
) -> int:
    """Delete every stored request log of end user ``user_id`` (of one team's, when
    given), for a deletion request; audited with the count. Returns the count."""
    condition = request_logs.c.user_id == user_id
    if team_id is not None:
        condition = condition & (request_logs.c.team_id == team_id)
    with engine.begin() as connection:
        deleted = connection.execute(delete(request_logs).where(condition)).rowcount
        record_audit(
            connection,
            actor=actor,
            action="request_logs.delete_user",
            object_type="user",
            object_id=user_id[:64],
            before=None,
            after={"user": user_id, "team_id": team_id, "deleted": deleted},
        )
    return int(deleted)


def purge_expired(
    engine: Engine, *, now: datetime | None = None, batch_size: int = _PURGE_BATCH
) -> int:
    """Delete the rows past their ``expires_at``, ``batch_size`` at a time (short
    transactions, so writers are not held up); returns how many."""
    cutoff = now or datetime.now(UTC)
    total = 0
    while True:
        expired = (
            select(request_logs.c.id)
            .where(request_logs.c.expires_at < cutoff)
            .limit(batch_size)
            .scalar_subquery()
        )
        with engine.begin() as connection:
            deleted = connection.execute(
                delete(request_logs).where(request_logs.c.id.in_(expired))
            ).rowcount
        total += deleted
        if deleted < batch_size:
            return total
