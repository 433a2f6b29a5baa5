"""Rate limits on services, teams and models within a team, in one process and in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy.engine import Engine

from llmplane.accounting.budgets import AdmissionGuard, LocalAdmissionGuard, Reservation
from llmplane.accounting.keys import Principal
from llmplane.accounting.redis_counters import RedisAdmissionGuard, connect
from llmplane.errors import RateLimitError

# Two keys of one team and one service; the team allows 4 requests a minute, the service
# 1,000 tokens, and the team's use of "big" 2 requests a minute.
LIMITS = {
    "team_rpm": 4,
    "service_tpm": 1000,
    "team_model_limits": {"big": (2, None)},
}
ALICE = Principal(key_id="key_alice", name="alice", team_id="team_l", service_id="svc_l", **LIMITS)
BOB = Principal(key_id="key_bob", name="bob", team_id="team_l", service_id="svc_l", **LIMITS)
OTHER = Principal(key_id="key_other", name="other", team_id="team_o", rpm=100)

Guards = Callable[[int], Awaitable[list[AdmissionGuard]]]


@pytest.fixture(params=["local", "redis"])
async def guards(request: pytest.FixtureRequest, engine: Engine) -> AsyncIterator[Guards]:
    """Make ``n`` admission guards: one shared local guard, or ``n`` Redis replicas."""
    made: list[AdmissionGuard] = []

    async def make(n: int) -> list[AdmissionGuard]:
        if request.param == "local":
            made.append(LocalAdmissionGuard(engine))
            return made * n
        url = request.getfixturevalue("redis_url")
        flusher = connect(url)
        await flusher.flushall()
        await flusher.aclose()
        made.extend(RedisAdmissionGuard.from_url(engine, url) for _ in range(n))
        return made

    yield make
    for guard in set(made):
        await guard.aclose()


async def _outcome(guard: AdmissionGuard, who: Principal, model: str, tokens: int = 1) -> str:
    try:
        await guard.admit(who, 0, tokens, model)
    except RateLimitError as exc:
        return str(exc)
    return "ok"


async def test_team_rpm_holds_across_the_teams_keys(guards: Guards) -> None:
    replicas = await guards(2)
    outcomes = [await _outcome(replicas[i % 2], (ALICE, BOB)[i % 2], "small") for i in range(10)]
    assert outcomes[:4] == ["ok"] * 4
    assert all("This team is limited to 4 requests per minute" in o for o in outcomes[4:])
    assert await _outcome(replicas[0], OTHER, "small") == "ok"  # another team is not held


async def test_team_limit_for_one_model_leaves_other_models_alone(guards: Guards) -> None:
    guard = (await guards(1))[0]
    assert [await _outcome(guard, ALICE, "big") for _ in range(2)] == ["ok", "ok"]
    refused = await _outcome(guard, BOB, "big")
    assert "This team's use of model 'big' is limited to 2 requests per minute" in refused
    assert await _outcome(guard, BOB, "small") == "ok"


async def test_service_tpm_counts_worst_case_then_real_tokens(guards: Guards) -> None:
    here, there = await guards(2)
    first: Reservation = await here.admit(ALICE, 0, 600, "small")
    assert first.headers["x-ratelimit-remaining-tokens"] == "400"
    assert "This service is limited to 1000 tokens" in await _outcome(there, BOB, "small", 600)
    here.settle(first, 0, 100)
    await asyncio.sleep(0.05)  # a shared backend settles in a background batch
    second = await there.admit(BOB, 0, 600, "small")
    assert second.headers["x-ratelimit-remaining-tokens"] == "300"


async def test_a_refusal_by_one_limit_counts_against_none(guards: Guards) -> None:
    guard = (await guards(1))[0]
    for _ in range(2):
        await guard.admit(ALICE, 0, 1, "big")
    for _ in range(5):  # refused by the team's limit for "big": the team rpm is untouched
        assert "model 'big'" in await _outcome(guard, ALICE, "big")
    admitted = await guard.admit(ALICE, 0, 1, "small")
    assert admitted.headers["x-ratelimit-remaining-requests"] == "1"
    assert admitted.headers["x-ratelimit-limit-requests"] == "4"


async def test_headers_show_the_tightest_limit(guards: Guards) -> None:
    guard = (await guards(1))[0]
    tight_key = Principal(
        key_id="key_tight", name="t", team_id="team_l", service_id="svc_l", rpm=2, **LIMITS
    )
    first = await guard.admit(tight_key, 0, 1, "small")
    assert first.headers["x-ratelimit-limit-requests"] == "2"  # key: 1 left, team: 3 left
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    with pytest.raises(RateLimitError, match="This key is limited to 2"):
        await guard.admit(tight_key, 0, 1, "small")
        await guard.admit(tight_key, 0, 1, "small")
