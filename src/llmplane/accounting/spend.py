"""Spend queries over the usage ledger: totals by key and model, or by any one dimension.

Everything but user and tag is read from the hour and day rollups (exactly; see
:mod:`llmplane.accounting.usage_sums`), so that these stay fast at millions of rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, true
from sqlalchemy.engine import Engine

from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.accounting.usage_sums import (
    GROUPINGS,
    NAMED_GROUPINGS,
    GroupKey,
    UsageSums,
    costliest_first,
    regroup,
    total,
    usage_sums,
)
from llmplane.errors import InvalidRequestError
from llmplane.store.tables import usage_ledger


def _totals(sums: UsageSums) -> dict[str, Any]:
    return {
        "requests": sums.requests,
        "prompt_tokens": sums.prompt_tokens,
        "completion_tokens": sums.completion_tokens,
        "cost_usd": sums.cost_nanousd / NANO_PER_USD,
    }


def spend_summary(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team_id: str | None = None,
) -> dict[str, Any]:
    """Requests, tokens and USD in ``[since, until)`` (of one team, if given): overall, by
    key and by model."""
    with engine.connect() as connection:
        groups = usage_sums(connection, ("key", "model"), since=since, until=until, team_id=team_id)
    by_key = regroup(groups, lambda key: key[:1])
    by_model = regroup(groups, lambda key: key[1:])
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "total": _totals(total(groups)),
        "by_key": [
            {"key_id": key_id, "name": name, **_totals(sums)}
            for ((key_id, name),), sums in costliest_first(by_key.items())
        ],
        "by_model": [
            {"model": model, **_totals(sums)}
            for (model,), sums in costliest_first(by_model.items())
        ],
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
    if dimension not in SPEND_DIMENSIONS:
        raise InvalidRequestError(
            f"Spend can be grouped by {', '.join(SPEND_DIMENSIONS)}.", param="by"
        )
    if dimension not in GROUPINGS:
        return _spend_by_in_ledger(engine, dimension, since=since, until=until, team_id=team_id)
    with engine.connect() as connection:
        groups = usage_sums(connection, (dimension,), since=since, until=until, team_id=team_id)
    ordered = sorted(groups.items()) if dimension == "day" else costliest_first(groups.items())
    rows = []
    for (value,), sums in ordered:
        if dimension in NAMED_GROUPINGS:
            value_id, name = value
            rows.append({dimension: value_id, "name": name, **_totals(sums)})
        else:
            rows.append({dimension: value, **_totals(sums)})
    return rows


def _spend_by_in_ledger(
    engine: Engine,
    dimension: str,
    *,
    since: datetime | None,
    until: datetime | None,
    team_id: str | None,
) -> list[dict[str, Any]]:
    """Spend by user or tag, which the rollups do not keep: summed from the ledger."""
    ledger = usage_ledger.c
    source: Any = usage_ledger
    group: Any = ledger.user_id
    if dimension == "tag":
        # One row per key=value tag, from the JSON column (SQLite and PostgreSQL spellings).
        each_fn = func.json_each if engine.dialect.name == "sqlite" else func.json_each_text
        pairs = each_fn(ledger.tags).table_valued("key", "value").alias("tag")
        group = pairs.c.key.op("||")(literal("=")).op("||")(pairs.c.value)
        source = usage_ledger.join(pairs, true())
    query = (
        select(
            group.label("value"),
            func.count().label("requests"),
            func.sum(ledger.prompt_tokens).label("prompt_tokens"),
            func.sum(ledger.completion_tokens).label("completion_tokens"),
            func.sum(ledger.cost_nanousd).label("cost_nanousd"),
        )
        .select_from(source)
        .group_by(group)
        .order_by(func.sum(ledger.cost_nanousd).desc())
    )
    if team_id is not None:
        query = query.where(ledger.team_id == team_id)
    if since is not None:
        query = query.where(ledger.created_at >= since)
    if until is not None:
        query = query.where(ledger.created_at < until)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        {
            dimension: None if r.value is None else str(r.value),
            **_totals(
                UsageSums(
                    r.requests, int(r.prompt_tokens), int(r.completion_tokens), int(r.cost_nanousd)
                )
            ),
        }
        for r in rows
    ]


def month_bounds(month: str) -> tuple[datetime, datetime, datetime]:
    """Start of the previous month, of ``month`` (YYYY-MM) and of the next, in UTC."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequestError("'month' must look like 2026-11.", param="month") from None
    previous = (start - timedelta(days=1)).replace(day=1)
    following = (start + timedelta(days=32)).replace(day=1)
    return previous, start, following


def percent_change(now: float, before: float) -> float | None:
    """The change from ``before`` to ``now`` in percent (``None`` from nothing)."""
    return None if before == 0 else round((now - before) / before * 100, 2)


def monthly_report(engine: Engine, month: str, *, team_id: str | None = None) -> dict[str, Any]:
    """A month's spend for finance (of one team, if given): per team and service, and cost
    per million tokens per model, each beside the previous month with the change in
    percent."""
    previous, start, following = month_bounds(month)
    groupings = ("team", "service", "model")
    with engine.connect() as connection:
        now = usage_sums(connection, groupings, since=start, until=following, team_id=team_id)
        before = usage_sums(connection, groupings, since=previous, until=start, team_id=team_id)

    def side_by_side(
        pick: Callable[[GroupKey], GroupKey],
    ) -> list[tuple[GroupKey, UsageSums, UsageSums]]:
        this, last = regroup(now, pick), regroup(before, pick)
        empty = UsageSums()
        ordered = costliest_first({key: this.get(key, empty) for key in this | last}.items())
        return [(key, sums, last.get(key, empty)) for key, sums in ordered]

    def usd(nano: int) -> float:
        return nano / NANO_PER_USD

    def per_million(nano: int, count: int) -> float | None:
        return None if not count else round(nano / NANO_PER_USD / count * 1e6, 6)

    def tokens(sums: UsageSums) -> int:
        return sums.prompt_tokens + sums.completion_tokens

    teams_and_services = [
        {
            "team": team_name or team_id,
            "service": service_name or service_id,
            "requests": this.requests,
            "tokens": tokens(this),
            "cost_usd": usd(this.cost_nanousd),
            "previous_cost_usd": usd(last.cost_nanousd),
            "change_pct": percent_change(usd(this.cost_nanousd), usd(last.cost_nanousd)),
        }
        for ((team_id, team_name), (service_id, service_name)), this, last in side_by_side(
            lambda key: key[:2]
        )
    ]
    models = []
    for (model,), this, last in side_by_side(lambda key: key[2:]):
        now_rate = per_million(this.cost_nanousd, tokens(this))
        before_rate = per_million(last.cost_nanousd, tokens(last))
        models.append(
            {
                "model": model,
                "requests": this.requests,
                "tokens": tokens(this),
                "cost_usd": usd(this.cost_nanousd),
                "cost_per_mtok_usd": now_rate,
                "previous_cost_per_mtok_usd": before_rate,
                "change_pct": percent_change(now_rate, before_rate)
                if now_rate and before_rate
                else None,
            }
        )
    total_now, total_before = usd(total(now).cost_nanousd), usd(total(before).cost_nanousd)
    return {
        "month": month,
        "previous_month": previous.strftime("%Y-%m"),
        "total_cost_usd": total_now,
        "previous_total_cost_usd": total_before,
        "change_pct": percent_change(total_now, total_before),
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
