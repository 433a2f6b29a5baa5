"""The platform report on known ledger rows, on SQLite and PostgreSQL: adoption per week,
cost per million tokens with its change, spend by team and deployments against SLOs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from llmplane.accounting.report import percentile, platform_report
from llmplane.config.platform import Slo
from llmplane.errors import InvalidRequestError
from tests.helpers import usage_row, write_rows

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday; its week began Monday 2 March
_ids = iter(range(10**6))


def _row(
    created_at: datetime,
    *,
    status: int = 200,
    cost_nanousd: int = 0,
    tokens: int = 0,
    deployment: str | None = None,
    latency_ms: float = 1.0,
    ttft_ms: float | None = None,
    model: str = "mock",
    **attribution: Any,
) -> Any:
    row = usage_row(
        f"req_{next(_ids)}",
        cost_nanousd,
        model=model,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        **attribution,
    )
    row.created_at = created_at
    row.status = status
    row.latency_ms = latency_ms
    row.ttft_ms = ttft_ms
    row.stream = ttft_ms is not None
    if deployment is not None:
        row.deployment = deployment
    return row


def _day(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


async def test_active_teams_and_services_per_full_week(engine: Engine) -> None:
    rows = [
        _row(_day(2, 10), team_id="team_a", service_id="svc_1"),
        _row(datetime(2026, 2, 15, 23, 59, 59, tzinfo=UTC), team_id="team_e", service_id="svc_5"),
        _row(_day(2, 17), team_id="team_a", service_id="svc_1"),
        _row(_day(2, 18), team_id="team_a", service_id="svc_1"),
        _row(_day(2, 18), team_id="team_b", service_id="svc_2"),
        _row(_day(2, 19), team_id="team_c", service_id="svc_4", status=500),  # failed: not active
        _row(_day(2, 19), team_id="team_c", service_id="svc_4", status=400),
        _row(datetime(2026, 2, 23, tzinfo=UTC), team_id="team_a", service_id="svc_3"),
        _row(_day(2, 24), team_id="team_a", service_id="svc_1"),
        _row(_day(2, 25), team_id="team_b", service_id="svc_2"),
        _row(_day(3, 1, 23), team_id="team_c", service_id="svc_4"),
        _row(_day(2, 26), team_id=None, service_id=None),  # unattributed: no one's adoption
        _row(_day(3, 2), team_id="team_f", service_id="svc_6"),  # this week: not yet full
    ]
    await write_rows(engine, rows)

    adoption = platform_report(engine, now=NOW, weeks=3)["adoption"]
    assert adoption["weeks"] == [
        {"week": "2026-W07", "start": "2026-02-09", "active_teams": 2, "active_services": 2},
        {"week": "2026-W08", "start": "2026-02-16", "active_teams": 2, "active_services": 2},
        {"week": "2026-W09", "start": "2026-02-23", "active_teams": 3, "active_services": 4},
    ]
    assert adoption["trend"] == "growing"

    own = platform_report(engine, now=NOW, weeks=3, team_id="team_a")["adoption"]
    assert [(w["active_teams"], w["active_services"]) for w in own["weeks"]] == [
        (1, 1),
        (1, 1),
        (1, 2),
    ]
    with pytest.raises(InvalidRequestError):
        platform_report(engine, now=NOW, weeks=0)


async def test_cost_per_million_tokens_month_over_month_and_spend_by_team(engine: Engine) -> None:
    usd = 10**9
    rows = [
        # February: big 1M tokens for $2, small 2M tokens for $1.
        _row(_day(2, 2), model="big", tokens=600_000, cost_nanousd=usd, team_id="team_a"),
        _row(_day(2, 27), model="big", tokens=400_000, cost_nanousd=usd, team_id="team_a"),
        _row(_day(2, 3), model="small", tokens=2_000_000, cost_nanousd=usd, team_id="team_b"),
        # March: big 0.5M tokens for $1.50, small 1M tokens for $0.40.
        _row(
            _day(3, 1, 0), model="big", tokens=500_000, cost_nanousd=3 * usd // 2, team_id="team_a"
        ),
        _row(
            _day(3, 3), model="small", tokens=1_000_000, cost_nanousd=2 * usd // 5, team_id="team_b"
        ),
        _row(_day(1, 31), model="big", tokens=10**6, cost_nanousd=99 * usd, team_id="team_a"),
    ]
    await write_rows(engine, rows)

    report = platform_report(engine, now=NOW, month="2026-03")
    cost = report["cost"]
    assert (cost["month"], cost["previous_month"]) == ("2026-03", "2026-02")
    overall = cost["overall"]
    assert (overall["tokens"], overall["previous_tokens"]) == (1_500_000, 3_000_000)
    assert overall["cost_per_mtok_usd"] == pytest.approx(1.266667)
    assert overall["previous_cost_per_mtok_usd"] == pytest.approx(1.0)
    assert overall["change_pct"] == pytest.approx(26.67)
    by_model = {m["model"]: m for m in cost["by_model"]}
    assert list(by_model) == ["big", "small"]  # costliest first
    assert by_model["big"]["cost_per_mtok_usd"] == pytest.approx(3.0)
    assert by_model["big"]["previous_cost_per_mtok_usd"] == pytest.approx(2.0)
    assert by_model["big"]["change_pct"] == pytest.approx(50.0)
    assert by_model["small"]["cost_per_mtok_usd"] == pytest.approx(0.4)
    assert by_model["small"]["change_pct"] == pytest.approx(-20.0)
    assert [
        (t["team_id"], t["cost_usd"], t["previous_cost_usd"], t["change_pct"])
        for t in report["spend_by_team"]
    ] == [("team_a", 1.5, 2.0, -25.0), ("team_b", 0.4, 1.0, -60.0)]

    default_month = platform_report(engine, now=NOW)["cost"]
    assert default_month["month"] == "2026-03"
    only_b = platform_report(engine, now=NOW, month="2026-03", team_id="team_b")
    assert [t["team_id"] for t in only_b["spend_by_team"]] == ["team_b"]
    assert only_b["cost"]["overall"]["tokens"] == 1_000_000
    with pytest.raises(InvalidRequestError):
        platform_report(engine, now=NOW, month="March")


async def test_deployments_against_their_slos(engine: Engine) -> None:
    recent = NOW - timedelta(days=2)
    rows = [
        _row(
            recent,
            deployment="sim[0]",
            latency_ms=100.0 * i,
            ttft_ms=100.0 * i if i <= 10 else None,
        )
        for i in range(1, 17)
    ]
    rows += [_row(recent, deployment="sim[0]", status=s) for s in (500, 503, 429, 400)]
    # Older than sim[0]'s 7-day window: not judged.
    rows += [_row(NOW - timedelta(days=10), deployment="sim[0]", status=500) for _ in range(5)]
    rows += [_row(recent, deployment="sim[1]", latency_ms=50.0) for _ in range(199)]
    rows += [_row(NOW - timedelta(days=20), deployment="sim[1]", status=502)]
    rows += [_row(recent, deployment="mock[0]", status=422, latency_ms=5.0)]
    await write_rows(engine, rows)
    slos = {
        "sim[0]": Slo(ttft_p95_ms=800, latency_p95_ms=2000, error_rate=0.1, window_days=7),
        "sim[1]": Slo(error_rate=0.01),
        "idle[0]": Slo(latency_p95_ms=500),
    }

    deployments = {
        d["deployment"]: d for d in platform_report(engine, now=NOW, slos=slos)["deployments"]
    }
    sim0 = deployments["sim[0]"]
    assert (sim0["calls"], sim0["errors"], sim0["client_errors"]) == (20, 3, 1)
    assert sim0["error_rate"] == pytest.approx(3 / 19)
    assert sim0["latency_p50_ms"] == pytest.approx(850.0)
    assert sim0["latency_p95_ms"] == pytest.approx(1525.0)
    assert sim0["ttft_p95_ms"] == pytest.approx(955.0)
    assert [(c["objective"], c["pass"]) for c in sim0["checks"]] == [
        ("ttft_p95_ms", False),
        ("latency_p95_ms", True),
        ("error_rate", False),
    ]
    assert sim0["error_budget_left"] == pytest.approx(1 - (3 / 19) / 0.1, abs=1e-6)
    assert sim0["status"] == "fail"

    sim1 = deployments["sim[1]"]
    assert (sim1["calls"], sim1["errors"], sim1["window_days"]) == (200, 1, 30)
    assert sim1["error_rate"] == pytest.approx(0.005)
    assert sim1["error_budget_left"] == pytest.approx(0.5)
    assert sim1["status"] == "pass"

    assert deployments["idle[0]"]["calls"] == 0
    assert deployments["idle[0]"]["status"] == "no_data"
    mock = deployments["mock[0]"]
    assert (mock["status"], mock["error_rate"], mock["latency_p95_ms"]) == ("no_slo", None, None)

    if engine.dialect.name == "postgresql":  # the same percentile as the database's own
        with engine.connect() as connection:
            expected = connection.execute(
                text(
                    "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) "
                    "FROM usage_ledger WHERE deployment = 'sim[0]' AND status < 400"
                )
            ).scalar_one()
        assert sim0["latency_p95_ms"] == pytest.approx(expected)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.95) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 0.95) == pytest.approx(4.8)
