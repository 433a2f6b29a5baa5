"""The hour and day rollups always equal a GROUP BY over the ledger rows that landed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from llmplane.store import migrate
from llmplane.store.tables import usage_ledger, usage_rollups
from tests.helpers import spread_rows, write_rows

START = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
Sums = tuple[int, int, int, int, int, int, float]


def _utc(value: datetime) -> datetime:
    # SQLite gives back naive UTC times, PostgreSQL aware ones in the session's zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ledger_group_by(engine: Engine) -> dict[tuple[Any, ...], Sums]:
    """What the rollups must hold, computed from the ledger's rows."""
    with engine.connect() as connection:
        rows = connection.execute(select(usage_ledger)).all()
    expected: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        hour = _utc(row.created_at).replace(minute=0, second=0, microsecond=0)
        dimensions = (row.team_id or "", row.service_id or "", row.key_id or "", row.model)
        for grain, bucket in (("hour", hour), ("day", hour.replace(hour=0))):
            sums = expected.setdefault((grain, bucket, *dimensions, row.deployment), [0] * 7)
            sums[0] += 1
            sums[1] += row.status >= 400
            sums[2] += row.prompt_tokens
            sums[3] += row.completion_tokens
            sums[4] += row.cached_tokens
            sums[5] += row.cost_nanousd
            sums[6] += row.latency_ms
    return {key: (*sums,) for key, sums in expected.items()}


def stored_rollups(engine: Engine) -> dict[tuple[Any, ...], Sums]:
    """Every rollup, keyed like :func:`ledger_group_by`."""
    with engine.connect() as connection:
        rows = connection.execute(select(usage_rollups)).all()
    return {
        (r.grain, _utc(r.bucket), r.team_id, r.service_id, r.key_id, r.model, r.deployment): (
            r.requests,
            r.errors,
            r.prompt_tokens,
            r.completion_tokens,
            r.cached_tokens,
            r.cost_nanousd,
            r.latency_ms_sum,
        )
        for r in rows
    }


def assert_rollups_match_the_ledger(engine: Engine) -> None:
    expected, stored = ledger_group_by(engine), stored_rollups(engine)
    assert stored.keys() == expected.keys()
    for key, sums in expected.items():
        assert stored[key][:6] == sums[:6], key
        assert stored[key][6] == pytest.approx(sums[6]), key


async def test_rollups_equal_a_group_by_over_the_ledger(engine: Engine) -> None:
    await write_rows(engine, spread_rows(700, START, 4))
    assert_rollups_match_the_ledger(engine)
    grains = {key[0] for key in stored_rollups(engine)}
    assert grains == {"hour", "day"}


async def test_a_duplicate_row_is_counted_once(engine: Engine) -> None:
    rows = spread_rows(40, START, 4)
    first = await write_rows(engine, rows[:30])
    assert first.rejected == 0
    again = dataclasses.replace(rows[3])  # the same (request_id, attempt) in one batch
    # A retried batch that partly landed: rows 20..29 are in the store already.
    second = await write_rows(engine, [*rows[30:], again, *rows[20:30]], batch_size=100)
    assert second.rejected == 11
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(usage_ledger)).scalar() == 40
    assert_rollups_match_the_ledger(engine)


async def test_a_row_the_store_refuses_is_not_rolled_up(engine: Engine) -> None:
    rows = spread_rows(5, START, 4)
    rows[2].prompt_tokens = None  # NOT NULL in the schema
    ledger = await write_rows(engine, rows)
    assert ledger.rejected == 1
    assert_rollups_match_the_ledger(engine)
    day = {k: v for k, v in stored_rollups(engine).items() if k[0] == "day"}
    assert sum(sums[0] for sums in day.values()) == 4


async def test_the_migration_fills_the_rollups_from_the_rows_already_there(
    empty_engine: Engine,
) -> None:
    migrate(empty_engine, "0004")
    rows = spread_rows(300, START, 4)
    for row in rows:  # SQLAlchemy writes SQLite times without converting them to UTC
        row.created_at = row.created_at.astimezone(UTC)
    # The columns the ledger had at 0004 (later ones, such as guardrails, came after).
    at_0004 = [
        {k: v for k, v in dataclasses.asdict(row).items() if k not in ("guardrails", "prompt")}
        for row in rows
    ]
    with empty_engine.begin() as connection:
        connection.execute(insert(usage_ledger), at_0004)
    migrate(empty_engine)
    assert_rollups_match_the_ledger(empty_engine)
    # The writer adds to the rollups the migration made (same bucket, same key).
    before = len(stored_rollups(empty_engine))
    late = dataclasses.replace(rows[0], request_id="late")
    await write_rows(empty_engine, [late])
    assert len(stored_rollups(empty_engine)) == before
    assert_rollups_match_the_ledger(empty_engine)
