"""Budgets and rate limits through a real gateway process."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import (
    GatewayProcess,
    cli,
    http,
    openai_client,
    reserved_prompt_tokens,
    scan_answer,
)

# The shared gateway prices "sim" at $1 / $2 per million input / output tokens:
# 1,000 and 2,000 nano-USD per token. A request's worst case is one input token
# the gateway reserves for the prompt (its estimate for an unknown model) plus max_tokens
# output tokens.
IN_NANO, OUT_NANO = 1_000, 2_000


def _body(text: str, max_tokens: int = 10, **extra: Any) -> bytes:
    return json.dumps(
        {
            "model": "sim",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
            **extra,
        }
    ).encode()


def _worst_nano(body: bytes, max_tokens: int = 10) -> int:
    return reserved_prompt_tokens(body) * IN_NANO + max_tokens * OUT_NANO


async def _fire(gateway: GatewayProcess, key: str, bodies: list[bytes]) -> list[tuple[int, Any]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(body: bytes) -> tuple[int, Any]:
            url = f"{gateway.base_url}/chat/completions"
            async with session.post(url, data=body) as resp:
                text = await resp.text()
                scan_answer("POST", url, resp.status, text.encode())
                return resp.status, (json.loads(text) if text.startswith("{") else text)

        return await asyncio.gather(*(one(b) for b in bodies))


def _key(gateway: GatewayProcess, name: str, *args: str) -> dict[str, Any]:
    return json.loads(
        cli("keys", "create", "--name", name, "--json", *args, url=gateway.url).stdout
    )


def _key_spend(gateway: GatewayProcess, key_id: str) -> float:
    summary = json.loads(cli("spend", "--json", url=gateway.url).stdout)
    return next((r["cost_usd"] for r in summary["by_key"] if r["key_id"] == key_id), 0.0)


def test_fifty_concurrent_requests_against_a_budget_for_ten(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    body = _body("how many fit?")
    budget_usd = 10 * _worst_nano(body) / 1e9
    key = _key(gateway, "budget-10", "--budget-usd", repr(budget_usd), "--period", "day")
    sim.configure(latency_ms=300)  # all fifty are in flight before any settles

    results = asyncio.run(_fire(gateway, key["key"], [body] * 50))

    statuses = [status for status, _ in results]
    assert statuses.count(200) == 10
    refused = [answer for status, answer in results if status == 429]
    assert len(refused) == 40
    assert all(a["error"]["code"] == "budget_exceeded" for a in refused)
    assert all(a["error"]["type"] == "insufficient_quota" for a in refused)
    assert _key_spend(gateway, key["id"]) <= budget_usd


def test_a_failed_upstream_call_releases_its_reservation(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    body = _body("fail then succeed")
    key = _key(gateway, "budget-1", "--budget-usd", repr(_worst_nano(body) / 1e9))
    sim.add_faults({"kind": "status", "status": 500})
    assert asyncio.run(_fire(gateway, key["key"], [body]))[0][0] == 502
    assert asyncio.run(_fire(gateway, key["key"], [body]))[0][0] == 200
    assert asyncio.run(_fire(gateway, key["key"], [body]))[0][0] == 429  # now really spent


def test_a_cancelled_stream_releases_what_it_did_not_use(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    body = _body(" ".join(["word"] * 30), max_tokens=200, stream=True)
    worst = _worst_nano(body, 200)
    key = _key(gateway, "budget-1.5", "--budget-usd", repr(1.5 * worst / 1e9))
    sim.configure(tokens_per_second=20)

    async def leave_early_then_retry() -> tuple[int, int]:
        headers = {"Authorization": f"Bearer {key['key']}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            url = f"{gateway.base_url}/chat/completions"
            response = await session.post(url, data=body)
            await response.content.readline()
            async with session.post(url, data=body) as meanwhile:  # no room for a second
                during = meanwhile.status
            response.close()  # the client leaves mid-stream
            for _ in range(50):
                await asyncio.sleep(0.1)
                async with session.post(url, data=body) as again:
                    if again.status == 200:
                        await again.read()
                        return during, 200
            return during, again.status

    during, after = asyncio.run(leave_early_then_retry())
    assert during == 429
    assert after == 200


def test_a_key_without_budget_is_never_refused_for_budget(gateway: GatewayProcess) -> None:
    key = _key(gateway, "no-budget")
    body = json.dumps(
        {
            "model": "mock",
            "max_tokens": 100_000,
            "messages": [{"role": "user", "content": "x" * 5000}],
        }
    ).encode()
    results = asyncio.run(_fire(gateway, key["key"], [body] * 30))
    assert [status for status, _ in results] == [200] * 30


def test_rpm_limit_admits_exactly_the_limit(gateway: GatewayProcess) -> None:
    key = _key(gateway, "rpm-60", "--rpm", "60")
    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}).encode()
    results = asyncio.run(_fire(gateway, key["key"], [body] * 300))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 60
    assert statuses.count(429) == 240
    status, headers, answer = http(
        "POST", f"{gateway.base_url}/chat/completions", body, key=key["key"]
    )
    assert status == 429 and answer["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_admitted_requests_carry_rate_limit_headers(gateway: GatewayProcess) -> None:
    key = _key(gateway, "rpm-5", "--rpm", "5")
    client = openai_client(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
    response = client.chat.completions.with_raw_response.create(
        model="mock", messages=[{"role": "user", "content": "hi"}]
    )
    assert response.headers["x-ratelimit-limit-requests"] == "5"
    assert response.headers["x-ratelimit-remaining-requests"] == "4"


def test_team_budget_covers_all_its_keys(gateway: GatewayProcess, sim: UpstreamSimulator) -> None:
    team = json.loads(cli("teams", "create", "budgeted-team", "--json", url=gateway.url).stdout)
    body = _body("team spend")
    cli(
        "budgets",
        "set",
        "--scope",
        "team",
        "--target",
        "budgeted-team",
        "--limit-usd",
        repr(2 * _worst_nano(body) / 1e9),
        url=gateway.url,
    )
    first = _key(gateway, "team-key-1", "--team", team["name"])
    second = _key(gateway, "team-key-2", "--team", team["id"])
    sim.configure(latency_ms=300)

    async def both() -> list[tuple[int, Any]]:  # concurrently: nothing settles in between
        one, two = await asyncio.gather(
            _fire(gateway, first["key"], [body] * 3), _fire(gateway, second["key"], [body] * 3)
        )
        return [*one, *two]

    statuses = sorted(status for status, _ in asyncio.run(both()))
    assert statuses == [200, 200, 429, 429, 429, 429]
    by_team = json.loads(cli("spend", "--by", "team", "--json", url=gateway.url).stdout)
    mine = next(r for r in by_team["rows"] if r["team"] == team["id"])
    assert mine["name"] == "budgeted-team" and mine["requests"] == 2
    table = cli("spend", "--by", "team", url=gateway.url).stdout
    assert "budgeted-team" in table


@pytest.mark.parametrize(
    "args",
    [["--budget-usd", "1", "--period", "fortnight"], ["--rpm", "0"], ["--team", "no-such-team"]],
)
def test_bad_key_options_are_refused(gateway: GatewayProcess, args: list[str]) -> None:
    result = cli("keys", "create", "--name", "bad", *args, url=gateway.url, check=False)
    assert result.returncode != 0


def test_team_model_allowlist_and_max_tokens_ceiling(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    cli("teams", "create", "policy-team", "--models", "sim", "--max-tokens", "20", url=gateway.url)
    key = _key(gateway, "policy-key", "--team", "policy-team")
    client = openai_client(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["sim"]
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="ceiling of 20"):
        client.chat.completions.create(
            model="sim", max_tokens=21, messages=[{"role": "user", "content": "hi"}]
        )
    client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "hi"}])
    assert sim.requests[-1]["body"]["max_tokens"] == 20  # defaulted to the ceiling

    # A policy change reaches keys already in use within the refresh interval.
    cli("teams", "update", "policy-team", "--models", "sim,mock", url=gateway.url)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if [m.id for m in client.models.list()] == ["mock", "sim"]:
            break
        time.sleep(0.1)
    assert [m.id for m in client.models.list()] == ["mock", "sim"]


def test_tpm_limit_through_the_gateway(gateway: GatewayProcess) -> None:
    body = json.dumps(
        {"model": "mock", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    # worst case = the mock's prompt count (8) + 500 output tokens; room for one at a time
    prompt = reserved_prompt_tokens(body, "mock", "mock")
    assert prompt == 8  # "hi" (1), its role (1), the message's 3 and the reply's 3
    key = _key(gateway, "tpm-1", "--tpm", str(prompt + 500 + 100))
    status, headers, _ = http("POST", f"{gateway.base_url}/chat/completions", body, key=key["key"])
    assert status == 200
    limit = int(headers["x-ratelimit-limit-tokens"])
    remaining = int(headers["x-ratelimit-remaining-tokens"])
    assert remaining == limit - prompt - 500  # the worst case, before settlement
    # Settled at ~20 real tokens, so a second worst case fits after all.
    assert http("POST", f"{gateway.base_url}/chat/completions", body, key=key["key"])[0] == 200
    big = json.dumps(
        {"model": "mock", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    status, headers, answer = http(
        "POST", f"{gateway.base_url}/chat/completions", big, key=key["key"]
    )
    assert status == 429 and "tokens per minute" in answer["error"]["message"]
    assert headers["x-ratelimit-limit-tokens"] == str(limit)


def _statuses(gateway: GatewayProcess, key: str, model: str, count: int) -> list[int]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    return [status for status, _ in asyncio.run(_fire(gateway, key, [body] * count))]


def _wait_for_status(gateway: GatewayProcess, key: str, model: str, wanted: int) -> None:
    """Retry one call until it gets ``wanted`` (a policy change reaches cached keys within
    the refresh interval)."""
    deadline = time.monotonic() + 3
    while _statuses(gateway, key, model, 1) != [wanted]:
        assert time.monotonic() < deadline, f"never got {wanted}"
        time.sleep(0.1)


def test_team_service_and_per_model_rate_limits(gateway: GatewayProcess) -> None:
    cli(
        "teams",
        "create",
        "limited-team",
        "--rpm",
        "40",
        "--model-limit",
        "mock-embed:rpm=1",
        "--model-limit",
        "sim:rpm=5,tpm=100000",
        url=gateway.url,
    )
    shown = json.loads(cli("teams", "show", "limited-team", "--json", url=gateway.url).stdout)
    assert shown["rpm"] == 40
    assert shown["model_limits"] == {"mock-embed": {"rpm": 1}, "sim": {"rpm": 5, "tpm": 100000}}
    cli("services", "create", "chatbot", "--team", "limited-team", "--rpm", "10", url=gateway.url)
    in_service = _key(gateway, "svc-key", "--team", "limited-team", "--service", "chatbot")
    first, second = (_key(gateway, f"team-key-{i}", "--team", "limited-team") for i in (1, 2))

    # The service's 10 rpm holds its key; the team's 5 rpm for "sim" holds every key.
    assert _statuses(gateway, in_service["key"], "mock", 15).count(200) == 10
    sim_statuses = _statuses(gateway, first["key"], "sim", 3) + _statuses(
        gateway, second["key"], "sim", 3
    )
    assert sim_statuses.count(200) == 5
    status, headers, answer = http(
        "POST",
        f"{gateway.base_url}/chat/completions",
        json.dumps({"model": "sim", "messages": [{"role": "user", "content": "x"}]}).encode(),
        key=second["key"],
    )
    assert status == 429 and "team's use of model 'sim'" in answer["error"]["message"]
    assert headers["x-ratelimit-limit-requests"] == "5"
    # The team's 40 rpm holds all its keys together: 10 + 5 spent, 25 left.
    assert (
        _statuses(gateway, first["key"], "mock", 20) + _statuses(gateway, second["key"], "mock", 20)
    ).count(200) == 25

    # Raising the service's limit reaches its key, already cached, within the refresh.
    cli("services", "update", "chatbot", "--team", "limited-team", "--rpm", "none", url=gateway.url)
    cli("teams", "update", "limited-team", "--rpm", "none", url=gateway.url)
    _wait_for_status(gateway, in_service["key"], "mock", 200)
    updated = json.loads(
        cli(
            "teams",
            "update",
            "limited-team",
            "--model-limit",
            "sim:none",
            "--json",
            url=gateway.url,
        ).stdout
    )
    assert updated["rpm"] is None and updated["model_limits"] == {"mock-embed": {"rpm": 1}}
    _wait_for_status(gateway, first["key"], "sim", 200)
    audit = json.loads(cli("audit", "--type", "service", "--json", url=gateway.url).stdout)
    assert audit[0]["action"] == "service.update" and audit[0]["after"]["rpm"] is None


def test_a_team_admin_limits_its_own_services_only(gateway: GatewayProcess) -> None:
    for team in ("svc-owner", "svc-stranger"):
        cli("teams", "create", team, url=gateway.url)
        cli("services", "create", "app", "--team", team, url=gateway.url)
    admin = _key(gateway, "svc-owner-admin", "--team", "svc-owner", "--role", "team_admin")
    mine = http(
        "PATCH",
        f"{gateway.url}/admin/services/app",
        json.dumps({"team": "svc-owner", "tpm": 5000}).encode(),
        key=admin["key"],
    )
    assert mine[0] == 200 and mine[2]["tpm"] == 5000
    theirs = http(
        "PATCH",
        f"{gateway.url}/admin/services/app",
        json.dumps({"team": "svc-stranger", "tpm": 5000}).encode(),
        key=admin["key"],
    )
    assert theirs[0] == 403
    team_limit = http(
        "PATCH",
        f"{gateway.url}/admin/teams/svc-owner",
        json.dumps({"rpm": 100000}).encode(),
        key=admin["key"],
    )
    assert team_limit[0] == 403  # a team's own limits are the platform team's to set


@pytest.mark.parametrize(
    "body",
    [
        {"model_limits": {"no-such-model": {"rpm": 1}}},
        {"model_limits": {"mock": {"rpm": 0}}},
        {"model_limits": {"mock": {"rps": 1}}},
        {"model_limits": ["mock"]},
        {"rpm": -1},
        {"colour": "blue"},
    ],
)
def test_bad_team_limits_are_refused(gateway: GatewayProcess, body: dict[str, Any]) -> None:
    cli("teams", "create", "strict-team", url=gateway.url, check=False)
    status, _, answer = http(
        "PATCH", f"{gateway.url}/admin/teams/strict-team", json.dumps(body).encode()
    )
    assert status in (400, 404), answer
    assert answer["error"]["param"] in ("model_limits", "rpm", "colour", "model")
