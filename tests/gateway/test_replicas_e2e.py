"""Two gateway processes sharing PostgreSQL and Redis hold one budget and one rate limit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis import Redis

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import (
    GatewayProcess,
    cli,
    reserved_prompt_tokens,
    scan_answer,
    simulator_model,
)
from tests.postgres import fresh_database


@pytest.fixture
def replicas(
    tmp_path: Path, postgres_url: str, redis_url: str, upstream_simulator: UpstreamSimulator
) -> Iterator[list[GatewayProcess]]:
    with Redis.from_url(redis_url) as client:
        client.flushall()
    env = {"LLMPLANE_DATABASE_URL": fresh_database(postgres_url), "LLMPLANE_REDIS_URL": redis_url}
    models = [
        simulator_model("sim", upstream_simulator.url),
        {"name": "mock", "deployments": [{"provider": "mock"}]},
    ]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first = GatewayProcess(tmp_path / "a", models, env).start()
    second = GatewayProcess(tmp_path / "b", models, env).start()
    yield [first, second]
    first.stop()
    second.stop()


async def _fire(targets: list[tuple[str, bytes]], key: str) -> list[int]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(url: str, body: bytes) -> int:
            async with session.post(f"{url}/v1/chat/completions", data=body) as response:
                scan_answer("POST", str(response.url), response.status, await response.read())
                return response.status

        return await asyncio.gather(*(one(url, body) for url, body in targets))


def _key(gateway: GatewayProcess, *args: str) -> dict[str, Any]:
    created = json.loads(cli("keys", "create", "--json", *args, url=gateway.url).stdout)
    time.sleep(1.0)  # every replica reloads budgets within its refresh interval (0.5 s)
    return created


def test_budget_for_ten_holds_across_two_replicas(
    replicas: list[GatewayProcess], upstream_simulator: UpstreamSimulator
) -> None:
    body = json.dumps(
        {
            "model": "sim",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "two replicas"}],
        }
    ).encode()
    worst_nano = reserved_prompt_tokens(body) * 1_000 + 10 * 2_000  # $1 / $2 per million tokens
    budget_usd = 10 * worst_nano / 1e9
    key = _key(replicas[0], "--name", "shared-budget", "--budget-usd", repr(budget_usd))
    upstream_simulator.configure(latency_ms=300)

    statuses = asyncio.run(_fire([(replicas[i % 2].url, body) for i in range(50)], key["key"]))

    assert statuses.count(200) == 10
    assert statuses.count(429) == 40
    summary = json.loads(cli("spend", "--json", url=replicas[1].url).stdout)
    spent = next(r["cost_usd"] for r in summary["by_key"] if r["key_id"] == key["id"])
    assert 0 < spent <= budget_usd


def test_rpm_holds_across_two_replicas(replicas: list[GatewayProcess]) -> None:
    key = _key(replicas[1], "--name", "shared-rpm", "--rpm", "60")
    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).encode()
    statuses = asyncio.run(_fire([(replicas[i % 2].url, body) for i in range(300)], key["key"]))
    assert 57 <= statuses.count(200) <= 63  # the issue allows 5 %; the window is exact
    assert statuses.count(200) + statuses.count(429) == 300


def test_team_rpm_holds_across_keys_and_replicas(replicas: list[GatewayProcess]) -> None:
    cli("teams", "create", "shared-team", "--rpm", "60", url=replicas[0].url)
    keys = [_key(replicas[i], "--name", f"team-rpm-{i}", "--team", "shared-team") for i in (0, 1)]
    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def both() -> list[int]:
        halves = await asyncio.gather(
            *(_fire([(replicas[j % 2].url, body) for j in range(150)], k["key"]) for k in keys)
        )
        return [*halves[0], *halves[1]]

    statuses = asyncio.run(both())
    assert 57 <= statuses.count(200) <= 63
    assert statuses.count(200) + statuses.count(429) == 300
