"""OpenAI chat in, Anthropic Messages out, and back: the wire format of ``provider: anthropic``.

The inverse of :mod:`llmplane.gateway.anthropic` (which lets Anthropic clients
call the platform): here the platform calls Anthropic. Pure functions of JSON
values and one stream translator; the HTTP side is
:mod:`llmplane.gateway.providers.anthropic`.

Choices where the two APIs differ:

- ``max_tokens`` is required by Anthropic: without ``max_tokens`` or
  ``max_completion_tokens`` the request asks for :data:`DEFAULT_MAX_TOKENS`,
  which every Claude model accepts.
- ``response_format`` ``json_schema`` becomes Anthropic's structured output
  (``output_config.format``); ``json_object`` has no counterpart and is refused
  with a 400 that says to use ``json_schema``.
- ``n`` above 1 is refused (Anthropic answers one choice); parameters without a
  counterpart (``seed``, penalties, ``logprobs``) are dropped.
- ``system`` and ``developer`` messages, wherever they are, become ``system``;
  consecutive turns of one role are merged, tool results go first in their
  user turn, as Anthropic requires.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llmplane.errors import (
    InvalidRequestError,
    LLMPlaneError,
    UpstreamError,
    UpstreamUnavailableError,
)
from llmplane.gateway.providers.base import Usage, sse_data

DEFAULT_MAX_TOKENS = 4096
"""``max_tokens`` sent when the client set no limit (Anthropic requires one)."""

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def _bad(message: str, param: str = "messages") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _text_block(part: dict[str, Any], text: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": str(text)}
    if isinstance(part.get("cache_control"), dict):  # prompt caching hints pass through
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise _bad("An image_url part needs a 'url'.")
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if encoding != "base64" or not data:
            raise _bad("An image data URL must be base64-encoded (data:<type>;base64,...).")
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise _bad("An image URL must be an http(s) URL or a base64 data URL.")
    return {"type": "image", "source": source}


def _blocks(content: Any, *, images: bool) -> list[dict[str, Any]]:
    """Content blocks of a message's ``content`` (a string or an array of parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad("A message's 'content' must be a string or an array of parts.")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if text:
                blocks.append(_text_block(part, text))
        elif kind == "image_url" and images:
            blocks.append(_image_block(part))
        else:
            raise _bad(f"Content parts of type {kind!r} cannot be sent to an Anthropic model.")
    return blocks


def _tool_use(call: Any) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise _bad("Each tool call needs a 'function'.")
    arguments = function.get("arguments") or "{}"
    try:
        tool_input = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        raise _bad("A tool call's 'arguments' must be a JSON object.") from None
    if not isinstance(tool_input, dict):
        raise _bad("A tool call's 'arguments' must be a JSON object.")
    return {
        "type": "tool_use",
        "id": str(call.get("id") or ""),
        "name": str(function.get("name") or ""),
        "input": tool_input,
    }


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    result: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": str(message.get("tool_call_id") or ""),
    }
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = _blocks(content, images=True)
    return result


def _turns(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the alternating ``messages`` of a chat request."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system += _blocks(message.get("content"), images=False)
            continue
        if role == "user":
            role, blocks = "user", _blocks(message.get("content"), images=True)
        elif role == "assistant":
            blocks = _blocks(message.get("content"), images=False)
            blocks += [_tool_use(call) for call in message.get("tool_calls") or ()]
        elif role == "tool":
            role, blocks = "user", [_tool_result(message)]
        else:
            raise _bad(f"Messages of role {role!r} cannot be sent to an Anthropic model.")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            merged = turns[-1]["content"] + blocks
            # Anthropic wants a user turn's tool results before anything else in it.
            merged.sort(key=lambda block: block["type"] != "tool_result")
            turns[-1]["content"] = merged
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("'tools' must be an array.", "tools")
    out: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            raise _bad("Only function tools can be sent to an Anthropic model.", "tools")
        spec: dict[str, Any] = {
            "name": str(function.get("name") or ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            spec["description"] = str(function["description"])
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        picked: dict[str, Any] | None = None
    elif isinstance(choice, str) and choice in _TOOL_CHOICES:
        picked = dict(_TOOL_CHOICES[choice])
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        picked = {"type": "tool", "name": str(choice["function"].get("name") or "")}
    else:
        raise _bad("'tool_choice' must be auto, none, required or a function.", "tool_choice")
    if parallel is False and (picked is None or picked["type"] != "none"):
        picked = {**(picked or {"type": "auto"}), "disable_parallel_tool_use": True}
    return picked


def to_messages_request(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request as an Anthropic Messages request (see the module docstring)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array.")
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise _bad("Anthropic models answer one choice: 'n' must be 1.", "n")
    system, turns = _turns(messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    request: dict[str, Any] = {"model": body.get("model"), "max_tokens": limit, "messages": turns}
    if system:
        request["system"] = system
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("user"), str):
        request["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        request["tools"] = _tools(body["tools"])
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and request.get("tools"):
        request["tool_choice"] = choice
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _bad("'response_format.json_schema.schema' is required.", "response_format")
        request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind == "json_object":
        raise _bad(
            "Anthropic models have no JSON mode: use response_format json_schema instead.",
            "response_format",
        )
    if body.get("stream") is True:
        request["stream"] = True
    return request


def usage_of(usage: Any) -> Usage | None:
    """Anthropic's ``usage`` as the platform's: cache reads and writes are prompt tokens."""
    if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
        return None
    cached = usage.get("cache_read_input_tokens") or 0
    written = usage.get("cache_creation_input_tokens") or 0
    prompt = usage["input_tokens"] + cached + written
    return Usage(prompt, int(usage.get("output_tokens") or 0), cached, cache_write_tokens=written)


def openai_usage(usage: Usage) -> dict[str, Any]:
    """The platform's usage as OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "cache_creation_input_tokens": usage.cache_write_tokens,  # as LiteLLM reports it
    }


def _chat_id(message_id: Any) -> str:
    return "chatcmpl-" + str(message_id or "").removeprefix("msg_")


def to_chat_completion(reply: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
    """An Anthropic message as an OpenAI ``chat.completion``, and its usage."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in reply.get("content") or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    usage = usage_of(reply.get("usage"))
    completion: dict[str, Any] = {
        "id": _chat_id(reply.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(reply.get("stop_reason") or "", "stop"),
            }
        ],
    }
    if usage is not None:
        completion["usage"] = openai_usage(usage)
    return completion, usage


def stream_error(error: Any, deployment: str) -> LLMPlaneError:
    """The error of an ``error`` event in the middle of an Anthropic stream."""
    kind = error.get("type") if isinstance(error, dict) else None
    if kind == "overloaded_error":
        return UpstreamUnavailableError(f"The upstream of deployment {deployment!r} is overloaded.")
    return UpstreamError(
        f"The upstream of deployment {deployment!r} failed mid-stream ({kind or 'api_error'}).",
        code="upstream_error",
    )


class ChunkTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` events out: a role
    chunk, content and tool-call deltas, a finish chunk, a usage chunk and ``[DONE]``."""

    def __init__(self, deployment: str) -> None:
        self._deployment = deployment
        self._base: dict[str, Any] = {"object": "chat.completion.chunk", "created": 0}
        self._tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self._usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self.error: LLMPlaneError | None = None
        """The error of an ``error`` event, once one came; nothing after it is read."""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**self._base, "choices": [choice]}) + b"\n\n"

    def feed(self, events: list[bytes]) -> list[bytes]:
        """Translate a batch of whole Anthropic events, up to an ``error`` event (which is
        kept in :attr:`error`, to be raised once what came before it is passed on)."""
        out: list[bytes] = []
        for event in events:
            if self.error is not None:
                break
            try:
                data = orjson.loads(sse_data(event))
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                out += self._event(data)
        return out

    def _event(self, data: dict[str, Any]) -> list[bytes]:
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                position = self._tools.get(int(data.get("index") or 0))
                if position is not None:
                    call = {"index": position, "function": {"arguments": delta["partial_json"]}}
                    return [self._chunk({"tool_calls": [call]})]
            return []  # thinking and signature deltas are not passed on
        if kind == "content_block_start":
            return self._block_start(data)
        if kind == "message_start":
            message = data.get("message") or {}
            self._base = {
                "id": _chat_id(message.get("id")),
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": message.get("model"),
            }
            self._usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self._stop_reason = (data.get("delta") or {}).get("stop_reason") or self._stop_reason
            usage = data.get("usage") or {}
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            return []
        if kind == "message_stop":
            finish = FINISH_REASONS.get(self._stop_reason or "", "stop")
            out = [self._chunk({}, finish)]
            usage = usage_of(self._usage)
            if usage is not None:
                payload = {**self._base, "choices": [], "usage": openai_usage(usage)}
                out.append(b"data: " + orjson.dumps(payload) + b"\n\n")
            out.append(b"data: [DONE]\n\n")
            return out
        if kind == "error":
            self.error = stream_error(data.get("error"), self._deployment)
        return []  # ping, content_block_stop and event types added later

    def _block_start(self, data: dict[str, Any]) -> list[bytes]:
        block = data.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        position = len(self._tools)
        self._tools[int(data.get("index") or 0)] = position
        call = {
            "index": position,
            "id": str(block.get("id", "")),
            "type": "function",
            "function": {"name": str(block.get("name", "")), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]
