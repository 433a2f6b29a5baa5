"""The simulator's Anthropic Messages API, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import anthropic
import openai
import orjson
import pytest

from llmplane.testing.upstream import UpstreamSimulator

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
HELLO = [{"role": "user", "content": "hello claude"}]


@pytest.fixture
def client(sim: UpstreamSimulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim.base, api_key="sk-ant-x", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def test_a_message_looks_like_the_real_api(
    client: anthropic.Anthropic, sim: UpstreamSimulator
) -> None:
    message = client.messages.create(
        model="claude-sim", max_tokens=64, system="Be brief.", messages=HELLO
    )
    assert message.id.startswith("msg_") and message.model == "claude-sim"
    assert message.content[0].type == "text"
    assert message.content[0].text == "This is a mock reply to: hello claude"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    request = sim.requests[-1]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["authorization"] == "Bearer sk-ant-x"  # how this SDK sends it
    assert request["headers"]["anthropic-version"]
    assert request["body"]["system"] == "Be brief."


def test_max_tokens_cuts_the_reply(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="claude-sim", max_tokens=2, messages=HELLO)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 2


def test_a_cached_prefix_is_written_once_then_read(client: anthropic.Anthropic) -> None:
    system = [{"type": "text", "text": "a long shared preamble " * 20}]
    plain = client.messages.create(model="claude-sim", max_tokens=64, system=system, messages=HELLO)
    marked = [{**system[0], "cache_control": {"type": "ephemeral"}}]
    first = client.messages.create(model="claude-sim", max_tokens=64, system=marked, messages=HELLO)
    second = client.messages.create(
        model="claude-sim", max_tokens=64, system=marked, messages=HELLO
    )
    assert (plain.usage.cache_read_input_tokens, plain.usage.cache_creation_input_tokens) == (0, 0)
    assert (first.usage.cache_read_input_tokens, first.usage.cache_creation_input_tokens) == (0, 80)
    assert (second.usage.cache_read_input_tokens, second.usage.cache_creation_input_tokens) == (
        80,
        0,
    )
    assert first.usage.input_tokens + 80 == plain.usage.input_tokens
    assert second.usage.input_tokens + 80 == plain.usage.input_tokens


def test_a_stream_has_the_real_event_sequence(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="claude-sim", max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)
    assert kinds[-2] == "message_delta"
    assert final.content[0].text == "This is a mock reply to: hello claude"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 1


def test_a_streamed_tool_call_arrives_as_input_json_deltas(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-sim",
        max_tokens=64,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "get_weather for Paris"}],
    ) as stream:
        deltas = [
            event.delta.type
            for event in stream
            if event.type == "content_block_delta"  # type: ignore[union-attr]
        ]
        final = stream.get_final_message()
    assert deltas == ["input_json_delta"]
    assert final.stop_reason == "tool_use"
    call = final.content[0]
    assert call.type == "tool_use" and call.id and call.input == {"city": "mock"}


def test_structured_output_follows_the_schema(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-sim",
        max_tokens=64,
        messages=HELLO,
        output_config={"format": {"type": "json_schema", "schema": WEATHER["input_schema"]}},
    )
    assert orjson.loads(message.content[0].text) == {"city": "mock"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.APIStatusError, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error"),
    ],
)
def test_status_faults_have_anthropics_shape(
    client: anthropic.Anthropic,
    sim: UpstreamSimulator,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    sim.add_faults({"kind": "status", "status": status, "retry_after": 3})
    with pytest.raises(error_class) as failed:
        client.messages.create(model="claude-sim", max_tokens=8, messages=HELLO)
    assert failed.value.status_code == status
    assert failed.value.body["error"]["type"] == error_type  # type: ignore[index]
    assert failed.value.response.headers["retry-after"] == "3"


def test_a_stream_error_fault_ends_the_stream_with_an_error_event(
    client: anthropic.Anthropic, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "stream_error", "after_chunks": 3})
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as failed,
        client.messages.stream(model="claude-sim", max_tokens=64, messages=HELLO) as stream,
    ):
        seen.extend(event.type for event in stream)
    assert seen[0] == "message_start" and "message_stop" not in seen
    assert "Overloaded" in str(failed.value)


def test_a_stream_error_fault_in_a_chat_stream(sim: UpstreamSimulator) -> None:
    sim.add_faults({"kind": "stream_error", "status": 500, "after_chunks": 2})
    with openai.OpenAI(base_url=sim.url, api_key="x", max_retries=0) as sdk:
        stream = sdk.chat.completions.create(
            model="sim-model", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
        with pytest.raises(openai.APIError, match="Simulated upstream failure: 500"):
            list(stream)


async def test_requests_the_real_api_refuses(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base}/v1/messages"
    body = {"model": "claude-sim", "max_tokens": 8, "messages": HELLO}
    async with http.post(url, json=body) as resp:  # no anthropic-version
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    headers = {"anthropic-version": "2023-06-01"}
    async with http.post(url, json={**body, "max_tokens": None}, headers=headers) as resp:
        error = (await resp.json())["error"]
        assert resp.status == 400 and "max_tokens" in error["message"]


async def test_the_key_travels_as_x_api_key(http: aiohttp.ClientSession) -> None:
    body = {"model": "claude-sim", "max_tokens": 8, "messages": HELLO}
    with UpstreamSimulator(api_key="sk-ant-right") as sim:
        url = f"{sim.base}/v1/messages"
        for key, status in (("sk-ant-wrong", 401), ("sk-ant-right", 200)):
            headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
            async with http.post(url, json=body, headers=headers) as resp:
                assert resp.status == status
                if status == 401:
                    assert (await resp.json())["error"]["type"] == "authentication_error"
