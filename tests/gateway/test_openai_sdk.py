"""The official openai SDK against a real ``llmplane up`` process."""

from __future__ import annotations

import base64
import json
import math
import struct

import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, PROVIDER_KEY, GatewayProcess, http, openai_client

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)


def test_models_list_shows_configured_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["mock", "mock-embed", "sim", "sim-slow", "down"]


def test_chat_completion_from_mock(client: openai.OpenAI) -> None:
    response = client.chat.completions.with_raw_response.create(
        model="mock",
        messages=[{"role": "user", "content": "Hello platform"}],
        temperature=0.2,
        seed=7,
        user="alice",
        metadata={"feature": "greeting"},
    )
    completion = response.parse()
    assert completion.choices[0].message.content == "This is a mock reply to: Hello platform"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    # prompt tokens at $1/M plus completion tokens at $2/M
    expected = (
        completion.usage.prompt_tokens * 1.0 + completion.usage.completion_tokens * 2.0
    ) / 1e6
    assert float(response.headers["x-llmplane-cost-usd"]) == pytest.approx(expected)
    assert response.headers["x-request-id"].startswith("req_")


def test_same_request_gets_same_answer(client: openai.OpenAI) -> None:
    ask = {"model": "mock", "messages": [{"role": "user", "content": "Be deterministic"}]}
    first = client.chat.completions.create(**ask)
    second = client.chat.completions.create(**ask)
    assert first.choices[0].message.content == second.choices[0].message.content


def test_max_tokens_stop_and_n(client: openai.OpenAI) -> None:
    cut = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "one two three four five"}],
        max_tokens=3,
    )
    assert cut.choices[0].message.content == "This is a"
    assert cut.choices[0].finish_reason == "length"
    stopped = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "stop here please"}],
        stop=["here"],
        max_completion_tokens=50,
    )
    assert stopped.choices[0].message.content == "This is a mock reply to: stop "
    several = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hi"}], n=3
    )
    assert [c.index for c in several.choices] == [0, 1, 2]


def test_stream_with_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a mock reply to: stream me"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 9


def test_stream_without_usage_hides_the_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
        )
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_tool_loop(client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Call get_weather for Paris"}]
    first = client.chat.completions.create(
        model="mock",
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(
        model="mock",
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].message.content == "The tool returned: sunny , 21 C"
    assert second.choices[0].finish_reason == "stop"


def test_tool_choice_none_and_forced(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "use get_weather"}]
    none = client.chat.completions.create(
        model="mock",
        messages=ask,
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None
    forced = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "hello"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert forced.choices[0].message.tool_calls is not None


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="mock",
            messages=[{"role": "user", "content": "get_weather now"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
    )
    arguments = "".join(
        c.choices[0].delta.tool_calls[0].function.arguments or ""
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert json.loads(arguments) == {"city": "mock"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_json_schema_and_object(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    structured = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "a person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    assert json.loads(structured.choices[0].message.content or "") == {"name": "mock", "age": 1}
    loose = client.chat.completions.create(
        model="mock",
        messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(loose.choices[0].message.content or ""), dict)


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="mock-embed", input=["the cat sat", "the cat sat", "quantum finance"]
    )
    first, second, third = (d.embedding for d in result.data)
    assert first == second
    assert first != third
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, rel_tol=1e-5)
    assert len(first) == 384
    short = client.embeddings.create(
        model="mock-embed", input="x", dimensions=64, encoding_format="float"
    )
    assert len(short.data[0].embedding) == 64
    assert result.usage.prompt_tokens == 8


def test_simulator_deployment_gets_rewritten_model_and_platform_key(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    completion = client.chat.completions.create(
        model="sim",
        messages=[{"role": "user", "content": "through the simulator"}],
    )
    assert completion.choices[0].message.content == "This is a mock reply to: through the simulator"
    sent = sim.requests[-1]
    assert sent["body"]["model"] == "sim-model"
    assert sent["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert ADMIN_KEY not in json.dumps(sent)


def test_simulator_stream_passes_usage_only_when_asked(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    plain = list(
        client.chat.completions.create(
            model="sim", messages=[{"role": "user", "content": "count"}], stream=True
        )
    )
    assert sim.requests[-1]["body"]["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in plain)
    with_usage = list(
        client.chat.completions.create(
            model="sim",
            messages=[{"role": "user", "content": "count"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None


def test_embeddings_base64_through_simulator(gateway: GatewayProcess) -> None:
    status, _, data = http(
        "POST",
        f"{gateway.base_url}/embeddings",
        {"model": "sim", "input": "hello", "encoding_format": "base64", "dimensions": 8},
    )
    assert status == 200
    vector = struct.unpack("<8f", base64.b64decode(data["data"][0]["embedding"]))
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-5)
