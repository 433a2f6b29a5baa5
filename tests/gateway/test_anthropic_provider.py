"""``provider: anthropic``: the chat ⇄ Messages translation, and the provider against the
simulator."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmplane.config.platform import DeploymentConfig
from llmplane.errors import InvalidRequestError, UpstreamError, UpstreamRejectedError
from llmplane.gateway.providers.anthropic import AnthropicProvider, anthropic_error_details
from llmplane.gateway.providers.anthropic_format import (
    DEFAULT_MAX_TOKENS,
    ChunkTranslator,
    to_chat_completion,
    to_messages_request,
)
from llmplane.gateway.providers.base import Endpoint
from llmplane.gateway.retries import fallback_kind
from llmplane.testing.upstream import UpstreamSimulator
from tests.canary import canary

ANTHROPIC_KEY = canary("Anthropic provider key", "sk-ant-")

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "id": "toolu_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_system_and_developer_messages_become_system() -> None:
    request = to_messages_request(
        {
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "hi"},
            ],
        }
    )
    assert request["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "No emoji."},
    ]
    assert request["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert request["max_tokens"] == DEFAULT_MAX_TOKENS


def test_a_tool_round_trip_becomes_tool_use_and_tool_result_turns() -> None:
    request = to_messages_request(
        {
            "model": "claude",
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "user", "content": "and tomorrow?"},
            ],
            "tools": [TOOL],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
    )
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {  # the tool result and the next user message are one user turn, result first
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]
    assert request["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choices(choice: Any, expected: dict[str, Any]) -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "x"}], "tools": [TOOL]}
    assert to_messages_request({**body, "tool_choice": choice})["tool_choice"] == expected


def test_images_become_base64_or_url_sources() -> None:
    request = to_messages_request(
        {
            "model": "claude",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                    ],
                }
            ],
        }
    )
    assert request["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]


def test_sampling_limits_stop_and_user_are_carried_over() -> None:
    request = to_messages_request(
        {
            "model": "claude",
            "messages": [{"role": "user", "content": "x"}],
            "max_completion_tokens": 77,
            "max_tokens": 5,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "alice",
            "seed": 7,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": {"type": "object"}},
            },
        }
    )
    assert request["max_tokens"] == 77
    assert (request["temperature"], request["top_p"]) == (0.2, 0.9)
    assert request["stop_sequences"] == ["END"]
    assert request["metadata"] == {"user_id": "alice"}
    assert request["output_config"] == {
        "format": {"type": "json_schema", "schema": {"type": "object"}}
    }
    assert "seed" not in request


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages"),
    ],
)
def test_what_anthropic_cannot_do_is_a_clear_400(extra: dict[str, Any], param: str) -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "x"}], **extra}
    with pytest.raises(InvalidRequestError) as refused:
        to_messages_request(body)
    assert refused.value.param == param and refused.value.http_status == 400


def test_a_reply_becomes_a_chat_completion_with_cache_tokens_in_the_prompt() -> None:
    completion, usage = to_chat_completion(
        {
            "id": "msg_01abc",
            "type": "message",
            "model": "claude-x",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_9",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 5,
                "output_tokens": 7,
            },
        }
    )
    choice = completion["choices"][0]
    assert completion["id"] == "chatcmpl-01abc" and completion["object"] == "chat.completion"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert completion["usage"] == {
        "prompt_tokens": 115,
        "completion_tokens": 7,
        "total_tokens": 122,
        "prompt_tokens_details": {"cached_tokens": 100},
        "cache_creation_input_tokens": 5,
    }
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (115, 100, 5)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
    ],
)
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    completion, _ = to_chat_completion({"content": [], "stop_reason": stop_reason})
    assert completion["choices"][0]["finish_reason"] == finish


def _event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _chunks(events: list[bytes]) -> list[Any]:
    return [
        "[DONE]" if e == b"data: [DONE]\n\n" else orjson.loads(e.removeprefix(b"data: "))
        for e in events
    ]


def test_stream_events_become_chat_chunks() -> None:
    translator = ChunkTranslator("d")
    start = {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}}
    chunks = _chunks(
        translator.feed(
            [
                _event({"type": "message_start", "message": start}),
                _event({"type": "ping"}),
                _event(
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    }
                ),
                _event(
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": "Hi"},
                    }
                ),
                _event({"type": "content_block_stop", "index": 0}),
                _event(
                    {
                        "type": "content_block_start",
                        "index": 1,
                        "content_block": {
                            "type": "tool_use",
                            "id": "toolu_2",
                            "name": "f",
                            "input": {},
                        },
                    }
                ),
                _event(
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
                    }
                ),
                _event(
                    {
                        "type": "content_block_delta",
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": "1}"},
                    }
                ),
                _event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "tool_use"},
                        "usage": {"output_tokens": 12},
                    }
                ),
                _event({"type": "message_stop"}),
            ]
        )
    )
    deltas = [c["choices"][0]["delta"] for c in chunks[:-2]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"] == [
        {
            "index": 0,
            "id": "toolu_2",
            "type": "function",
            "function": {"name": "f", "arguments": ""},
        }
    ]
    assert [d["tool_calls"][0]["function"]["arguments"] for d in deltas[3:5]] == ['{"a":', "1}"]
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["prompt_tokens"] == 9
    assert chunks[-2]["usage"]["completion_tokens"] == 12
    assert chunks[-1] == "[DONE]"
    assert all(c["id"] == "chatcmpl-1" for c in chunks[:-1])


def test_an_error_event_stops_the_translation_after_what_came_before() -> None:
    translator = ChunkTranslator("claude-eu")
    start = _event({"type": "message_start", "message": {"id": "msg_2", "usage": {}}})
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    late = _event({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "x"}})
    assert len(translator.feed([start, _event(error), late])) == 1  # the role chunk only
    assert isinstance(translator.error, UpstreamError)
    assert translator.error.http_status == 503 and "claude-eu" in translator.error.message


def test_prompt_too_long_is_a_context_window_refusal() -> None:
    body = orjson.dumps(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum",
            },
        }
    )
    message, code, _ = anthropic_error_details(body)
    assert code == "context_length_exceeded"
    error = UpstreamRejectedError(message or "", upstream_status=400, code=code)
    assert fallback_kind(error) == "context_window"


def _provider(sim: UpstreamSimulator, **config: Any) -> AnthropicProvider:
    deployment = DeploymentConfig.model_validate(
        {"provider": "anthropic", "api_base": sim.base, "api_key": ANTHROPIC_KEY, **config}
    )
    return AnthropicProvider("claude-sim", deployment)


def test_api_base_and_version_defaults() -> None:
    deployment = DeploymentConfig.model_validate({"provider": "anthropic", "api_key": "k"})
    assert deployment.api_base == "https://api.anthropic.com"
    assert deployment.anthropic_version == "2023-06-01"


async def test_the_provider_calls_the_messages_api(sim: UpstreamSimulator) -> None:
    provider = _provider(sim, anthropic_version="2024-01-01")
    body = {"model": "claude-sim", "messages": [{"role": "user", "content": "hello there"}]}
    try:
        reply = await provider.complete(Endpoint.CHAT, body, "req-1")
        stream = await provider.open_stream(Endpoint.CHAT, {**body, "stream": True}, "req-2")
        batches = [batch async for batch in stream]
        await stream.aclose()
        with pytest.raises(InvalidRequestError, match="serves chat completions, not embeddings"):
            await provider.complete(Endpoint.EMBEDDINGS, {"input": "x"}, "req-3")
        assert await provider.healthy("/health", 2)
    finally:
        await provider.aclose()
    completion = orjson.loads(reply.body)
    assert completion["choices"][0]["message"]["content"] == "This is a mock reply to: hello there"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    chunks = _chunks([event for batch in batches for event in batch])
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2] if c["choices"]
    )
    assert text == "This is a mock reply to: hello there"
    assert chunks[-1] == "[DONE]" and chunks[-2]["usage"]["completion_tokens"] > 0
    sent = [r for r in sim.requests if r["path"] == "/v1/messages"]
    assert len(sent) == 2
    for request in sent:
        assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
        assert request["headers"]["anthropic-version"] == "2024-01-01"
        assert "authorization" not in request["headers"]
        assert request["body"]["max_tokens"] == DEFAULT_MAX_TOKENS
