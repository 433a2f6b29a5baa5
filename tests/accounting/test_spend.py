"""Spend read from the rollups is, to the row, what a scan of the ledger says, for any range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from llmplane.accounting.spend import monthly_report, spend_by, spend_summary
from llmplane.store.tables import services, teams, usage_ledger, virtual_keys
from tests.helpers import spread_rows, write_rows

START = datetime(2026, 2, 22, 5, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 1, tzinfo=UTC)
RANGES = [
    (None, None),
    (datetime(2026, 2, 24, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)),  # whole days
    (datetime(2026, 2, 23, 13, 17, 5, 123456, tzinfo=UTC), datetime(2026, 3, 2, 9, 42, tzinfo=UTC)),
    (datetime(2026, 2, 25, 10, tzinfo=UTC), datetime(2026, 2, 27, 5, tzinfo=UTC)),  # whole hours
    (datetime(2026, 2, 25, 10, 5, tzinfo=UTC), datetime(2026, 2, 25, 18, 30, tzinfo=UTC)),
    (datetime(2026, 2, 25, 10, 5, tzinfo=UTC), datetime(2026, 2, 25, 10, 55, tzinfo=UTC)),
    (datetime(2026, 2, 25, 10, 5, tzinfo=UTC), datetime(2026, 2, 25, 11, 0, tzinfo=UTC)),
    (datetime(2026, 2, 26, 7, 30, tzinfo=UTC), None),
    (None, datetime(2026, 2, 26, 16, 45, tzinfo=UTC)),
    (datetime(2026, 2, 26, tzinfo=UTC), datetime(2026, 2, 25, tzinfo=UTC)),  # empty
    (  # another UTC offset
        datetime(2026, 2, 24, 3, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2026, 2, 28, 23, 50, tzinfo=timezone(timedelta(hours=-3))),
    ),
]
_COLUMN = {"team": "team_id", "service": "service_id", "key": "key_id"}


@pytest.fixture
async def store(engine: Engine) -> Engine:
    """Two weeks of rows around a month's end; some ids have no name, some no row at all."""
    with engine.begin() as connection:
        connection.execute(
            insert(teams),
            [
                {"id": "team_x", "name": "search", "created_at": NOW, "updated_at": NOW},
                {"id": "team_y", "name": "ads", "created_at": NOW, "updated_at": NOW},
            ],
        )
        connection.execute(
            insert(services),
            [
                {"id": "svc_1", "team_id": "team_x", "name": "api", "created_at": NOW},
                {"id": "svc_2", "team_id": "team_y", "name": "batch", "created_at": NOW},
            ],
        )
        connection.execute(
            insert(virtual_keys),
            [
                {
                    "id": key_id,
                    "key_hash": f"hash-{key_id}",
                    "key_hint": "sk-…",
                    "name": name,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for key_id, name in (("key_a", "alpha"), ("key_b", "beta"))
            ],
        )
    rows = spread_rows(900, START, 14)
    # The exact edges of a range that ends inside an hour.
    rows[1].created_at = datetime(2026, 2, 23, 13, 17, 5, 123456, tzinfo=UTC)
    rows[2].created_at = datetime(2026, 3, 2, 9, 42, tzinfo=UTC)
    await write_rows(engine, rows)
    return engine


class Ledger:
    """The reference: every ledger row and every name, summed here in Python."""

    def __init__(self, engine: Engine) -> None:
        with engine.connect() as connection:
            self.rows = connection.execute(select(usage_ledger)).all()
            self.names = {
                "team": dict(connection.execute(select(teams.c.id, teams.c.name)).all()),
                "service": dict(connection.execute(select(services.c.id, services.c.name)).all()),
                "key": dict(
                    connection.execute(select(virtual_keys.c.id, virtual_keys.c.name)).all()
                ),
            }

    def sums(
        self,
        group: Callable[[Any], Any],
        since: datetime | None = None,
        until: datetime | None = None,
        team_id: str | None = None,
    ) -> dict[Any, list[int]]:
        groups: dict[Any, list[int]] = {}
        for row in self.rows:
            created = row.created_at
            created = created.replace(tzinfo=UTC) if created.tzinfo is None else created
            if team_id is not None and row.team_id != team_id:
                continue
            if (since is not None and created < since) or (until is not None and created >= until):
                continue
            sums = groups.setdefault(group(row), [0, 0, 0, 0])
            sums[0] += 1
            sums[1] += row.prompt_tokens
            sums[2] += row.completion_tokens
            sums[3] += row.cost_nanousd
        return groups

    @staticmethod
    def totals(sums: list[int]) -> dict[str, Any]:
        return {
            "requests": sums[0],
            "prompt_tokens": sums[1],
            "completion_tokens": sums[2],
            "cost_usd": sums[3] / 1e9,
        }

    def spend_by(self, dimension: str, **where: Any) -> list[dict[str, Any]]:
        if dimension == "day":
            groups = self.sums(lambda r: _utc_day(r.created_at), **where)
            return [{"day": day, **self.totals(groups[day])} for day in sorted(groups)]
        column = _COLUMN.get(dimension, dimension)
        groups = self.sums(lambda r: getattr(r, column), **where)
        names = self.names.get(dimension)
        return [
            {
                dimension: value,
                **({"name": names.get(value)} if names is not None else {}),
                **self.totals(sums),
            }
            for value, sums in sorted(groups.items(), key=lambda item: -item[1][3])
        ]

    def summary(self, **where: Any) -> dict[str, Any]:
        total = self.sums(lambda r: None, **where).get(None, [0, 0, 0, 0])
        by_key = self.spend_by("key", **where)
        return {
            "total": self.totals(total),
            "by_key": [{"key_id": row.pop("key"), **row} for row in by_key],
            "by_model": self.spend_by("model", **where),
        }


def _utc_day(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.date().isoformat()


@pytest.mark.parametrize("team_id", [None, "team_x"])
async def test_spend_by_equals_a_scan_of_the_ledger(store: Engine, team_id: str | None) -> None:
    ledger = Ledger(store)
    for since, until in RANGES:
        utc_since = since.astimezone(UTC) if since else None
        utc_until = until.astimezone(UTC) if until else None
        for dimension in ("team", "service", "key", "model", "deployment", "day"):
            got = spend_by(store, dimension, since=since, until=until, team_id=team_id)
            expected = ledger.spend_by(dimension, since=utc_since, until=utc_until, team_id=team_id)
            assert got == expected, (dimension, since, until)
        summary = spend_summary(store, since=since, until=until, team_id=team_id)
        expected_summary = ledger.summary(since=utc_since, until=utc_until, team_id=team_id)
        assert {k: summary[k] for k in ("total", "by_key", "by_model")} == expected_summary
    assert spend_summary(store, team_id=team_id)["total"]["requests"] == len(
        [r for r in ledger.rows if team_id is None or r.team_id == team_id]
    )


async def test_monthly_report_equals_a_scan_of_the_ledger(store: Engine) -> None:
    ledger = Ledger(store)
    march, february = (
        {"since": datetime(2026, 3, 1, tzinfo=UTC), "until": datetime(2026, 4, 1, tzinfo=UTC)},
        {"since": datetime(2026, 2, 1, tzinfo=UTC), "until": datetime(2026, 3, 1, tzinfo=UTC)},
    )
    report = monthly_report(store, "2026-03")
    this = ledger.sums(lambda r: (r.team_id, r.service_id), **march)
    last = ledger.sums(lambda r: (r.team_id, r.service_id), **february)
    expected = {
        (
            ledger.names["team"].get(team) or team,
            ledger.names["service"].get(service) or service,
        ): (this.get((team, service), [0] * 4), last.get((team, service), [0] * 4))
        for team, service in this.keys() | last.keys()
    }
    assert len(report["by_team_service"]) == len(expected)
    for line in report["by_team_service"]:
        now, before = expected[line["team"], line["service"]]
        assert (line["requests"], line["tokens"]) == (now[0], now[1] + now[2])
        assert (line["cost_usd"], line["previous_cost_usd"]) == (now[3] / 1e9, before[3] / 1e9)
    costs = [line["cost_usd"] for line in report["by_team_service"]]
    assert costs == sorted(costs, reverse=True)
    by_model = ledger.sums(lambda r: r.model, **march)
    assert {m["model"]: (m["requests"], m["cost_usd"]) for m in report["by_model"]} == {
        model: (sums[0], sums[3] / 1e9) for model, sums in by_model.items()
    }
    assert report["total_cost_usd"] == sum(s[3] for s in this.values()) / 1e9
    assert report["previous_total_cost_usd"] == sum(s[3] for s in last.values()) / 1e9
