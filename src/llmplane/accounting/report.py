"""The platform report: adoption per week, cost per million tokens, spend by team and each
deployment against its service-level objectives.

Definitions (also in the README):

- *active* team or service in a week: at least one successful call (status below 400)
  attributed to it in that ISO week (Monday 00:00 UTC to the next);
- *cost per 1M tokens*: cost over prompt + completion tokens, this month and the one
  before, from the exact rollup sums (:mod:`llmplane.accounting.usage_sums`);
- per deployment, every ledger row is one upstream attempt. An *error* is status 429
  (the upstream's rate limit) or 5xx (the upstream failed, timed out or was unreachable);
  other 4xx are the client's mistakes and count neither as errors nor as calls of the
  error rate: ``error_rate = errors / (calls - client_errors)``;
- latency p50/p95 over successful attempts; TTFT p95 over successful streams that
  reported one. Percentiles interpolate linearly between the closest ranks (PostgreSQL's
  ``percentile_cont``), computed here from the window's rows so that both databases agree;
- *error budget left* = ``1 - error_rate / allowed rate`` over the SLO's window (below 0
  when the budget is spent);
- incidents over the last ``weeks`` × 7 days up to now: see :mod:`llmplane.incidents.rates`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.accounting.spend import month_bounds, percent_change
from llmplane.accounting.usage_sums import UsageSums, costliest_first, regroup, total, usage_sums
from llmplane.config.platform import Slo
from llmplane.errors import InvalidRequestError
from llmplane.incidents.rates import incident_report
from llmplane.store.tables import usage_ledger

DEFAULT_WINDOW_DAYS = 30
"""Window of a deployment without objectives."""
MAX_WEEKS = 52


def is_upstream_error(status: int) -> bool:
    """Whether a ledger status counts against a deployment's error rate."""
    return status == 429 or status >= 500


def is_client_error(status: int) -> bool:
    """A 4xx other than 429: the request was at fault, not the deployment."""
    return 400 <= status < 500 and status != 429


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of sorted values, interpolated linearly between the
    closest ranks (as PostgreSQL's ``percentile_cont``); ``None`` without values."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * fraction
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def week_starts(now: datetime, weeks: int) -> list[datetime]:
    """Mondays 00:00 UTC of the ``weeks`` full ISO weeks before the one ``now`` is in."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    this_week = today - timedelta(days=today.weekday())
    return [this_week - timedelta(weeks=n) for n in range(weeks, 0, -1)]


def _adoption(connection: Connection, now: datetime, weeks: int, team_id: str | None) -> Any:
    ledger = usage_ledger.c
    rows: list[dict[str, Any]] = []
    for start in week_starts(now, weeks):
        query = select(
            func.count(ledger.team_id.distinct()), func.count(ledger.service_id.distinct())
        ).where(
            ledger.created_at >= start,
            ledger.created_at < start + timedelta(weeks=1),
            ledger.status < 400,
        )
        if team_id is not None:
            query = query.where(ledger.team_id == team_id)
        active_teams, active_services = connection.execute(query).one()
        year, week, _ = start.isocalendar()
        rows.append(
            {
                "week": f"{year}-W{week:02d}",
                "start": start.date().isoformat(),
                "active_teams": int(active_teams),
                "active_services": int(active_services),
            }
        )
    trend = "flat"
    if len(rows) >= 2:
        first = rows[0]["active_teams"] + rows[0]["active_services"]
        last = rows[-1]["active_teams"] + rows[-1]["active_services"]
        trend = "growing" if last > first else "shrinking" if last < first else "flat"
    return {"weeks": rows, "trend": trend}


def _usd(nano: int) -> float:
    return nano / NANO_PER_USD


def _per_million(sums: UsageSums) -> float | None:
    tokens = sums.prompt_tokens + sums.completion_tokens
    return None if not tokens else round(sums.cost_nanousd / NANO_PER_USD / tokens * 1e6, 6)


def _cost_row(this: UsageSums, last: UsageSums) -> dict[str, Any]:
    now_rate, before_rate = _per_million(this), _per_million(last)
    return {
        "requests": this.requests,
        "tokens": this.prompt_tokens + this.completion_tokens,
        "cost_usd": _usd(this.cost_nanousd),
        "cost_per_mtok_usd": now_rate,
        "previous_tokens": last.prompt_tokens + last.completion_tokens,
        "previous_cost_usd": _usd(last.cost_nanousd),
        "previous_cost_per_mtok_usd": before_rate,
        "change_pct": (percent_change(now_rate, before_rate) if now_rate and before_rate else None),
    }


def _cost(connection: Connection, month: str, team_id: str | None) -> dict[str, Any]:
    previous, start, following = month_bounds(month)
    now = usage_sums(connection, ("team", "model"), since=start, until=following, team_id=team_id)
    before = usage_sums(connection, ("team", "model"), since=previous, until=start, team_id=team_id)
    empty = UsageSums()

    def side_by_side(pick: Any) -> list[tuple[Any, UsageSums, UsageSums]]:
        this, last = regroup(now, pick), regroup(before, pick)
        ordered = costliest_first({key: this.get(key, empty) for key in this | last}.items())
        return [(key, sums, last.get(key, empty)) for key, sums in ordered]

    by_team = []
    for ((team, name),), this, last in side_by_side(lambda key: key[:1]):
        by_team.append(
            {
                "team_id": team,
                "team": name or team,
                "requests": this.requests,
                "cost_usd": _usd(this.cost_nanousd),
                "previous_cost_usd": _usd(last.cost_nanousd),
                "change_pct": percent_change(_usd(this.cost_nanousd), _usd(last.cost_nanousd)),
            }
        )
    return {
        "month": month,
        "previous_month": previous.strftime("%Y-%m"),
        "overall": _cost_row(total(now), total(before)),
        "by_model": [
            {"model": model, **_cost_row(this, last)}
            for (model,), this, last in side_by_side(lambda key: key[1:])
        ],
        "by_team": by_team,
    }


@dataclass
class _Observed:
    model: str | None
    calls: int = 0
    errors: int = 0
    client_errors: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)


def _observe(
    connection: Connection, since: datetime, now: datetime, team_id: str | None
) -> dict[str, list[tuple[datetime, int, float, float | None, str]]]:
    ledger = usage_ledger.c
    query = select(
        ledger.deployment,
        ledger.created_at,
        ledger.status,
        ledger.latency_ms,
        ledger.ttft_ms,
        ledger.model,
    ).where(ledger.created_at >= since, ledger.created_at < now)
    if team_id is not None:
        query = query.where(ledger.team_id == team_id)
    rows: dict[str, list[tuple[datetime, int, float, float | None, str]]] = {}
    for deployment, created, status, latency, ttft, model in connection.execute(query):
        created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
        rows.setdefault(deployment, []).append((created, status, latency, ttft, model))
    return rows


def _judge(name: str, observed: _Observed, slo: Slo | None, window_days: int) -> dict[str, Any]:
    valid = observed.calls - observed.client_errors
    error_rate = observed.errors / valid if valid else None
    latencies, ttfts = sorted(observed.latencies), sorted(observed.ttfts)
    result: dict[str, Any] = {
        "deployment": name,
        "model": observed.model,
        "window_days": window_days,
        "calls": observed.calls,
        "errors": observed.errors,
        "client_errors": observed.client_errors,
        "error_rate": error_rate,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
        "ttft_p95_ms": percentile(ttfts, 0.95),
        "slo": None if slo is None else slo.model_dump(exclude_none=True),
        "checks": [],
        "error_budget_left": None,
        "status": "no_slo",
    }
    if slo is None:
        return result
    checks = []
    for objective, target, value in (
        ("ttft_p95_ms", slo.ttft_p95_ms, result["ttft_p95_ms"]),
        ("latency_p95_ms", slo.latency_p95_ms, result["latency_p95_ms"]),
        ("error_rate", slo.error_rate, error_rate),
    ):
        if target is not None:
            passed = None if value is None else value <= target
            checks.append(
                {"objective": objective, "target": target, "observed": value, "pass": passed}
            )
    if slo.error_rate is not None and error_rate is not None:
        result["error_budget_left"] = round(1 - error_rate / slo.error_rate, 6)
    result["checks"] = checks
    outcomes = [c["pass"] for c in checks if c["pass"] is not None]
    result["status"] = "no_data" if not outcomes else "pass" if all(outcomes) else "fail"
    return result


def _deployments(
    connection: Connection, now: datetime, slos: Mapping[str, Slo], team_id: str | None
) -> list[dict[str, Any]]:
    def window(name: str) -> int:
        slo = slos.get(name)
        return slo.window_days if slo is not None else DEFAULT_WINDOW_DAYS

    longest = max([DEFAULT_WINDOW_DAYS, *(slo.window_days for slo in slos.values())])
    rows = _observe(connection, now - timedelta(days=longest), now, team_id)
    report = []
    for name in sorted(set(rows) | set(slos)):
        days = window(name)
        since = now - timedelta(days=days)
        observed = _Observed(model=rows[name][0][4] if name in rows else None)
        for created, status, latency, ttft, _ in rows.get(name, []):
            if created < since:
                continue
            observed.calls += 1
            if is_upstream_error(status):
                observed.errors += 1
            elif is_client_error(status):
                observed.client_errors += 1
            elif status < 400:
                observed.latencies.append(latency)
                if ttft is not None:
                    observed.ttfts.append(ttft)
        report.append(_judge(name, observed, slos.get(name), days))
    return report


def platform_report(
    engine: Engine,
    *,
    now: datetime | None = None,
    weeks: int = 4,
    month: str | None = None,
    slos: Mapping[str, Slo] | None = None,
    team_id: str | None = None,
) -> dict[str, Any]:
    """Adoption over the last ``weeks`` full weeks, cost of ``month`` (default: the current
    one) beside the month before, spend by team, every deployment against its SLO and the
    incidents of the last ``weeks`` × 7 days (of one team, if given)."""
    now = datetime.now(UTC) if now is None else now.astimezone(UTC)
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidRequestError(f"'weeks' must be 1 to {MAX_WEEKS}.", param="weeks")
    month = now.strftime("%Y-%m") if month is None else month
    with engine.connect() as connection:
        cost = _cost(connection, month, team_id)
        return {
            "generated_at": now.isoformat(),
            "team_id": team_id,
            "adoption": _adoption(connection, now, weeks, team_id),
            "cost": {key: value for key, value in cost.items() if key != "by_team"},
            "spend_by_team": cost["by_team"],
            "deployments": _deployments(connection, now, slos or {}, team_id),
            "incidents": incident_report(
                connection, now - timedelta(weeks=weeks), now, team_id=team_id
            ),
        }
