"""Reserve-then-settle budgets on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from llmplane.accounting.budgets import (
    AdmissionGuard,
    Budget,
    LocalAdmissionGuard,
    Period,
    could_outspend,
    load_budgets,
    period_start,
    set_budget,
)
from llmplane.accounting.keys import Principal
from llmplane.errors import BudgetExceededError, InvalidRequestError, RateLimitError
from llmplane.store.tables import usage_ledger
from tests.helpers import record_spend, spread_rows, write_rows

KEY = Principal(key_id="key_a", name="a", team_id="team_x", service_id="svc_y")
NANO = 1_000_000_000


def _guard(engine: Engine) -> LocalAdmissionGuard:
    guard = LocalAdmissionGuard(engine)
    guard.replace_budgets(load_budgets(engine))
    return guard


def test_period_boundaries_are_utc_calendar_units() -> None:
    now = datetime(2026, 11, 28, 19, 5, tzinfo=UTC)  # a Saturday
    assert period_start(Period.DAY, now) == datetime(2026, 11, 28, tzinfo=UTC)
    assert period_start(Period.WEEK, now) == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_start(Period.MONTH, now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_start(Period.NONE, now).year == 1970


async def test_fifty_concurrent_admissions_against_room_for_ten(engine: Engine) -> None:
    set_budget(engine, "key", "key_a", limit_usd=1.0, period="month")
    guard = _guard(engine)
    worst = NANO // 10  # each request could cost $0.10: the budget fits exactly ten

    async def one() -> bool:
        try:
            await guard.admit(KEY, worst)
        except BudgetExceededError:
            return False
        return True

    admitted = await asyncio.gather(*(one() for _ in range(50)))
    assert sum(admitted) == 10


async def test_settling_releases_what_was_not_used(engine: Engine) -> None:
    set_budget(engine, "team", "team_x", limit_usd=1.0, period="day")
    guard = _guard(engine)
    first = await guard.admit(KEY, NANO)  # the whole budget held
    with pytest.raises(BudgetExceededError, match="team budget"):
        await guard.admit(KEY, 1)
    guard.settle(first, NANO // 4)  # it really cost a quarter
    guard.settle(first, NANO)  # a second settle changes nothing
    second = await guard.admit(KEY, 3 * NANO // 4)
    with pytest.raises(BudgetExceededError):
        await guard.admit(KEY, 1)
    guard.settle(second, 0)  # failed upstream: nothing spent, all released
    await guard.admit(KEY, 3 * NANO // 4)
    assert await guard.spent_nanousd(("team", "team_x"), Period.DAY) == NANO // 4


async def test_no_budget_is_never_refused(engine: Engine) -> None:
    guard = _guard(engine)
    for _ in range(100):
        guard.settle(await guard.admit(KEY, 10**15), 10**12)


async def test_spend_already_in_the_ledger_counts(engine: Engine) -> None:
    await record_spend(engine, NANO // 2, key_id="key_a", service_id="svc_y", team_id="team_x")
    set_budget(engine, "service", "svc_y", limit_usd=1.0, period="week")
    guard = _guard(engine)
    with pytest.raises(BudgetExceededError, match="service budget"):
        await guard.admit(KEY, NANO // 2 + 1)
    await guard.admit(KEY, NANO // 2)


async def test_spend_loaded_per_period_equals_a_scan_of_the_ledger(engine: Engine) -> None:
    now = datetime.now(UTC)
    rows = spread_rows(600, now - timedelta(days=40), 40)
    rows[0].created_at = period_start(Period.MONTH, now)  # the first instant of a period
    rows[1].created_at = period_start(Period.WEEK, now) - timedelta(microseconds=1)
    for row in rows[2:5]:  # today, for every scope
        row.created_at = period_start(Period.DAY, now)
        row.key_id, row.service_id, row.team_id = "key_a", "svc_1", "team_x"
    await write_rows(engine, [row for row in rows if row.created_at <= now])
    with engine.connect() as connection:
        ledger = connection.execute(select(usage_ledger)).all()
    day = period_start(Period.DAY, now)
    for scope in (("key", "key_a"), ("service", "svc_1"), ("team", "team_x")):
        mine = [r for r in ledger if getattr(r, f"{scope[0]}_id") == scope[1]]
        expected = {
            period: sum(
                r.cost_nanousd
                for r in mine
                if r.created_at.replace(tzinfo=r.created_at.tzinfo or UTC)
                >= period_start(period, now)
            )
            for period in Period
        }
        assert AdmissionGuard(engine).ledger_sums(scope, day) == expected
        assert 0 < expected[Period.DAY] <= expected[Period.MONTH] < expected[Period.NONE]


async def test_budget_set_mid_period_starts_from_the_spend_so_far(engine: Engine) -> None:
    guard = _guard(engine)
    guard.settle(await guard.admit(KEY, NANO), NANO // 2)  # spent before any budget existed
    set_budget(engine, "key", "key_a", limit_usd=1.0, period="month")
    guard.replace_budgets(load_budgets(engine))
    with pytest.raises(BudgetExceededError):
        await guard.admit(KEY, NANO // 2 + 1)


def test_budget_terms_are_validated(engine: Engine) -> None:
    with pytest.raises(InvalidRequestError, match="period"):
        set_budget(engine, "key", "k", limit_usd=1, period="fortnight")
    with pytest.raises(InvalidRequestError, match="scope"):
        set_budget(engine, "org", "k", limit_usd=1, period="day")
    with pytest.raises(InvalidRequestError, match="limit_usd"):
        set_budget(engine, "key", "k", limit_usd=-1, period="day")


async def test_tpm_counts_worst_case_then_real_tokens(engine: Engine) -> None:
    guard = _guard(engine)
    limited = Principal(key_id="key_t", name="t", tpm=1000)
    first = await guard.admit(limited, 0, 600)
    assert first.headers["x-ratelimit-remaining-tokens"] == "400"
    with pytest.raises(RateLimitError, match="1000 tokens per minute") as refused:
        await guard.admit(limited, 0, 600)
    assert refused.value.headers["x-ratelimit-limit-tokens"] == "1000"
    guard.settle(first, 0, 100)  # it really used 100 tokens
    second = await guard.admit(limited, 0, 600)
    assert second.headers["x-ratelimit-remaining-tokens"] == "300"


async def test_an_incremental_refresh_takes_only_changed_budgets(engine: Engine) -> None:
    set_budget(engine, "key", "key_a", limit_usd=1.0, period="month")
    guard = _guard(engine)
    before = datetime.now(UTC)
    set_budget(engine, "team", "team_x", limit_usd=0.5, period="day")
    changed = load_budgets(engine, changed_since=before)
    assert [(b.scope, b.scope_id) for b in changed] == [("team", "team_x")]
    guard.update_budgets(changed)
    assert {(b.scope, b.limit_nanousd) for b in guard.budgets()} == {
        ("key", NANO),
        ("team", NANO // 2),
    }
    with pytest.raises(BudgetExceededError, match="team budget"):
        await guard.admit(KEY, NANO // 2 + 1)


async def test_a_call_admitted_before_midnight_counts_in_the_new_day(engine: Engine) -> None:
    set_budget(engine, "key", "key_a", limit_usd=1.0, period="day")
    guard = _guard(engine)
    reservation = await guard.admit(KEY, NANO // 2)
    reservation.day -= timedelta(days=1)  # as if admitted yesterday, settled after midnight
    guard.settle(reservation, NANO // 4)
    assert await guard.spent_nanousd(("key", "key_a"), Period.DAY) == NANO // 4
    with pytest.raises(BudgetExceededError):
        await guard.admit(KEY, 3 * NANO // 4 + 1)


def test_could_outspend_compares_across_periods() -> None:
    monthly = Budget("b", "team", "t", 10 * NANO, Period.MONTH)
    assert could_outspend(NANO, Period.DAY, monthly)  # 31 days × $1 > $10
    assert not could_outspend(NANO // 4, Period.DAY, monthly)
    assert not could_outspend(2 * NANO, Period.WEEK, monthly)  # 5 × $2 = $10
    assert could_outspend(11 * NANO, Period.NONE, monthly)
    assert not could_outspend(10 * NANO, Period.MONTH, monthly)
    forever = Budget("b", "team", "t", 10 * NANO, Period.NONE)
    assert could_outspend(1, Period.DAY, forever)  # renews forever
    assert not could_outspend(10 * NANO, Period.NONE, forever)
