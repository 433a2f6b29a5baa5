"""OpenAI's Responses API through the gateway, driven by the official ``openai`` SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.helpers import ADMIN_KEY, GatewayProcess, http, openai_client

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0) as made:
        yield made


def test_a_response_with_instructions_and_usage(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="mock", instructions="Be brief.", input="hello responses"
    )
    assert response.status == "completed"
    assert response.output_text == "This is a mock reply to: hello responses"
    assert response.usage is not None and response.usage.output_tokens > 0


def test_a_streamed_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="mock", input="stream this response") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "This is a mock reply to: stream this response"
    assert final.output_text == "".join(deltas) and final.status == "completed"
    assert final.usage is not None and final.usage.input_tokens > 0


def test_function_calls_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="mock",
        tools=[WEATHER],
        input="get_weather in Lyon",
    )
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    second = client.responses.create(
        model="mock",
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "get_weather in Lyon"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "rainy"},
        ],
    )
    assert second.output_text == "The tool returned: rainy"


def test_a_streamed_function_call(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="mock",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        input="weather?",
    ) as stream:
        final = stream.get_final_response()
    call = final.output[0]
    assert call.type == "function_call" and "city" in json.loads(call.arguments)


def test_stored_state_is_refused_clearly(gateway: GatewayProcess) -> None:
    status, _, answer = http(
        "POST",
        f"{gateway.base_url}/responses",
        {"model": "mock", "input": "x", "previous_response_id": "resp_1"},
    )
    assert status == 400 and answer["error"]["param"] == "previous_response_id"
