"""Anthropic's Messages API on top of the chat path: request, reply, stream and errors.

``POST /v1/messages`` lets Claude SDK clients and coding agents use the platform
with their usual client. The request is translated into an OpenAI chat
request and goes through the same path as ``/v1/chat/completions`` (auth,
limits, budgets, routing, ledger), so no governance is skipped; the reply, the
stream events and the errors are translated back into Anthropic's shapes.
These are pure functions of JSON values; the route lives in
:mod:`llmplane.gateway.bridged_routes`.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmplane.errors import InvalidRequestError, LLMPlaneError
from llmplane.gateway.chat_shapes import chat_tool, chat_tool_call, forced_tool, named_event
from llmplane.gateway.streaming import ChunkTranslator

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {  # Anthropic's error type for an HTTP status
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    499: "api_error",
    504: "timeout_error",
}


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _text_of(blocks: Any, where: str) -> str:
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise _bad(f"'{where}' must be a string or an array of text blocks.", where)
    parts = []
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"'{where}' may only hold text blocks.", where)
        parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def _image_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad("An image block needs a 'source'.", "messages")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise _bad("An image source must be base64 or url.", "messages")
    return {"type": "image_url", "image_url": {"url": url}}


def _message(message: Any) -> list[dict[str, Any]]:
    """One Anthropic message as one or more OpenAI messages (tool results become their own
    ``tool`` messages)."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise _bad("Each message needs a role of 'user' or 'assistant'.", "messages")
    role, content = message["role"], message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise _bad("A message's 'content' must be a string or an array of blocks.", "messages")
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(chat_tool_call(block.get("id"), block.get("name"), arguments))
        elif kind == "tool_result" and role == "user":
            inner = block.get("content", "")
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": str(block.get("tool_use_id", "")),
                    "content": inner if isinstance(inner, str) else _text_of(inner, "messages"),
                }
            )
        elif kind == "thinking" or kind == "redacted_thinking":
            continue  # a model's earlier reasoning: not sent on
        else:
            raise _bad(f"Unsupported content block type {kind!r} for role {role!r}.", "messages")
    out: list[dict[str, Any]] = list(results)
    if parts or calls:
        text_only = all(p["type"] == "text" for p in parts)
        body: dict[str, Any] = {
            "role": role,
            "content": "".join(p["text"] for p in parts) if text_only else parts,
        }
        if calls:
            body["tool_calls"] = calls
            if not parts:
                body["content"] = None
        out.append(body)
    return out


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        raise _bad("'tool_choice' must be an object.", "tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return forced_tool(choice.get("name"))
    raise _bad("'tool_choice.type' must be auto, any, tool or none.", "tool_choice")


def check_request(body: dict[str, Any]) -> str:
    """What every Messages request needs, whoever serves it; return the model. (Content
    blocks are checked where the request is bridged: Anthropic itself takes them all.)"""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required.", "model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _bad("'max_tokens' is required and must be a positive integer.", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array.", "messages")
    if body.get("stream") not in (None, True, False):
        raise _bad("'stream' must be a boolean.", "stream")
    return model


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat request."""
    model = check_request(body)
    max_tokens, messages = body["max_tokens"], body["messages"]
    chat: list[dict[str, Any]] = []
    if body.get("system") is not None:
        chat.append({"role": "system", "content": _text_of(body["system"], "system")})
    for message in messages:
        chat.extend(_message(message))
    request: dict[str, Any] = {"model": model, "messages": chat, "max_tokens": max_tokens}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("stop_sequences"):
        request["stop"] = body["stop_sequences"]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        request["user"] = metadata["user_id"]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise _bad("'tools' must be an array.", "tools")
        request["tools"] = [
            chat_tool(tool.get("name"), tool.get("description"), tool.get("input_schema"))
            for tool in tools
            if isinstance(tool, dict)
        ]
    if body.get("tool_choice") is not None:
        request["tool_choice"] = _tool_choice(body["tool_choice"])
    output = body.get("output_config")
    wanted = output.get("format") if isinstance(output, dict) else None
    if isinstance(wanted, dict) and wanted.get("type") == "json_schema":
        schema = {"name": "output", "schema": wanted.get("schema") or {}}
        request["response_format"] = {"type": "json_schema", "json_schema": schema}
    if body.get("stream") is True:
        request["stream"] = True
    return request


def _tool_input(arguments: Any) -> Any:
    try:
        return orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {"_raw": arguments}


def anthropic_usage(usage: Any) -> dict[str, int]:
    """OpenAI's ``usage`` as Anthropic's, where ``input_tokens`` leaves out cache reads and
    writes (``cache_creation_input_tokens``, where an upstream reported them)."""
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = int((details.get("cached_tokens") if isinstance(details, dict) else 0) or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - cached - written, 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }


def from_chat_reply(reply: bytes, model: str) -> dict[str, Any]:
    """An OpenAI chat completion as an Anthropic message."""
    data = orjson.loads(reply)
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": _tool_input(function.get("arguments")),
            }
        )
    return {
        "id": "msg_" + str(data.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(data.get("usage")),
    }


def error_body(exc: LLMPlaneError) -> bytes:
    """Anthropic's error shape for ``exc``."""
    kind = ERROR_TYPES.get(exc.http_status)
    if kind is None:
        kind = "overloaded_error" if exc.http_status in (503, 529) else "api_error"
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": exc.message}})


class StreamTranslator(ChunkTranslator):
    """OpenAI ``chat.completion.chunk`` events in, Anthropic stream events out."""

    def __init__(self, model: str, request_id: str, usage: dict[str, int] | None = None) -> None:
        self._model = model
        self._id = "msg_" + request_id
        self._started = False
        self._block: int = -1  # index of the open content block, -1 if none
        self._block_kind: str | None = None
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._stop_reason = "end_turn"
        # What message_start reports; the chat usage chunk (at the end) replaces it.
        self._usage = usage or anthropic_usage(None)
        self._finished = False

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": dict(self._usage),
        }
        return [named_event("message_start", {"type": "message_start", "message": message})]

    def _close_block(self) -> list[bytes]:
        if self._block < 0 or self._block_kind is None:
            return []
        self._block_kind = None
        return [
            named_event("content_block_stop", {"type": "content_block_stop", "index": self._block})
        ]

    def _open_block(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self._block += 1
        self._block_kind = block["type"]
        out.append(
            named_event(
                "content_block_start",
                {"type": "content_block_start", "index": self._block, "content_block": block},
            )
        )
        return out

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self._start()
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = anthropic_usage(usage)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._block_kind != "text":
                    out += self._open_block({"type": "text", "text": ""})
                out.append(
                    named_event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self._block,
                            "delta": {"type": "text_delta", "text": text},
                        },
                    )
                )
            for call in delta.get("tool_calls") or []:
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._stop_reason = _STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        if position not in self._tool_blocks:
            out += self._open_block(
                {
                    "type": "tool_use",
                    "id": call.get("id") or f"toolu_{position}",
                    "name": function.get("name") or "",
                    "input": {},
                }
            )
            self._tool_blocks[position] = self._block
        arguments = function.get("arguments")
        if arguments:
            out.append(
                named_event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self._tool_blocks[position],
                        "delta": {"type": "input_json_delta", "partial_json": arguments},
                    },
                )
            )
        return out

    def _finish(self) -> list[bytes]:
        if self._finished:
            return []
        self._finished = True
        out = self._start() + self._close_block()
        out.append(
            named_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": dict(self._usage),
                },
            )
        )
        out.append(named_event("message_stop", {"type": "message_stop"}))
        return out

    def _error(self, error: dict[str, Any]) -> list[bytes]:
        out = self._start() + self._close_block()
        out.append(
            named_event(
                "error",
                {
                    "type": "error",
                    "error": {"type": "api_error", "message": error.get("message", "")},
                },
            )
        )
        self._finished = True
        return out
