"""Anthropic's Messages API through the gateway, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import json

import anthropic
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, WRONG_KEY, GatewayProcess, anthropic_client, cli, http

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _client(gateway: GatewayProcess, key: str = ADMIN_KEY) -> anthropic.Anthropic:
    client: anthropic.Anthropic = anthropic_client(
        base_url=gateway.url, api_key=key, max_retries=0, timeout=30
    )
    return client


def test_messages_with_system_prompt_and_usage(gateway: GatewayProcess) -> None:
    message = _client(gateway).messages.create(
        model="mock",
        max_tokens=64,
        system="Answer briefly.",
        messages=[{"role": "user", "content": "hello from claude"}],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "This is a mock reply to: hello from claude"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_streamed_messages_arrive_as_anthropic_events(gateway: GatewayProcess) -> None:
    with _client(gateway).messages.stream(
        model="mock", max_tokens=64, messages=[{"role": "user", "content": "stream me please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "This is a mock reply to: stream me please"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_tool_use_round_trip(gateway: GatewayProcess) -> None:
    client = _client(gateway)
    asked = {"role": "user", "content": "get_weather for Paris"}
    first = client.messages.create(model="mock", max_tokens=64, tools=[WEATHER], messages=[asked])
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
    second = client.messages.create(
        model="mock",
        max_tokens=64,
        tools=[WEATHER],
        messages=[
            asked,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert second.content[0].text == "The tool returned: sunny"


def test_streamed_tool_use(gateway: GatewayProcess) -> None:
    with _client(gateway).messages.stream(
        model="mock",
        max_tokens=64,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and "city" in final.content[0].input


def test_a_streamed_upstream_failure_is_an_anthropic_error(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503})
    with pytest.raises(anthropic.APIStatusError) as failed:
        _client(gateway).messages.create(
            model="sim", max_tokens=16, messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "error"  # type: ignore[index]


def test_keys_models_and_budgets_are_enforced(gateway: GatewayProcess) -> None:
    created = json.loads(
        cli(
            "keys", "create", "--name", "claude-key", "--models", "mock", "--json", url=gateway.url
        ).stdout
    )
    client = _client(gateway, created["key"])
    assert client.messages.create(
        model="mock", max_tokens=8, messages=[{"role": "user", "content": "ok"}]
    ).content
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(
            model="sim", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.AuthenticationError):
        _client(gateway, WRONG_KEY).messages.create(
            model="mock", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    status, _, answer = http(
        "POST",
        f"{gateway.url}/v1/messages",
        {"model": "mock", "messages": [{"role": "user", "content": "no max_tokens"}]},
    )
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in answer["error"]["message"]
    summary = json.loads(cli("spend", "--json", url=gateway.url).stdout)
    mine = next(row for row in summary["by_key"] if row["key_id"] == created["id"])
    assert mine["requests"] == 1  # the refused calls cost nothing; the served one is billed
