"""Spend queries over the usage ledger: totals by key and model, or by any one dimension."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select, true
from sqlalchemy.engine import Engine

from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.errors import InvalidRequestError
from llmplane.store.tables import services, teams, usage_ledger, virtual_keys


def _totals(row: Any) -> dict[str, Any]:
    return {
        "requests": int(row.requests or 0),
        "prompt_tokens": int(row.prompt_tokens or 0),
        "completion_tokens": int(row.completion_tokens or 0),
        "cost_usd": int(row.cost_nanousd or 0) / NANO_PER_USD,
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
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team_id: str | None = None,
) -> dict[str, Any]:
    """Requests, tokens and USD in ``[since, until)`` (of one team, if given): overall, by
    key and by model."""
    ledger = usage_ledger.c
    measures = _measures()
    conditions = []
    if team_id is not None:
        conditions.append(ledger.team_id == team_id)
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


SPEND_DIMENSIONS = ("team", "service", "key", "user", "model", "deployment", "day", "tag")


def spend_by(
    engine: Engine,
    dimension: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team_id: str | None = None,
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
    elif dimension == "tag":
        # One row per key=value tag, from the JSON column (SQLite and PostgreSQL spellings).
        each_fn = func.json_each if engine.dialect.name == "sqlite" else func.json_each_text
        pairs = each_fn(ledger.tags).table_valued("key", "value").alias("tag")
        group = pairs.c.key.op("||")(literal("=")).op("||")(pairs.c.value)
        source = usage_ledger.join(pairs, true())
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
    if team_id is not None:
        query = query.where(ledger.team_id == team_id)
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


def _month_bounds(month: str) -> tuple[datetime, datetime, datetime]:
    """Start of the previous month, of ``month`` (YYYY-MM) and of the next, in UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequestError("'month' must look like 2026-11.", param="month") from None
    previous = (start - timedelta(days=1)).replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return previous, start, following


def _change(now: float, before: float) -> float | None:
    return None if before == 0 else round((now - before) / before * 100, 2)


def monthly_report(engine: Engine, month: str) -> dict[str, Any]:
    """A month's spend for finance: per team and service, and cost per million tokens per
    model, each beside the previous month with the change in percent."""
    previous, start, following = _month_bounds(month)
    ledger = usage_ledger.c
    this_month = ledger.created_at >= start
    cost = func.sum(case((this_month, ledger.cost_nanousd), else_=0))
    cost_before = func.sum(case((~this_month, ledger.cost_nanousd), else_=0))
    tokens = func.sum(case((this_month, ledger.prompt_tokens + ledger.completion_tokens), else_=0))
    tokens_before = func.sum(
        case((~this_month, ledger.prompt_tokens + ledger.completion_tokens), else_=0)
    )
    requests = func.sum(case((this_month, 1), else_=0))
    window = (ledger.created_at >= previous, ledger.created_at < following)
    by_service = (
        select(
            teams.c.name.label("team"),
            services.c.name.label("service"),
            ledger.team_id,
            ledger.service_id,
            requests,
            tokens,
            cost,
            cost_before,
        )
        .select_from(
            usage_ledger.outerjoin(teams, teams.c.id == ledger.team_id).outerjoin(
                services, services.c.id == ledger.service_id
            )
        )
        .where(*window)
        .group_by(teams.c.name, services.c.name, ledger.team_id, ledger.service_id)
        .order_by(cost.desc())
    )
    by_model = (
        select(ledger.model, requests, tokens, cost, tokens_before, cost_before)
        .where(*window)
        .group_by(ledger.model)
        .order_by(cost.desc())
    )
    with engine.connect() as connection:
        service_rows = connection.execute(by_service).all()
        model_rows = connection.execute(by_model).all()

    def usd(nano: Any) -> float:
        return int(nano or 0) / NANO_PER_USD

    def per_million(nano: Any, count: Any) -> float | None:
        return None if not count else round(int(nano or 0) / NANO_PER_USD / int(count) * 1e6, 6)

    teams_and_services = [
        {
            "team": r.team or r.team_id,
            "service": r.service or r.service_id,
            "requests": int(r[4] or 0),
            "tokens": int(r[5] or 0),
            "cost_usd": usd(r[6]),
            "previous_cost_usd": usd(r[7]),
            "change_pct": _change(usd(r[6]), usd(r[7])),
        }
        for r in service_rows
    ]
    models = []
    for r in model_rows:
        now_rate, before_rate = per_million(r[3], r[2]), per_million(r[5], r[4])
        models.append(
            {
                "model": r.model,
                "requests": int(r[1] or 0),
                "tokens": int(r[2] or 0),
                "cost_usd": usd(r[3]),
                "cost_per_mtok_usd": now_rate,
                "previous_cost_per_mtok_usd": before_rate,
                "change_pct": _change(now_rate, before_rate) if now_rate and before_rate else None,
            }
        )
    total, total_before = (
        sum(r["cost_usd"] for r in teams_and_services),
        sum(r["previous_cost_usd"] for r in teams_and_services),
    )
    return {
        "month": month,
        "previous_month": previous.strftime("%Y-%m"),
        "total_cost_usd": total,
        "previous_total_cost_usd": total_before,
        "change_pct": _change(total, total_before),
        "by_team_service": teams_and_services,
        "by_model": models,
    }


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV: one section per table, with a header row each."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "section",
            "team",
            "service",
            "model",
            "requests",
            "tokens",
            "cost_usd",
            "previous_cost_usd",
            "cost_per_mtok_usd",
            "previous_cost_per_mtok_usd",
            "change_pct",
        ]
    )
    for r in report["by_team_service"]:
        writer.writerow(
            [
                "team_service",
                r["team"],
                r["service"],
                "",
                r["requests"],
                r["tokens"],
                f"{r['cost_usd']:.9f}",
                f"{r['previous_cost_usd']:.9f}",
                "",
                "",
                r["change_pct"],
            ]
        )
    for r in report["by_model"]:
        writer.writerow(
            [
                "model",
                "",
                "",
                r["model"],
                r["requests"],
                r["tokens"],
                f"{r['cost_usd']:.9f}",
                "",
                r["cost_per_mtok_usd"],
                r["previous_cost_per_mtok_usd"],
                r["change_pct"],
            ]
        )
    return out.getvalue()
