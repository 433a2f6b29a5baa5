"""``/v1/responses`` passed through to OpenAI-compatible upstreams, bridged for the others.

A real gateway in front of the upstream simulator, driven by the ``openai`` SDK:
the simulator shows which API each attempt used; the ledger shows that the
same governance as chat (retries, fallbacks, budgets, limits, one row per
attempt) applies to both.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.canary import canary
from tests.helpers import (
    ADMIN_KEY,
    PROVIDER_KEY,
    GatewayProcess,
    cli,
    http,
    openai_client,
    simulator_model,
)

AZURE_KEY = canary("Azure provider key", "azure-")
FAST = {"backoff": {"base_s": 0.01, "max_s": 0.05}}
IN_NANO, OUT_NANO = 1_000, 2_000  # simulator_model's $1 / $2 per million tokens


def _model(name: str, url: str, upstream: str, retries: int, **deployment: Any) -> dict[str, Any]:
    routing = {**FAST, "retries": retries}
    if name == "rstream":
        routing["fallbacks"] = ["rbackup"]
    return simulator_model(name, url, routing=routing, model=upstream, **deployment)


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    sim = upstream_simulator_session
    url = sim.url
    models = [
        _model("native", url, "up-native", retries=2),
        _model("rstream", url, "up-rstream", retries=1),
        _model("rbackup", url, "up-rbackup", retries=0),
        _model("bridged", url, "up-bridged", retries=0, responses_api="bridge"),
        _model("nogo", url, "up-nogo", retries=0),
        {
            "name": "mixed",
            "retries": 1,
            **FAST,
            "deployments": [
                {
                    "provider": "openai",
                    "name": "mixed-openai",
                    "api_base": url,
                    "api_key": PROVIDER_KEY,
                    "model": "up-mixed",
                    "weight": 1_000_000,
                },
                {"provider": "mock", "name": "mixed-mock", "weight": 0.000001},
            ],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "name": "az",
            "retries": 0,
            "deployments": [
                {
                    "provider": "azure",
                    "api_base": sim.base,
                    "api_key": AZURE_KEY,
                    "model": "gpt-4o",
                    "azure_deployment": "prod-4o",
                }
            ],
        },
        {"name": "mock", "deployments": [{"provider": "mock"}]},
    ]
    with GatewayProcess(tmp_path_factory.mktemp("responses"), models) as gateway:
        yield gateway


@pytest.fixture
def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai_client(base_url=gw.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=30)


def _ledger(gw: GatewayProcess, request_id: str, attempts: int = 1) -> list[tuple[Any, ...]]:
    """The request's ledger rows (attempt, deployment, endpoint, status, prompt, completion,
    cached, cost, estimated), once ``attempts`` rows are there."""
    deadline = time.monotonic() + 5
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = gw.sql(
            "SELECT attempt, deployment, endpoint, status, prompt_tokens, completion_tokens, "
            "cached_tokens, cost_nanousd, usage_estimated FROM usage_ledger "
            "WHERE request_id = :id ORDER BY attempt",
            id=request_id,
        )
        if len(rows) >= attempts:
            return rows
        time.sleep(0.05)
    return rows


def _sent(sim: UpstreamSimulator, model: str) -> list[str]:
    """The paths of the simulator's requests for ``model``, in order."""
    return [r["path"] for r in sim.requests if (r["body"] or {}).get("model") == model]


def test_a_native_response_is_passed_through_and_billed_from_its_usage(
    gw: GatewayProcess, client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    raw = client.responses.with_raw_response.create(
        model="native", instructions="Be brief.", input="hello native", metadata={"k": "v"}
    )
    response = raw.parse()
    assert response.output_text == "This is a mock reply to: hello native"
    assert response.model == "up-native"  # the upstream's answer, untouched
    request = sim.requests[-1]
    assert request["path"] == "/v1/responses"  # not chat
    assert request["body"]["model"] == "up-native"
    assert request["body"]["instructions"] == "Be brief."  # the body as the client sent it
    assert request["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    rows = _ledger(gw, raw.headers["x-request-id"])
    assert [r[:4] for r in rows] == [(0, "native[0]", "responses", 200)]
    assert rows[0][4:7] == (usage.input_tokens, usage.output_tokens, 0)
    assert rows[0][7] == usage.input_tokens * IN_NANO + usage.output_tokens * OUT_NANO
    assert not rows[0][8]
    assert float(raw.headers["x-llmplane-cost-usd"]) == pytest.approx(rows[0][7] / 1e9)


def test_a_native_stream_with_the_sdk(
    gw: GatewayProcess, client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    with client.responses.with_streaming_response.create(
        model="native", input="stream me natively", stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        events = list(response.parse())
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "This is a mock reply to: stream me natively"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert _sent(sim, "up-native") == ["/v1/responses"]
    assert "stream_options" not in sim.requests[-1]["body"]  # nothing added upstream
    usage = events[-1].response.usage  # type: ignore[union-attr]
    rows = _ledger(gw, request_id)
    assert rows[0][2:6] == ("responses", 200, usage.input_tokens, usage.output_tokens)
    assert not rows[0][8]


def test_a_500_is_retried(
    gw: GatewayProcess, client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 500, "model": "up-native"})
    raw = client.responses.with_raw_response.create(model="native", input="try again")
    assert raw.parse().output_text == "This is a mock reply to: try again"
    assert _sent(sim, "up-native") == ["/v1/responses", "/v1/responses"]
    rows = _ledger(gw, raw.headers["x-request-id"], attempts=2)
    assert [(r[0], r[3]) for r in rows] == [(0, 502), (1, 200)]
    assert rows[0][7] == 0 and rows[1][7] > 0


def test_a_native_stream_failing_before_its_first_byte_falls_back(
    gw: GatewayProcess, client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503, "model": "up-rstream"})
    with client.responses.with_streaming_response.create(
        model="rstream", input="a b c", stream=True
    ) as response:
        assert response.headers["x-llmplane-deployment"] == "rbackup[0]"
        request_id = response.headers["x-request-id"]
        events = list(response.parse())
    assert events[-1].type == "response.completed"
    assert [r["path"] for r in sim.requests] == ["/v1/responses", "/v1/responses"]
    rows = _ledger(gw, request_id, attempts=2)
    assert [(r[0], r[1], r[3]) for r in rows] == [(0, "rstream[0]", 502), (1, "rbackup[0]", 200)]


def _raw_stream(gw: GatewayProcess, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def read() -> tuple[str, bytes]:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(f"{gw.base_url}/responses", json=body) as response,
        ):
            assert response.status == 200
            return response.headers["x-request-id"], await response.read()

    request_id, raw = asyncio.run(read())
    events = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert lines.get("event") == data["type"]  # named events, as OpenAI sends them
            events.append(data)
    return request_id, events


def test_a_native_stream_broken_mid_way_ends_with_an_error_event(
    gw: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "break_stream", "after_chunks": 5, "model": "up-rstream"})
    request_id, events = _raw_stream(
        gw, {"model": "rstream", "input": "one two three four five six", "stream": True}
    )
    assert len(events) == 6  # five relayed, then the error; no fallback after the first byte
    error = events[-1]
    assert error["type"] == "error" and error["code"] == "upstream_disconnected"
    assert error["sequence_number"] == events[-2]["sequence_number"] + 1
    assert _sent(sim, "up-rstream") == ["/v1/responses"]
    rows = _ledger(gw, request_id)
    assert [(r[3], r[8]) for r in rows] == [(502, 1)]  # usage estimated


def test_an_upstream_error_event_is_a_failure_not_a_success(
    gw: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """An upstream that gives up with its own error event: before the first byte the call
    falls back; after it the client gets one error event and the ledger a failed attempt."""
    sim.add_faults({"kind": "stream_error", "after_chunks": 0, "model": "up-rstream"})
    request_id, events = _raw_stream(
        gw, {"model": "rstream", "input": "fall back please", "stream": True}
    )
    assert events[-1]["type"] == "response.completed"
    rows = _ledger(gw, request_id)
    assert [r[3] for r in rows] == [502, 200]  # the failed native attempt, then the backup
    sim.add_faults({"kind": "stream_error", "after_chunks": 4, "model": "up-rstream"})
    request_id, events = _raw_stream(
        gw, {"model": "rstream", "input": "one two three four five six", "stream": True}
    )
    assert [e["type"] for e in events].count("error") == 1
    assert events[-1]["type"] == "error" and events[-1]["code"] == "upstream_stream_failed"
    assert [r[3] for r in _ledger(gw, request_id)] == [502]


def test_a_native_stream_without_usage_is_estimated(
    gw: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "no_usage", "model": "up-native"})
    request_id, events = _raw_stream(
        gw, {"model": "native", "input": "count these words", "stream": True}
    )
    assert events[-1]["type"] == "response.completed" and events[-1]["response"]["usage"] is None
    rows = _ledger(gw, request_id)
    status, prompt, completion, estimated = rows[0][3], rows[0][4], rows[0][5], rows[0][8]
    assert status == 200 and estimated and prompt > 0 and completion > 0


def test_a_bridge_deployment_calls_chat_upstream(
    gw: GatewayProcess, client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    raw = client.responses.with_raw_response.create(model="bridged", input="via chat")
    assert raw.parse().output_text == "This is a mock reply to: via chat"
    with client.responses.stream(model="bridged", input="stream via chat") as stream:
        final = stream.get_final_response()
    assert final.output_text == "This is a mock reply to: stream via chat"
    assert _sent(sim, "up-bridged") == ["/v1/chat/completions", "/v1/chat/completions"]
    rows = _ledger(gw, raw.headers["x-request-id"])
    assert rows[0][2:4] == ("responses", 200) and not rows[0][8]


def test_a_bridged_attempt_refuses_previous_response_id(
    gw: GatewayProcess, sim: UpstreamSimulator
) -> None:
    body = {"model": "bridged", "input": "x", "previous_response_id": "resp_1"}
    status, _, answer = http("POST", f"{gw.base_url}/responses", body)
    assert status == 400 and answer["error"]["param"] == "previous_response_id"
    assert _sent(sim, "up-bridged") == []
    native = {**body, "model": "native"}
    status, _, _ = http("POST", f"{gw.base_url}/responses", native)
    assert status == 200  # passed through: the upstream holds the state
    assert sim.requests[-1]["body"]["previous_response_id"] == "resp_1"


def test_background_responses_are_refused(gw: GatewayProcess) -> None:
    body = {"model": "native", "input": "x", "background": True}
    status, _, answer = http("POST", f"{gw.base_url}/responses", body)
    assert status == 400 and answer["error"]["param"] == "background"


def test_an_upstream_without_the_responses_api_is_bridged_from_then_on(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 404, "path": "/v1/responses", "model": "up-nogo"})
    first = client.responses.create(model="nogo", input="no responses here")
    second = client.responses.create(model="nogo", input="still none")
    assert first.output_text == "This is a mock reply to: no responses here"
    assert second.output_text == "This is a mock reply to: still none"
    assert _sent(sim, "up-nogo") == [
        "/v1/responses",
        "/v1/chat/completions",
        "/v1/chat/completions",  # remembered: no second try of /responses
    ]


def test_a_mixed_group_falls_back_from_openai_to_the_mock(
    gw: GatewayProcess, client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503, "model": "up-mixed"})
    raw = client.responses.with_raw_response.create(model="mixed", input="either way")
    assert raw.parse().output_text == "This is a mock reply to: either way"
    assert raw.headers["x-llmplane-deployment"] == "mixed-mock"
    with client.responses.with_streaming_response.create(
        model="mixed", input="stream either way", stream=True
    ) as response:
        assert response.headers["x-llmplane-deployment"] == "mixed-openai"
        events = list(response.parse())
    assert events[-1].type == "response.completed"
    assert _sent(sim, "up-mixed") == ["/v1/responses", "/v1/responses"]
    rows = _ledger(gw, raw.headers["x-request-id"], attempts=2)
    assert [(r[1], r[3]) for r in rows] == [("mixed-openai", 502), ("mixed-mock", 200)]


def test_the_mock_model_serves_responses(client: openai.OpenAI) -> None:
    response = client.responses.create(model="mock", input="hello mock")
    assert response.output_text == "This is a mock reply to: hello mock"


def test_an_azure_deployment_uses_the_v1_responses_surface(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    response = client.responses.create(model="az", input="hi azure")
    assert response.output_text == "This is a mock reply to: hi azure"
    request = sim.requests[-1]
    assert request["path"] == "/v1/responses"
    assert request["body"]["model"] == "prod-4o"  # the Azure deployment, in the body
    assert request["headers"]["api-key"] == AZURE_KEY


def _key(gw: GatewayProcess, name: str, *args: str) -> dict[str, Any]:
    created = cli("keys", "create", "--name", name, "--json", *args, url=gw.url)
    answer: dict[str, Any] = json.loads(created.stdout)
    return answer


def test_rate_limits_and_budgets_refuse_as_for_chat(
    gw: GatewayProcess, sim: UpstreamSimulator
) -> None:
    limited = _key(gw, "responses-rpm", "--rpm", "2")
    client = openai_client(base_url=gw.base_url, api_key=limited["key"], max_retries=0)
    client.responses.create(model="native", input="one")
    client.responses.create(model="native", input="two", stream=True).close()
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model="native", input="three")
    assert refused.value.code == "rate_limit_exceeded"
    broke = _key(gw, "responses-budget", "--budget-usd", "0.000001")
    poor = openai_client(base_url=gw.base_url, api_key=broke["key"], max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        poor.responses.create(model="native", input="too dear")
    assert refused.value.code == "budget_exceeded"
    assert len(_sent(sim, "up-native")) == 2  # the refused calls never left the gateway


def test_a_team_ceiling_holds_max_output_tokens(gw: GatewayProcess, sim: UpstreamSimulator) -> None:
    cli("teams", "create", "responses-team", "--max-tokens", "20", url=gw.url)
    key = _key(gw, "responses-team-key", "--team", "responses-team")
    client = openai_client(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    with pytest.raises(openai.BadRequestError, match="ceiling of 20"):
        client.responses.create(model="native", input="hi", max_output_tokens=21)
    client.responses.create(model="native", input="hi")
    assert sim.requests[-1]["body"]["max_output_tokens"] == 20  # defaulted to the ceiling
