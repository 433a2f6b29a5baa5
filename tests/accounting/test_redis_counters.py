"""Budgets and rate limits in a real Redis, as every replica shares them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy.engine import Engine

from llmplane.accounting.budgets import Period, load_budgets, set_budget
from llmplane.accounting.keys import Principal
from llmplane.accounting.redis_counters import RedisAdmissionGuard
from llmplane.errors import BudgetExceededError, RateLimitError, ServiceUnavailableError
from tests.helpers import record_spend

NANO = 1_000_000_000
KEY = Principal(key_id="key_r", name="r", team_id="team_r")
LIMITED = Principal(key_id="key_r", name="r", team_id="team_r", rpm=5)


Replicas = Callable[..., list[RedisAdmissionGuard]]


@pytest.fixture
async def replicas(engine: Engine, redis: Redis, redis_url: str) -> AsyncIterator[Replicas]:
    """Make three guards with their own connections, as three replicas would have; all
    are closed after the test."""
    made: list[RedisAdmissionGuard] = []

    def make(**options: Any) -> list[RedisAdmissionGuard]:
        guards = [RedisAdmissionGuard.from_url(engine, redis_url, **options) for _ in range(3)]
        for guard in guards:
            guard.replace_budgets(load_budgets(engine))
        made.extend(guards)
        return guards

    yield make
    for guard in made:
        await guard.aclose()


async def test_fifty_admissions_over_three_replicas_against_room_for_ten(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    set_budget(engine, "key", "key_r", limit_usd=1.0, period="month")
    guards = replicas()

    async def one(i: int) -> bool:
        try:
            await guards[i % 3].admit(KEY, NANO // 10)
        except BudgetExceededError:
            return False
        return True

    assert sum(await asyncio.gather(*(one(i) for i in range(50)))) == 10


async def test_settlement_counts_real_cost_and_releases_the_rest(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    set_budget(engine, "team", "team_r", limit_usd=1.0, period="day")
    here, there, _ = replicas()
    held = await here.admit(KEY, NANO)
    with pytest.raises(BudgetExceededError, match="team budget"):
        await there.admit(KEY, 1)
    here.settle(held, NANO // 4)
    await here.aclose()  # waits for the background settlement
    await there.admit(KEY, 3 * NANO // 4)
    assert await there.spent_nanousd(("team", "team_r"), Period.DAY) == NANO // 4
    await there.aclose()


async def test_a_crashed_replicas_holds_expire(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    set_budget(engine, "key", "key_r", limit_usd=1.0, period="month")
    crashed, alive, _ = replicas(reservation_ttl_s=0.3)
    await crashed.admit(KEY, NANO)  # never settled: the replica died
    with pytest.raises(BudgetExceededError):
        await alive.admit(KEY, 1)
    await asyncio.sleep(0.4)
    await alive.admit(KEY, NANO)
    await alive.aclose()
    await crashed.aclose()


async def test_counters_are_rebuilt_from_the_ledger_after_redis_loses_them(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    await record_spend(engine, NANO // 2, key_id="key_r")
    set_budget(engine, "key", "key_r", limit_usd=1.0, period="month")
    guard = replicas()[0]
    await guard.admit(KEY, NANO // 4)
    await redis.flushall()  # Redis loses everything
    with pytest.raises(BudgetExceededError):
        await guard.admit(KEY, NANO // 2 + 1)  # the ledger still says $0.50 is spent
    await guard.admit(KEY, NANO // 2)
    await guard.aclose()


async def test_rpm_holds_across_replicas(engine: Engine, redis: Redis, replicas: Replicas) -> None:
    guards = replicas()
    outcomes = []
    for i in range(12):
        try:
            reservation = await guards[i % 3].admit(LIMITED, 1)
            outcomes.append(reservation.headers["x-ratelimit-remaining-requests"])
        except RateLimitError as exc:
            outcomes.append(exc.headers["x-ratelimit-remaining-requests"])
            assert int(exc.headers["retry-after"]) >= 1
    assert outcomes == ["4", "3", "2", "1", "0"] + ["0"] * 7


async def test_a_request_refused_by_budget_does_not_use_up_the_rpm(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    set_budget(engine, "key", "key_r", limit_usd=1.0, period="month")
    guard = replicas()[0]
    for _ in range(10):
        with pytest.raises(BudgetExceededError):
            await guard.admit(LIMITED, 2 * NANO)
    reservation = await guard.admit(LIMITED, 1)
    assert reservation.headers["x-ratelimit-remaining-requests"] == "4"


async def test_unreachable_redis_fails_closed_or_open(engine: Engine) -> None:
    set_budget(engine, "key", "key_r", limit_usd=1.0, period="month")
    closed = RedisAdmissionGuard.from_url(engine, "redis://127.0.0.1:9/0")
    closed.replace_budgets(load_budgets(engine))
    with pytest.raises(ServiceUnavailableError):
        await closed.admit(KEY, 1)
    opened = RedisAdmissionGuard.from_url(engine, "redis://127.0.0.1:9/0", failure_mode="open")
    opened.replace_budgets(load_budgets(engine))
    opened.settle(await opened.admit(KEY, 1), 1)
    assert opened.fail_open_admissions == 1
    for guard in (closed, opened):
        await guard.aclose()


async def test_tpm_holds_across_replicas_and_settles_real_tokens(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    here, there, _ = replicas()
    limited = Principal(key_id="key_t", name="t", tpm=1000)
    first = await here.admit(limited, 0, 600)
    assert first.headers["x-ratelimit-remaining-tokens"] == "400"
    with pytest.raises(RateLimitError, match="tokens per minute"):
        await there.admit(limited, 0, 600)
    here.settle(first, 0, 100)
    await asyncio.sleep(0.05)  # the batched settlement goes out
    second = await there.admit(limited, 0, 600)
    assert second.headers["x-ratelimit-remaining-tokens"] == "300"


async def test_a_call_admitted_before_midnight_counts_in_the_new_day(
    engine: Engine, redis: Redis, replicas: Replicas
) -> None:
    set_budget(engine, "key", "key_r", limit_usd=1.0, period="day")
    guard = replicas()[0]
    guard.settle(await guard.admit(KEY, 1), 0)  # today's counter exists
    await asyncio.sleep(0.05)
    reservation = await guard.admit(KEY, NANO // 2)
    # As if admitted yesterday and settled after midnight: the hold lives under yesterday.
    reservation.day -= timedelta(days=1)
    today, yesterday = (
        d.date().isoformat() for d in (reservation.day + timedelta(days=1), reservation.day)
    )
    for name in await redis.keys("*:holds") + await redis.keys("*:expiry"):
        await redis.rename(name, name.decode().replace(today, yesterday))
    guard.settle(reservation, NANO // 4)
    await asyncio.sleep(0.05)  # the batched settlement goes out
    assert await guard.spent_nanousd(("key", "key_r"), Period.DAY) == NANO // 4
    assert await redis.hlen(f"llmplane:budget:key:key_r:day:{yesterday}:holds") == 0
