"""``provider: anthropic`` deployments through a real gateway, with the simulator's
Messages API as the upstream."""

from __future__ import annotations

import json
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
    anthropic_client,
    http,
    openai_client,
    simulator_model,
)

KEY = canary("Anthropic provider key", "sk-ant-")
MESSAGES = "/v1/messages"
HELLO = [{"role": "user", "content": "hello claude"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _claude(name: str, api_base: str, **routing: Any) -> dict[str, Any]:
    return {
        "retries": 0,
        **routing,
        "name": name,
        "deployments": [
            {
                "provider": "anthropic",
                "api_base": api_base,
                "api_key": KEY,
                "model": "claude-sim",
                "anthropic_version": "2023-06-01",
            }
        ],
        "price": {
            "input_per_mtok": 3.0,
            "cached_input_per_mtok": 0.3,
            "cache_write_per_mtok": 3.75,
            "output_per_mtok": 15.0,
        },
    }


@pytest.fixture(scope="module")
def claude_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    base = upstream_simulator_session.base
    backoff = {"base_s": 0.01, "max_s": 0.05}
    models = [
        _claude("claude", base),
        _claude("claude-retry", base, retries=2, backoff=backoff),
        _claude("claude-fallback", base, retries=1, fallbacks=["gpt-backup"]),
        simulator_model("gpt-backup", upstream_simulator_session.url),
    ]
    with GatewayProcess(tmp_path_factory.mktemp("claude"), models) as process:
        yield process


@pytest.fixture
def client(claude_gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    sdk = openai_client(base_url=claude_gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
    yield sdk
    sdk.close()


def _sent(sim: UpstreamSimulator) -> list[dict[str, Any]]:
    return [r for r in sim.requests if r["path"] == MESSAGES]


def _ledger_row(gateway: GatewayProcess, request_id: str) -> tuple[Any, ...]:
    """The request's ledger row, once the background writer has flushed it."""
    query = (
        "SELECT provider, deployment, status, stream, prompt_tokens, completion_tokens, "
        "cached_tokens, usage_estimated, cost_nanousd FROM usage_ledger WHERE request_id = :rid"
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = gateway.sql(query, rid=request_id)
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for {request_id}")


def test_a_chat_call_goes_out_as_a_messages_request(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    reply = client.chat.completions.create(
        model="claude",
        max_tokens=50,
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],  # type: ignore[list-item]
        extra_headers={"x-api-key": "client-key", "anthropic-version": "1999-01-01"},
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "This is a mock reply to: hello claude"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    (request,) = _sent(sim)
    assert request["headers"]["x-api-key"] == KEY  # the deployment's key, not the client's
    assert request["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request["headers"]
    assert request["body"]["system"] == [{"type": "text", "text": "Be brief."}]
    assert request["body"]["model"] == "claude-sim" and request["body"]["max_tokens"] == 50


def test_a_stream_arrives_as_chat_chunks(client: openai.OpenAI, sim: UpstreamSimulator) -> None:
    chunks = list(
        client.chat.completions.create(
            model="claude",
            stream=True,
            stream_options={"include_usage": True},
            messages=HELLO,  # type: ignore[arg-type]
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a mock reply to: hello claude"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert _sent(sim)[0]["body"]["stream"] is True


def test_tool_calls_round_trip(client: openai.OpenAI, sim: UpstreamSimulator) -> None:
    asked = {"role": "user", "content": "get_weather for Paris"}
    first = client.chat.completions.create(
        model="claude",
        tools=[TOOL],  # type: ignore[list-item]
        messages=[asked],  # type: ignore[list-item]
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "mock"}  # type: ignore[union-attr]
    chunks = list(
        client.chat.completions.create(
            model="claude",
            stream=True,
            tools=[TOOL],  # type: ignore[list-item]
            messages=[asked],  # type: ignore[list-item]
        )
    )
    streamed = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert streamed[0].id == call.id and streamed[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "".join(d.function.arguments or "" for d in streamed) == call.function.arguments  # type: ignore[union-attr]
    second = client.chat.completions.create(
        model="claude",
        tools=[TOOL],  # type: ignore[list-item]
        messages=[
            asked,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],  # type: ignore[list-item]
    )
    assert second.choices[0].message.content == "The tool returned: sunny"
    turns = _sent(sim)[-1]["body"]["messages"]
    assert turns[1]["content"][0]["type"] == "tool_use"
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
    ]


def test_usage_and_cost_reach_the_ledger(
    client: openai.OpenAI, claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """The first call writes the marked preamble to the prompt cache (billed at the cache
    write price, 1.25x input here), the second reads it (at the cached price)."""
    preamble = "a long shared preamble " * 20  # 80 tokens, marked for prompt caching
    messages = [
        {
            "role": "system",
            "content": [{"type": "text", "text": preamble, "cache_control": {"type": "ephemeral"}}],
        },
        *HELLO,
    ]
    rows = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="claude",
            messages=messages,  # type: ignore[arg-type]
        )
        rows.append((raw.parse(), _ledger_row(claude_gateway, raw.headers["x-request-id"])))
    (written, first), (read, second) = rows
    assert written.usage is not None and read.usage is not None
    assert read.usage.prompt_tokens_details is not None
    assert read.usage.prompt_tokens_details.cached_tokens == 80
    provider, deployment, status, stream, prompt, completion, cached, estimated, cost = first
    assert (provider, deployment, status, bool(stream), bool(estimated)) == (
        "anthropic",
        "claude[0]",
        200,
        False,
        False,
    )
    assert (prompt, completion, cached) == (
        written.usage.prompt_tokens,
        written.usage.completion_tokens,
        0,
    )
    assert cost == (prompt - 80) * 3000 + 80 * 3750 + completion * 15000
    prompt, completion, cached, cost = second[4], second[5], second[6], second[8]
    assert cached == 80
    assert cost == (prompt - 80) * 3000 + 80 * 300 + completion * 15000


def test_a_streamed_call_is_billed_from_the_upstream_usage(
    client: openai.OpenAI, claude_gateway: GatewayProcess
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="claude",
        stream=True,
        messages=HELLO,  # type: ignore[arg-type]
    )
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)  # not asked for: hidden from the client
    row = _ledger_row(claude_gateway, raw.headers["x-request-id"])
    assert row[2] == 200 and bool(row[3]) and not row[7]  # streamed, usage not estimated
    assert row[4] > 0 and row[5] > 0


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 529, "retry_after": 0.2},
        {"kind": "status", "status": 429, "retry_after": 0.2},
    ],
)
def test_overloaded_and_rate_limited_calls_are_retried_after_retry_after(
    client: openai.OpenAI, sim: UpstreamSimulator, fault: dict[str, Any]
) -> None:
    sim.add_faults({**fault, "path": MESSAGES})
    reply = client.chat.completions.create(model="claude-retry", messages=HELLO)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "This is a mock reply to: hello claude"
    first, second = (r["at"] for r in _sent(sim))
    assert second - first >= 0.2  # the upstream's Retry-After, not the 10 ms backoff


def test_a_stream_failing_before_its_first_byte_falls_back_to_openai(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "stream_error", "after_chunks": 0, "path": MESSAGES})
    chunks = list(
        client.chat.completions.create(model="claude-fallback", stream=True, messages=HELLO)  # type: ignore[arg-type]
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert [r["path"] for r in sim.requests] == [MESSAGES, "/v1/chat/completions"]


def test_an_error_event_mid_stream_ends_the_client_stream_with_an_error(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    sim.configure(tokens_per_second=200)  # events in separate writes: the first gets out
    sim.add_faults({"kind": "stream_error", "after_chunks": 4, "path": MESSAGES})
    stream = client.chat.completions.create(model="claude", stream=True, messages=HELLO)  # type: ignore[arg-type]
    received: list[str] = []
    with pytest.raises(openai.APIError, match="overloaded") as failed:
        received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert not isinstance(failed.value, openai.APIStatusError)  # an event, not a status
    assert "".join(received) == "This is"  # what came before the error was passed on


def test_an_upstream_401_names_no_key(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults(
        {"kind": "status", "status": 401, "message": f"invalid x-api-key {KEY}", "path": MESSAGES}
    )
    status, _, body = http(
        "POST",
        f"{claude_gateway.base_url}/chat/completions",
        {"model": "claude", "messages": HELLO},
    )
    assert status == 502
    assert body["error"]["code"] == "upstream_auth_failed"
    assert KEY not in json.dumps(body)


def test_a_prompt_too_long_is_passed_on_as_a_400(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    message = "prompt is too long: 210000 tokens > 200000 maximum"
    sim.add_faults({"kind": "status", "status": 400, "message": message, "path": MESSAGES})
    status, _, body = http(
        "POST",
        f"{claude_gateway.base_url}/chat/completions",
        {"model": "claude", "messages": HELLO},
    )
    assert status == 400
    assert body["error"]["message"] == message
    assert body["error"]["code"] == "context_length_exceeded"


def test_embeddings_on_an_anthropic_model_are_refused_clearly(
    claude_gateway: GatewayProcess,
) -> None:
    status, _, body = http(
        "POST", f"{claude_gateway.base_url}/embeddings", {"model": "claude", "input": "x"}
    )
    assert status == 400 and "serves chat completions" in body["error"]["message"]


def test_the_anthropic_sdk_through_the_gateway_to_an_anthropic_upstream(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    with anthropic_client(
        base_url=claude_gateway.url, api_key=ADMIN_KEY, max_retries=0, timeout=30
    ) as sdk:
        message = sdk.messages.create(
            model="claude",
            max_tokens=64,
            system="Be brief.",
            messages=HELLO,  # type: ignore[arg-type]
        )
        with sdk.messages.stream(
            model="claude",
            max_tokens=64,
            messages=HELLO,  # type: ignore[arg-type]
        ) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert message.content[0].text == "This is a mock reply to: hello claude"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.usage.input_tokens > 0
    assert streamed == "This is a mock reply to: hello claude"
    assert final.usage.output_tokens > 0
    upstream = _sent(sim)
    assert len(upstream) == 2
    assert upstream[0]["body"]["system"] == "Be brief."  # passed through as sent
    assert upstream[0]["headers"]["x-api-key"] == KEY


RICH_REQUEST: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 300,
    "top_k": 5,
    "thinking": {"type": "enabled", "budget_tokens": 200},
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "what is 2+2?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Simple sum.", "signature": "sig-abc"},
                {"type": "text", "text": "4"},
            ],
        },
        {"role": "user", "content": "and 3+3?"},
    ],
}


def test_messages_reach_an_anthropic_deployment_as_sent(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """What the chat shape cannot carry (thinking and its signed blocks, cache_control on
    the system prompt, top_k) reaches Claude intact, and its answer comes back unchanged."""
    status, headers, reply = http("POST", f"{claude_gateway.url}/v1/messages", RICH_REQUEST)
    assert status == 200, reply
    (sent,) = _sent(sim)
    assert sent["body"] == {**RICH_REQUEST, "model": "claude-sim"}
    assert reply["id"].startswith("msg_") and reply["model"] == "claude-sim"  # upstream's own
    assert reply["content"][0]["text"] == "This is a mock reply to: and 3 + 3 ?"
    row = _ledger_row(claude_gateway, headers["x-request-id"])
    usage = reply["usage"]
    written = usage["cache_creation_input_tokens"]
    prompt = usage["input_tokens"] + usage["cache_read_input_tokens"] + written
    assert row[:6] == ("anthropic", "claude[0]", 200, False, prompt, usage["output_tokens"])
    assert row[6] == usage["cache_read_input_tokens"] == 0 and written > 0  # cached from now on


def test_a_messages_stream_is_relayed_as_anthropic_sent_it(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    with (
        anthropic_client(
            base_url=claude_gateway.url, api_key=ADMIN_KEY, max_retries=0, timeout=30
        ) as sdk,
        sdk.messages.stream(
            model="claude",
            max_tokens=64,
            messages=HELLO,  # type: ignore[arg-type]
            extra_body={"top_k": 3},
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == "This is a mock reply to: hello claude"
    (sent,) = _sent(sim)
    assert sent["body"]["stream"] is True and sent["body"]["top_k"] == 3
    row = _ledger_row(claude_gateway, request_id)
    assert row[2:6] == (200, True, final.usage.input_tokens, final.usage.output_tokens)
    assert row[7] is False or row[7] == 0  # counted from the stream, not estimated


def test_a_messages_stream_falls_back_from_claude_to_a_bridged_model(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    """The anthropic deployment fails before its first event; the fallback is an OpenAI
    deployment, bridged through chat, and the client still gets Anthropic's events."""
    sim.add_faults({"kind": "status", "status": 529, "path": MESSAGES})
    body = {**RICH_REQUEST, "model": "claude-fallback", "stream": True}
    status, headers, raw = http("POST", f"{claude_gateway.url}/v1/messages", body)
    assert status == 200
    assert headers["x-llmplane-deployment"] == "gpt-backup[0]"
    names = [line.removeprefix("event: ") for line in raw.splitlines() if line.startswith("event:")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    deltas = [
        json.loads(line.removeprefix("data: "))["delta"]
        for line in raw.splitlines()
        if line.startswith("data: ") and '"content_block_delta"' in line
    ]
    assert "".join(d.get("text", "") for d in deltas) == "This is a mock reply to: and 3 + 3 ?"


def test_an_error_in_a_messages_stream_after_its_first_event_ends_it_cleanly(
    claude_gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "stream_error", "after_chunks": 4, "path": MESSAGES})
    body = {**RICH_REQUEST, "stream": True}
    status, headers, raw = http("POST", f"{claude_gateway.url}/v1/messages", body)
    assert status == 200
    events = [e for e in raw.split("\n\n") if e.strip()]
    assert events[-1].startswith("event: error")
    error = json.loads(events[-1].split("data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"]
    assert sum(e.startswith("event: error") for e in events) == 1  # not the upstream's and ours
    row = _ledger_row(claude_gateway, headers["x-request-id"])
    assert row[2] >= 500 and row[5] > 0  # failed, billed for what it sent
