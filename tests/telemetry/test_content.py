"""A request's content as the stored logs see it: streams assembled into one reply,
long bodies cut, parameters without content."""

from __future__ import annotations

import orjson

from llmplane.telemetry.content import (
    LogPolicy,
    RequestContent,
    bounded,
    map_strings,
    request_params,
)
from llmplane.telemetry.stream_answers import assemble_stream


def _sse(*events: dict[str, object], named: bool = False) -> bytes:
    out = b""
    for event in events:
        if named:
            out += b"event: " + str(event["type"]).encode() + b"\n"
        out += b"data: " + orjson.dumps(event) + b"\n\n"
    return out


def test_a_chat_stream_becomes_one_completion_with_its_tool_calls() -> None:
    raw = (
        _sse(
            {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]},
            {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": "call_1",
                                    "function": {"name": "f", "arguments": '{"a"'},
                                }
                            ]
                        },
                    }
                ]
            },
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                    }
                ]
            },
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        )
        + b"data: [DONE]\n\n"
    )
    answer = assemble_stream(raw, "chat.completions")
    assert answer["id"] == "c1" and answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 4}
    assert answer["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]


def test_a_messages_stream_becomes_one_message() -> None:
    raw = _sse(
        {
            "type": "message_start",
            "message": {"id": "msg_1", "model": "m", "content": [], "usage": {"input_tokens": 5}},
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "there"},
        },
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"x"}'},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 7},
        },
        {"type": "message_stop"},
        named=True,
    )
    message = assemble_stream(raw, "messages")
    assert message["id"] == "msg_1" and message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 5, "output_tokens": 7}
    assert message["content"] == [
        {"type": "text", "text": "Hi there"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"q": "x"}},
    ]


def test_a_responses_stream_is_its_final_response_else_its_text() -> None:
    final = {"id": "resp_1", "status": "completed", "output": []}
    raw = _sse(
        {"type": "response.output_text.delta", "delta": "a"},
        {"type": "response.completed", "response": final},
        named=True,
    )
    assert assemble_stream(raw, "responses") == final
    cut = _sse(
        {"type": "response.output_text.delta", "delta": "par"},
        {"type": "response.output_text.delta", "delta": "tial"},
        named=True,
    )
    assert assemble_stream(cut, "responses")["output_text"] == "partial"


def test_bounded_cuts_text_and_long_lists_and_says_so() -> None:
    value = {"a": "x" * 10, "b": ["y" * 10, "z" * 10], "n": 1}
    assert bounded(value, 100) == (value, False)
    kept, cut = bounded(value, 15)
    assert cut and kept["a"] == "x" * 10
    assert kept["b"] == ["y" * 5 + "…[truncated]", "…[truncated]"]
    numbers, cut = bounded({"embedding": [0.5] * 1000}, 80)
    assert cut and len(numbers["embedding"]) == 11 and numbers["embedding"][-1] == "…[truncated]"


def test_map_strings_changes_values_not_keys() -> None:
    value = {"role": "user", "content": [{"type": "text", "text": "hi"}], "n": 2}
    changed = map_strings(value, lambda texts: [t.upper() for t in texts])
    assert changed == {"role": "USER", "content": [{"type": "TEXT", "text": "HI"}], "n": 2}


def test_request_params_keep_no_content() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "secret plans"}],
        "temperature": 0.5,
        "stop": ["secret"],
        "user": "u",
        "reasoning": {"effort": "high"},
        "text": {"format": {"type": "json_schema", "schema": {"title": "secret"}}},
        "tools": [{"type": "function", "function": {"name": "search"}}, {"type": "web_search"}],
        "tool_choice": "auto",
    }
    params = request_params(body)
    assert params == {
        "temperature": 0.5,
        "reasoning_effort": "high",
        "tools": ["search", "web_search"],
        "tool_choice": "auto",
        "response_format": "json_schema",
        "messages": 1,
    }
    assert "secret" not in orjson.dumps(params).decode()


def test_a_streams_kept_bytes_are_capped() -> None:
    content = RequestContent(LogPolicy("full", 1, max_body_bytes=1024), {})
    content.start_stream()
    for _ in range(100):
        content.add_events(b"data: " + b"x" * 200 + b"\n\n")
    assert content.events_truncated and content.event_bytes > 8 * 1024
    assert sum(map(len, content.events or [])) <= 8 * 1024
