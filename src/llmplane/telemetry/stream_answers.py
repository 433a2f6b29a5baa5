"""A relayed stream put back together as one answer, in its API's non-streaming shape.

The stored request logs (and spans) keep a stream's bytes as the client got them; this
turns them into what a non-streaming call would have answered: a chat completion with
its text and tool calls, the Responses API's final response, an Anthropic message with
its blocks. Run off the event loop: it parses every event.
"""

from __future__ import annotations

from typing import Any

import orjson


def _sse_payloads(raw: bytes) -> list[Any]:
    payloads = []
    for event in raw.split(b"\n\n"):
        start = event.find(b"data:")
        if start < 0:
            continue
        data = event[start + 5 :].strip()
        if not data or data == b"[DONE]":
            continue
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            payloads.append(parsed)
    return payloads


def assemble_stream(raw: bytes, api: str | None) -> dict[str, Any]:
    """A relayed stream as one answer object in its API's non-streaming shape: the
    assistant's text and tool calls (chat), the final response (Responses API), or the
    message's blocks (Anthropic Messages)."""
    payloads = _sse_payloads(raw)
    if api == "responses":
        return _assemble_responses(payloads)
    if api == "messages":
        return _assemble_messages(payloads)
    return _assemble_chat(payloads)


def _assemble_chat(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    choices: dict[int, dict[str, Any]] = {}
    answer: dict[str, Any] = {"object": "chat.completion"}
    for chunk in chunks:
        if "error" in chunk:
            answer["error"] = chunk["error"]
            continue
        for name in ("id", "model"):
            if name in chunk:
                answer[name] = chunk[name]
        if isinstance(chunk.get("usage"), dict):
            answer["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            built = choices.setdefault(
                index, {"index": index, "text": [], "tool_calls": {}, "finish_reason": None}
            )
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                built["text"].append(delta["content"])
            for call in delta.get("tool_calls") or ():
                slot = built["tool_calls"].setdefault(
                    call.get("index", 0),
                    {"id": None, "type": "function", "name": "", "arguments": []},
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["name"] += function["name"]
                if isinstance(function.get("arguments"), str):
                    slot["arguments"].append(function["arguments"])
            if choice.get("finish_reason"):
                built["finish_reason"] = choice["finish_reason"]
    answer["choices"] = [
        {
            "index": built["index"],
            "message": {
                "role": "assistant",
                "content": "".join(built["text"]) or None,
                **(
                    {
                        "tool_calls": [
                            {
                                "id": call["id"],
                                "type": "function",
                                "function": {
                                    "name": call["name"],
                                    "arguments": "".join(call["arguments"]),
                                },
                            }
                            for _, call in sorted(built["tool_calls"].items())
                        ]
                    }
                    if built["tool_calls"]
                    else {}
                ),
            },
            "finish_reason": built["finish_reason"],
        }
        for _, built in sorted(choices.items())
    ]
    return answer


def _assemble_responses(events: list[dict[str, Any]]) -> dict[str, Any]:
    text: list[str] = []
    for event in events:
        kind = event.get("type")
        final = event.get("response")
        if kind in ("response.completed", "response.incomplete", "response.failed") and (
            isinstance(final, dict)
        ):
            return final
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            text.append(event["delta"])
        elif kind == "error":
            return {"object": "response", "status": "failed", "error": event, "text": "".join(text)}
    return {"object": "response", "status": "incomplete", "output_text": "".join(text)}


def _assemble_messages(events: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "message", "role": "assistant", "content": []}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    for event in events:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message.update({k: v for k, v in event["message"].items() if k != "content"})
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[event.get("index", 0)] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            index, delta = event.get("index", 0), event["delta"]
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + str(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                partial.setdefault(index, []).append(str(delta.get("partial_json", "")))
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                message.update(delta)
            if isinstance(event.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}), **event["usage"]}
        elif kind == "error":
            message["error"] = event.get("error")
    for index, parts in partial.items():
        try:
            blocks[index]["input"] = orjson.loads("".join(parts) or "{}")
        except orjson.JSONDecodeError:
            blocks[index]["input"] = "".join(parts)
    message["content"] = [block for _, block in sorted(blocks.items())]
    return message
