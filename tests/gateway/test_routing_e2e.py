"""Retries, fallbacks, cooldowns and timeouts through a real gateway, with injected faults.

The gateway's models all point at the session's upstream simulator; each uses
its own upstream model id, so that a fault rule can target one deployment.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests import canary
from tests.helpers import (
    ADMIN_KEY,
    GatewayProcess,
    first_disconnect,
    http,
    leave_during_call,
    openai_client,
    simulator_model,
)

FAST_BACKOFF = {"base_s": 0.01, "max_s": 0.05}


def _model(name: str, url: str, upstream: str, **routing: Any) -> dict[str, Any]:
    return simulator_model(name, url, routing={"backoff": FAST_BACKOFF, **routing}, model=upstream)


@pytest.fixture(scope="module")
def routed(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    url = upstream_simulator_session.url
    models = [
        _model("primary", url, "up-primary", retries=2, fallbacks=["backup"]),
        _model("backup", url, "up-backup", retries=0),
        _model("limited", url, "up-limited", retries=2),
        _model("slow-start", url, "up-slow", retries=0, timeouts={"ttft_s": 5}),
        _model("streamer", url, "up-streamer", retries=1, fallbacks=["backup"]),
        _model(
            "small",
            url,
            "up-small",
            retries=1,
            context_window=30,
            context_window_fallbacks=["backup"],
            content_policy_fallbacks=["backup"],
        ),
        _model("breaker", url, "up-breaker", retries=0, cooldown={"failures": 2, "cooldown_s": 60}),
        {
            "name": "pair",
            "retries": 1,
            "backoff": FAST_BACKOFF,
            "cooldown": {"failures": 2, "window_s": 30, "cooldown_s": 3},
            "deployments": [
                {"provider": "openai", "name": n, "api_base": url, "model": f"up-{n}"}
                for n in ("pair-a", "pair-b")
            ],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "name": "checked",
            "retries": 0,
            "deployments": [
                {
                    "provider": "openai",
                    "name": name,
                    "api_base": url,
                    "model": f"up-{name}",
                    "health_check": {"path": path, "interval_s": 0.2, "timeout_s": 1},
                }
                for name, path in (("checked-a", "/v1/models"), ("checked-b", "/health"))
            ],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
    ]
    with GatewayProcess(tmp_path_factory.mktemp("routed"), models) as gateway:
        yield gateway


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=30)


def _ledger(gateway: GatewayProcess, request_id: str) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 5
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = gateway.sql(
            "SELECT attempt, model, deployment, status, cost_nanousd FROM usage_ledger "
            "WHERE request_id = :id ORDER BY attempt",
            id=request_id,
        )
        if (rows and rows[-1][3] in (200, 499)) or len(rows) > 3:
            return rows
        time.sleep(0.05)
    return rows


def _upstream_models(sim: UpstreamSimulator) -> list[str]:
    return [r["body"]["model"] for r in sim.requests if r["path"] == "/v1/chat/completions"]


CALLS = 1500  # 50 requests per second for 30 seconds, as the issue says


def test_thirty_percent_failures_with_a_fallback_are_invisible(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults(
        {"kind": "status", "status": 500, "model": "up-primary", "probability": 0.3, "count": -1}
    )
    body = json.dumps({"model": "primary", "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}

    async def paced() -> list[tuple[int, str]]:
        async with aiohttp.ClientSession(headers=headers) as session:

            async def one(i: int) -> tuple[int, str]:
                await asyncio.sleep(i / 50)  # 50 requests per second
                async with session.post(f"{routed.base_url}/chat/completions", data=body) as r:
                    await r.read()
                    return r.status, r.headers["x-request-id"]

            return await asyncio.gather(*(one(i) for i in range(CALLS)))

    results = asyncio.run(paced())
    assert [status for status, _ in results] == [200] * CALLS  # nothing reached a client
    http("GET", f"{routed.url}/admin/spend")  # waits until the ledger holds every call
    rows = routed.sql(
        "SELECT request_id, attempt, status, cost_nanousd FROM usage_ledger "
        "WHERE model IN ('primary', 'backup')"
    )
    ours = {request_id for _, request_id in results}
    attempts = Counter(r[0] for r in rows if r[0] in ours)
    served = Counter(r[0] for r in rows if r[0] in ours and r[2] == 200)
    assert max(attempts.values()) <= 3  # at most 1 + retries, fallbacks included
    assert set(served.values()) == {1} and len(served) == CALLS  # one billed row per request
    assert all(r[3] == 0 for r in rows if r[0] in ours and r[2] != 200)  # failures cost 0
    retried = sum(attempts.values()) - CALLS
    assert 0.2 * CALLS <= retried <= 0.45 * CALLS  # about 30 % needed a second attempt


def test_upstream_429_is_retried_after_retry_after_then_cooled_down(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults(
        {"kind": "status", "status": 429, "retry_after": 2, "model": "up-limited", "count": 3}
    )
    client = _client(routed)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert 3.6 <= time.monotonic() - started <= 5.0
    times = [r["at"] for r in sim.requests if (r["body"] or {}).get("model") == "up-limited"]
    assert len(times) == 3  # exactly 1 + retries attempts
    for earlier, later in itertools.pairwise(times):
        assert 1.8 <= later - earlier <= 2.3  # spaced by Retry-After (±10 %)
    request_id = refused.value.response.headers["x-request-id"]
    assert [row[3] for row in _ledger(routed, request_id)] == [429, 429, 429]
    # Cooled down for the Retry-After: the next call waits for it instead of hammering.
    sim.clear_requests()
    client.chat.completions.create(model="limited", messages=[{"role": "user", "content": "y"}])
    assert len(_upstream_models(sim)) == 1


def test_a_stream_failing_before_its_first_byte_falls_back(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503, "model": "up-streamer"})
    with _client(routed).chat.completions.with_streaming_response.create(
        model="streamer", stream=True, messages=[{"role": "user", "content": "a b c"}]
    ) as response:
        assert response.headers["x-llmplane-deployment"] == "backup[0]"
        chunks = list(response.parse())
        request_id = response.headers["x-request-id"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a mock reply to: a b c"
    assert _upstream_models(sim) == ["up-streamer", "up-backup"]  # fails over at once
    rows = _ledger(routed, request_id)
    assert [(r[0], r[1], r[3]) for r in rows] == [(0, "streamer", 502), (1, "backup", 200)]
    assert rows[1][4] > 0 and rows[0][4] == 0


def test_a_stream_failing_after_its_first_byte_ends_with_an_error_event(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "break_stream", "after_chunks": 3, "model": "up-streamer"})
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
    body = {
        "model": "streamer",
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six"}],
    }

    async def read() -> tuple[str, bytes]:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(f"{routed.base_url}/chat/completions", json=body) as response,
        ):
            return response.headers["x-request-id"], await response.read()

    request_id, raw = asyncio.run(read())
    canary.scan(raw, "a stream ending in an error event")
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    assert json.loads(events[-1].removeprefix("data: "))["error"]["code"] == "upstream_disconnected"
    assert len(events) == 4  # three relayed chunks, then the error event; no fallback
    assert _upstream_models(sim) == ["up-streamer"]
    rows = _ledger(routed, request_id)
    assert len(rows) == 1 and rows[0][3] == 502 and rows[0][4] > 0  # billed for what it sent


def test_no_first_token_within_ttft_gives_504(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "delay", "ms": 120_000, "model": "up-slow"})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as failed:
        list(
            _client(routed).chat.completions.create(
                model="slow-start", stream=True, messages=[{"role": "user", "content": "x"}]
            )
        )
    assert failed.value.status_code == 504
    assert 4.5 <= time.monotonic() - started <= 5.5


def test_a_prompt_too_long_for_the_model_goes_to_its_context_fallback(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    client = _client(routed)
    long_prompt = " ".join(["word"] * 100)  # over the 30-token window of "small"
    reply = client.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": long_prompt}]
    )
    assert reply.headers["x-llmplane-deployment"] == "backup[0]"
    assert _upstream_models(sim) == ["up-backup"]  # known too long: not even tried
    sim.clear_requests()
    sim.add_faults(
        {
            "kind": "status",
            "status": 400,
            "model": "up-small",
            "message": "Your request was rejected as a result of our content management policy.",
        }
    )
    refused_then_served = client.chat.completions.with_raw_response.create(
        model="small", messages=[{"role": "user", "content": "short"}]
    )
    assert refused_then_served.headers["x-llmplane-deployment"] == "backup[0]"
    assert _upstream_models(sim) == ["up-small", "up-backup"]
    sim.clear_requests()
    sim.add_faults({"kind": "status", "status": 400, "model": "up-small", "message": "bad"})
    with pytest.raises(openai.BadRequestError):  # an ordinary refusal is not retried
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    assert _upstream_models(sim) == ["up-small"]


def test_a_failing_deployment_is_cooled_down_then_probed(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 500, "model": "up-breaker", "count": 2})
    client = _client(routed)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="breaker", messages=[{"role": "user", "content": "x"}]
            )
    # Open circuit, but it is the model's only deployment: it is offered anyway (one probe),
    # and the probe's success closes the circuit.
    client.chat.completions.create(model="breaker", messages=[{"role": "user", "content": "x"}])
    assert len(_upstream_models(sim)) == 3


def test_a_cooled_down_deployment_gets_no_calls_until_its_probe_succeeds(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """Two failures open pair-a's circuit: its calls fail over to pair-b unseen by the client,
    pair-a gets no call for cooldown_s, then one probe whose success puts it back."""
    sim.add_faults({"kind": "status", "status": 500, "model": "up-pair-a", "count": 2})
    client = _client(routed)

    def call() -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="pair", messages=[{"role": "user", "content": "x"}]
        )
        return raw.headers["x-llmplane-deployment"]

    for _ in range(40):  # weighted at random: pair-a is tried (and fails) now and then
        call()
        if _upstream_models(sim).count("up-pair-a") == 2:
            break
    assert _upstream_models(sim).count("up-pair-a") == 2
    opened = time.monotonic()
    sim.clear_requests()
    served = []
    for _ in range(20):
        began = time.monotonic() - opened
        served.append((began, call()))
    within = [deployment for began, deployment in served if began < 2.9]
    assert len(within) >= 10 and set(within) == {"pair-b"}
    if len(within) == len(served):
        assert "up-pair-a" not in _upstream_models(sim)
    time.sleep(max(3.1 - (time.monotonic() - opened), 0))
    back = [call() for _ in range(40)]
    assert "pair-a" in back  # probed, succeeded, and back in rotation
    assert back.count("pair-a") >= 5


def test_unit_routing_config_is_validated(tmp_path: Path) -> None:
    gateway = GatewayProcess(
        tmp_path, [simulator_model("a", "http://127.0.0.1:9/v1", routing={"fallbacks": ["zz"]})]
    )
    with pytest.raises(RuntimeError, match="not a configured model"):
        gateway.start()


def test_a_client_leaving_a_non_streaming_call_cancels_the_upstream_call(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "delay", "ms": 3_000, "model": "up-backup"})
    body = {"model": "backup", "messages": [{"role": "user", "content": "leave"}]}
    left_at = leave_during_call(f"{routed.base_url}/chat/completions", body, "leaving-client-1")
    cancelled_at = first_disconnect(sim)
    assert cancelled_at is not None, "the upstream call was not cancelled"
    assert cancelled_at - left_at < 1.0
    rows = _ledger(routed, "leaving-client-1")
    assert [(r[3]) for r in rows] == [499]  # billed once, as abandoned


def test_a_sloppy_upstream_stream_reaches_the_client_well_formed(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "sloppy_stream", "model": "up-backup"})
    text = "héllo wörld 日本語 ✓"
    with _client(routed).chat.completions.with_streaming_response.create(
        model="backup", stream=True, messages=[{"role": "user", "content": text}]
    ) as response:
        request_id = response.headers["x-request-id"]
        raw = response.read()
    events = [e for e in raw.decode("utf-8").split("\n\n") if e.strip()]  # valid UTF-8
    assert events[-1] == "data: [DONE]"  # added for an upstream that forgot it
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == f"This is a mock reply to: {text}"
    http("GET", f"{routed.url}/admin/spend")  # waits until the ledger holds every call
    estimated = routed.sql(
        "SELECT usage_estimated, completion_tokens FROM usage_ledger WHERE request_id = :id",
        id=request_id,
    )
    assert len(estimated) == 1 and estimated[0][0] and estimated[0][1] > 0


def test_a_client_leaving_a_stream_after_five_chunks_closes_the_upstream(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.configure(tokens_per_second=10)
    body = {
        "model": "backup",
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(["word"] * 40)}],
    }
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "x-request-id": "leaving-stream-1"}

    async def read_five_then_leave() -> float:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(f"{routed.base_url}/chat/completions", json=body) as response,
        ):
            seen = 0
            async for line in response.content:
                seen += line.startswith(b"data: ")
                if seen == 5:
                    break
        return time.time()

    left_at = asyncio.run(read_five_then_leave())
    deadline = time.monotonic() + 2
    while not sim.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.disconnects and sim.disconnects[0][1] - left_at < 1.0
    rows = _ledger(routed, "leaving-stream-1")
    assert [r[3] for r in rows] == [499] and rows[0][4] > 0  # the partial call, billed once


def test_a_deployment_failing_its_health_check_gets_no_calls_until_it_passes(
    routed: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503, "path": "/v1/models", "count": -1})
    time.sleep(0.6)  # a few check rounds
    client = _client(routed)

    def served_by(calls: int) -> Counter[str]:
        return Counter(
            client.chat.completions.with_raw_response.create(
                model="checked", messages=[{"role": "user", "content": "x"}]
            ).headers["x-llmplane-deployment"]
            for _ in range(calls)
        )

    assert served_by(20) == Counter({"checked-b": 20})
    sim.reset()
    time.sleep(0.6)
    assert served_by(40)["checked-a"] > 0
