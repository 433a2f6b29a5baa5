"""``provider: litellm`` deployments: the long tail of providers through LiteLLM's adapters,
under the same governance as the native ones.

LiteLLM's ``openai/`` adapter is pointed at the upstream simulator, so these tests run
offline: what LiteLLM sends, how its failures become the gateway's errors, retries that
are the gateway's alone, and a client that cannot steer the call elsewhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.canary import canary
from tests.helpers import (
    ADMIN_KEY,
    GatewayProcess,
    first_disconnect,
    leave_during_call,
    openai_client,
)

SECRET = canary("provider key of a LiteLLM deployment", "sk-litellm-")


def _litellm_model(name: str, sim: UpstreamSimulator, upstream: str, **routing: Any) -> Any:
    return {
        "retries": 0,
        "backoff": {"base_s": 0.01, "max_s": 0.05},
        **routing,
        "name": name,
        "deployments": [
            {
                "provider": "litellm",
                "name": f"{name}-via-litellm",
                "model": f"openai/{upstream}",
                "api_base": sim.url,
                "api_key": SECRET,
            }
        ],
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    sim = upstream_simulator_session
    models = [
        _litellm_model("tail", sim, "lt-tail"),
        _litellm_model("tail-retried", sim, "lt-retried", retries=2),
        _litellm_model("tail-falls-back", sim, "lt-primary", retries=1, fallbacks=["native"]),
        {
            "name": "tail-claude",
            "retries": 0,
            "deployments": [
                {
                    "provider": "litellm",
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_base": sim.base,  # LiteLLM adds /v1/messages
                    "api_key": SECRET,
                }
            ],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "name": "native",
            "retries": 0,
            "deployments": [
                {"provider": "openai", "api_base": sim.url, "api_key": "x", "model": "lt-native"}
            ],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
    ]
    with GatewayProcess(tmp_path_factory.mktemp("litellm"), models) as process:
        yield process


@pytest.fixture
def sim(upstream_simulator_session: UpstreamSimulator) -> Iterator[UpstreamSimulator]:
    upstream_simulator_session.reset()
    yield upstream_simulator_session
    upstream_simulator_session.reset()


def _client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0, timeout=60)


def _sent(sim: UpstreamSimulator, upstream: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests if r["body"].get("model") == upstream]


def _ledger(gateway: GatewayProcess, request_id: str, attempts: int = 1) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 5
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline:
        rows = gateway.sql(
            "SELECT attempt, deployment, provider, status, prompt_tokens, completion_tokens, "
            "cost_nanousd FROM usage_ledger WHERE request_id = :id ORDER BY attempt",
            id=request_id,
        )
        if len(rows) >= attempts:
            return rows
        time.sleep(0.05)
    return rows


def test_a_litellm_deployment_answers_and_is_billed(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    client = _client(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="tail", messages=[{"role": "user", "content": "hello through litellm"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "This is a mock reply to: hello through litellm"
    assert raw.headers["x-llmplane-deployment"] == "tail-via-litellm"
    [sent] = _sent(sim, "lt-tail")
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"
    usage = reply.usage
    assert usage is not None
    [row] = _ledger(gateway, raw.headers["x-request-id"])
    assert row[1:6] == (
        "tail-via-litellm",
        "litellm",
        200,
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert row[6] == usage.prompt_tokens * 1_000 + usage.completion_tokens * 2_000


def test_a_litellm_stream_is_relayed_with_its_usage(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    client = _client(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="tail",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream it"}],
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a mock reply to: stream it"
    assert chunks[-1].usage is not None and not chunks[-1].choices  # OpenAI's usage chunk
    [row] = _ledger(gateway, raw.headers["x-request-id"])
    assert row[3:6] == (200, chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens)
    assert sim.requests[-1]["body"]["stream"] is True


def test_without_asking_for_usage_the_client_gets_no_usage_chunk(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    chunks = list(
        _client(gateway).chat.completions.create(
            model="tail", stream=True, messages=[{"role": "user", "content": "no usage"}]
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_client_cannot_choose_the_upstream_or_its_key(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """LiteLLM reads api_base, api_key and credentials from its keyword arguments: the
    gateway refuses the known ones, and the adapter passes on only OpenAI's parameters."""
    client = _client(gateway)
    for name in ("api_base", "api_key", "custom_llm_provider", "aws_secret_access_key"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="tail",
                messages=[{"role": "user", "content": "steer me"}],
                extra_body={name: "http://127.0.0.1:9/v1"},
            )
        assert refused.value.param == name
    reply = client.chat.completions.create(
        model="tail",
        messages=[{"role": "user", "content": "steer me"}],
        extra_body={
            "timeout": 0.000001,  # would make LiteLLM time out at once
            "litellm_params": {"api_base": "http://127.0.0.1:9/v1"},
            "api_base_url": "http://127.0.0.1:9/v1",
        },
    )
    assert reply.choices[0].message.content == "This is a mock reply to: steer me"
    [sent] = _sent(sim, "lt-tail")
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"
    assert "127.0.0.1:9" not in str(sent["body"])


def test_retries_are_the_gateways_alone(gateway: GatewayProcess, sim: UpstreamSimulator) -> None:
    """retries=2 and three 500s: exactly three upstream calls (LiteLLM's own retries are off)."""
    sim.add_faults({"kind": "status", "status": 500, "count": 3, "model": "lt-retried"})
    with pytest.raises(openai.InternalServerError) as raised:
        _client(gateway).chat.completions.create(
            model="tail-retried", messages=[{"role": "user", "content": "fail"}]
        )
    assert raised.value.status_code == 502
    assert len(_sent(sim, "lt-retried")) == 3
    rows = _ledger(gateway, raised.value.response.headers["x-request-id"], attempts=3)
    assert [(r[0], r[3]) for r in rows] == [(0, 502), (1, 502), (2, 502)]


def test_an_upstream_rate_limit_keeps_its_retry_after(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 429, "retry_after": 7, "model": "lt-tail"})
    with pytest.raises(openai.RateLimitError) as raised:
        _client(gateway).chat.completions.create(
            model="tail", messages=[{"role": "user", "content": "slow down"}]
        )
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "upstream_rate_limited"


def test_rejected_credentials_never_show_the_key(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults(
        {"kind": "status", "status": 401, "message": f"bad key {SECRET}", "model": "lt-tail"}
    )
    with pytest.raises(openai.APIStatusError) as raised:
        _client(gateway).chat.completions.create(
            model="tail", messages=[{"role": "user", "content": "who am i"}]
        )
    assert raised.value.status_code == 502
    assert raised.value.code == "upstream_auth_failed"
    assert SECRET not in raised.value.response.text


def test_an_upstream_refusal_is_passed_on_as_a_400(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults(
        {"kind": "status", "status": 400, "message": "temperature is too hot", "model": "lt-tail"}
    )
    with pytest.raises(openai.BadRequestError) as raised:
        _client(gateway).chat.completions.create(
            model="tail", messages=[{"role": "user", "content": "hot"}]
        )
    assert "temperature is too hot" in raised.value.message


def test_a_failing_litellm_stream_falls_back_before_its_first_byte(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503, "model": "lt-primary"})
    raw = _client(gateway).chat.completions.with_raw_response.create(
        model="tail-falls-back", stream=True, messages=[{"role": "user", "content": "fall"}]
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "This is a mock reply to: fall"
    assert raw.headers["x-llmplane-deployment"] == "native[0]"
    rows = _ledger(gateway, raw.headers["x-request-id"], attempts=2)
    served = [(r[1], r[3]) for r in rows]
    assert served == [("tail-falls-back-via-litellm", 502), ("native[0]", 200)]


def test_embeddings_go_through_litellm_too(gateway: GatewayProcess, sim: UpstreamSimulator) -> None:
    reply = _client(gateway).embeddings.create(model="tail", input=["one", "two"])
    assert len(reply.data) == 2 and len(reply.data[0].embedding) > 0
    [sent] = _sent(sim, "lt-tail")
    assert sent["path"] == "/v1/embeddings"


def test_a_client_leaving_cancels_the_litellm_call(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    # LiteLLM loads in the background after start-up: a first call waits for it, so that
    # the call below is with the upstream when the client leaves (whatever ran before).
    _client(gateway).chat.completions.create(
        model="tail", messages=[{"role": "user", "content": "warm"}]
    )
    sim.clear_requests()
    sim.add_faults({"kind": "delay", "ms": 3_000, "model": "lt-tail"})
    body = {"model": "tail", "messages": [{"role": "user", "content": "leave"}]}
    left_at = leave_during_call(f"{gateway.base_url}/chat/completions", body, "litellm-leaver")
    cancelled_at = first_disconnect(sim)
    assert cancelled_at is not None, "the upstream call was not cancelled"
    assert cancelled_at - left_at < 1.0
    assert [row[3] for row in _ledger(gateway, "litellm-leaver")] == [499]  # billed once


def test_a_litellm_stream_broken_after_its_first_byte_ends_with_an_error_event(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "break_stream", "after_chunks": 3, "model": "lt-tail"})
    with _client(gateway).chat.completions.with_streaming_response.create(
        model="tail", stream=True, messages=[{"role": "user", "content": "break me please"}]
    ) as response:
        request_id = response.headers["x-request-id"]
        raw = response.read().decode()
    events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e.strip()]
    assert "error" in json.loads(events[-1])  # a clean final error event
    assert '"content":"This"' in raw  # what arrived before the break was relayed
    [row] = _ledger(gateway, request_id)
    assert row[3] >= 500 and row[5] > 0  # billed for the tokens it sent


GUARDED_IMPORT = """
import asyncio, os, socket

def refuse(*args, **kwargs):
    raise SystemExit(f"network use while loading LiteLLM: {args[1:]}")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.getaddrinfo = refuse
os.environ.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
from llmplane.gateway.providers.via_litellm import load_litellm
asyncio.run(load_litellm())
print("loaded offline")
"""


def test_loading_litellm_never_reaches_the_network() -> None:
    """LiteLLM fetches its model cost map at import unless told not to; the adapter tells it."""
    result = subprocess.run(
        [sys.executable, "-c", GUARDED_IMPORT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded offline" in result.stdout


def test_a_non_openai_adapter_translates_both_ways(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """LiteLLM's anthropic/ adapter against the simulator's Messages API: OpenAI in, Anthropic
    on the wire, OpenAI out, usage billed."""
    client = _client(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="tail-claude", messages=[{"role": "user", "content": "hello claude"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "This is a mock reply to: hello claude"
    [sent] = [r for r in sim.requests if r["path"] == "/v1/messages"]
    assert sent["headers"]["x-api-key"] == SECRET
    assert sent["body"]["model"] == "claude-sonnet-4-5"
    assert sent["body"]["messages"][0]["role"] == "user"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    [row] = _ledger(gateway, raw.headers["x-request-id"])
    assert row[3:6] == (200, reply.usage.prompt_tokens, reply.usage.completion_tokens)
    chunks = list(
        client.chat.completions.create(
            model="tail-claude",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream claude"}],
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a mock reply to: stream claude"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
