"""Spend queries over the usage ledger: totals by key and model, or by any one dimension."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from llmplane.errors import InvalidRequestError
from llmplane.store.tables import services, teams, usage_ledger, virtual_keys

_NANO = 1_000_000_000


def _totals(row: Any) -> dict[str, Any]:
    return {
        "requests": int(row.requests or 0),
        "prompt_tokens": int(row.prompt_tokens or 0),
        "completion_tokens": int(row.completion_tokens or 0),
        "cost_usd": int(row.cost_nanousd or 0) / _NANO,
    }


def _measures() -> tuple[Any, ...]:
    ledger = usage_ledger.c
    return (
        func.count().label("requests"),
        func.sum(ledger.prompt_tokens).label("prompt_tokens"),
        func.sum(ledger.completion_tokens).label("completion_tokens"),
        func.sum(ledger.cost_nanousd).label("cost_nanousd"),
    )


def spend_summary(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Requests, tokens and USD in ``[since, until)``: overall, by key and by model."""
    ledger = usage_ledger.c
    measures = _measures()
    conditions = []
    if since is not None:
        conditions.append(ledger.created_at >= since)
    if until is not None:
        conditions.append(ledger.created_at < until)

    by_key = (
        select(ledger.key_id, virtual_keys.c.name, *measures)
        .select_from(usage_ledger.outerjoin(virtual_keys, virtual_keys.c.id == ledger.key_id))
        .where(*conditions)
        .group_by(ledger.key_id, virtual_keys.c.name)
        .order_by(func.sum(ledger.cost_nanousd).desc())
    )
    by_model = (
        select(ledger.model, *measures)
        .where(*conditions)
        .group_by(ledger.model)
        .order_by(func.sum(ledger.cost_nanousd).desc())
    )
    with engine.connect() as connection:
        total = connection.execute(select(*measures).where(*conditions)).one()
        keys = connection.execute(by_key).all()
        models = connection.execute(by_model).all()
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "total": _totals(total),
        "by_key": [{"key_id": r.key_id, "name": r.name, **_totals(r)} for r in keys],
        "by_model": [{"model": r.model, **_totals(r)} for r in models],
    }


SPEND_DIMENSIONS = ("team", "service", "key", "user", "model", "deployment", "day")


def spend_by(
    engine: Engine,
    dimension: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Requests, tokens and USD in ``[since, until)`` grouped by one dimension, costliest first
    (``day`` in date order)."""
    ledger = usage_ledger.c
    measures = _measures()
    source: Any = usage_ledger
    label: Any = None
    group: Any
    if dimension == "team":
        group, label = ledger.team_id, teams.c.name
        source = usage_ledger.outerjoin(teams, teams.c.id == ledger.team_id)
    elif dimension == "service":
        group, label = ledger.service_id, services.c.name
        source = usage_ledger.outerjoin(services, services.c.id == ledger.service_id)
    elif dimension == "key":
        group, label = ledger.key_id, virtual_keys.c.name
        source = usage_ledger.outerjoin(virtual_keys, virtual_keys.c.id == ledger.key_id)
    elif dimension == "day":
        group = func.date(ledger.created_at)
    elif dimension in ("user", "model", "deployment"):
        group = {"user": ledger.user_id, "model": ledger.model, "deployment": ledger.deployment}[
            dimension
        ]
    else:
        raise InvalidRequestError(
            f"Spend can be grouped by {', '.join(SPEND_DIMENSIONS)}.", param="by"
        )
    columns = [group.label("value"), *([label.label("name")] if label is not None else [])]
    query = select(*columns, *measures).select_from(source)
    if since is not None:
        query = query.where(ledger.created_at >= since)
    if until is not None:
        query = query.where(ledger.created_at < until)
    query = query.group_by(*columns[:1], *([label] if label is not None else []))
    query = query.order_by(group if dimension == "day" else func.sum(ledger.cost_nanousd).desc())
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        {
            dimension: None if r.value is None else str(r.value),
            **({"name": r.name} if label is not None else {}),
            **_totals(r),
        }
        for r in rows
    ]
