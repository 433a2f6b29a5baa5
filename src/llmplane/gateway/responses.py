"""OpenAI's Responses API: the request check, and the bridge onto chat.

``POST /v1/responses`` is passed through as-is to deployments that serve the
Responses API natively (OpenAI, Azure OpenAI; see
:mod:`llmplane.gateway.providers.bridges`); for the others (the
``mock`` model, OpenAI-compatible servers without ``/v1/responses``) each
attempt is translated into a chat request here and its answer and stream
events are translated back. Either way the call takes the same governed path
as ``/v1/chat/completions`` (keys, limits, budgets, routing, ledger). The
bridge is stateless: ``previous_response_id`` is refused with a clear 400 on
a bridged attempt, as nothing is stored. These are pure functions of JSON
values.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from llmplane.errors import InvalidRequestError
from llmplane.gateway.chat_shapes import chat_tool, chat_tool_call, forced_tool, named_event
from llmplane.gateway.streaming import ChunkTranslator


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _content(content: Any) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad("A message's 'content' must be a string or an array of parts.", "input")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "input_image":
            url = part.get("image_url") or ""
            parts.append({"type": "image_url", "image_url": {"url": str(url)}})
        else:
            raise _bad(f"Unsupported input part type {kind!r}.", "input")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _items(items: Any) -> list[dict[str, Any]]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _bad("'input' must be a string or a non-empty array of items.", "input")
    messages: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            raise _bad("Each input item must be an object.", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _bad("A message item needs a role.", "input")
            messages.append(
                {
                    "role": "system" if role == "developer" else role,
                    "content": _content(item.get("content")),
                }
            )
        elif kind == "function_call":
            call = chat_tool_call(
                item.get("call_id"), item.get("name"), str(item.get("arguments", ""))
            )
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output", "")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id", "")),
                    "content": output if isinstance(output, str) else orjson.dumps(output).decode(),
                }
            )
        elif kind == "reasoning":
            continue
        else:
            raise _bad(f"Unsupported input item type {kind!r}.", "input")
    return messages


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice  # auto, none, required: the same words in chat
    if isinstance(choice, dict) and choice.get("type") == "function":
        return forced_tool(choice.get("name"))
    raise _bad("'tool_choice' must be auto, none, required or a function.", "tool_choice")


def check_request(body: dict[str, Any]) -> str:
    """Check what every attempt needs of a Responses API request; return its model.

    The rest is the upstream's to judge (native) or the bridge's (:func:`to_chat_request`).
    ``background`` is refused: a background response is billed after the call returns,
    where no usage would reach the ledger."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required.", "model")
    if body.get("background"):
        raise _bad(
            "background responses are not supported: the platform accounts for usage "
            "when the call returns.",
            "background",
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream")
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise _bad("'max_output_tokens' must be a positive integer.", "max_output_tokens")
    return model


def to_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses API request as an OpenAI chat request."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required.", "model")
    if body.get("previous_response_id"):
        raise _bad(
            "previous_response_id needs a deployment that serves the Responses API "
            "natively; this model's deployment is bridged through chat and stores nothing: "
            "send the whole conversation in 'input'.",
            "previous_response_id",
        )
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": str(body["instructions"])})
    messages += _items(body.get("input"))
    request: dict[str, Any] = {"model": model, "messages": messages}
    if body.get("max_output_tokens") is not None:
        request["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "user", "parallel_tool_calls"):
        if body.get(name) is not None:
            request[name] = body[name]
    tools = body.get("tools")
    if tools:
        functions = [t for t in tools if isinstance(t, dict) and t.get("type") == "function"]
        if len(functions) != len(tools):
            raise _bad("Only function tools are supported.", "tools")
        request["tools"] = [
            chat_tool(t.get("name"), t.get("description"), t.get("parameters")) for t in functions
        ]
    if body.get("tool_choice") is not None:
        request["tool_choice"] = _tool_choice(body["tool_choice"])
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        fmt = text["format"]
        if fmt.get("type") == "json_schema":
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {k: v for k, v in fmt.items() if k != "type"},
            }
        elif fmt.get("type") == "json_object":
            request["response_format"] = {"type": "json_object"}
    if body.get("stream") is True:
        request["stream"] = True
    return request


def _usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = (
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _envelope(response_id: str, model: str, request: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": [],
        "parallel_tool_calls": bool(request.get("parallel_tool_calls", True)),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "temperature": request.get("temperature"),
        "top_p": request.get("top_p"),
        "max_output_tokens": request.get("max_output_tokens"),
        "instructions": request.get("instructions"),
        "metadata": request.get("metadata") or {},
        "error": None,
        "incomplete_details": None,
        "usage": None,
    }


def _text_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def from_chat_reply(
    reply: bytes, model: str, request: dict[str, Any], request_id: str
) -> dict[str, Any]:
    """An OpenAI chat completion as a Responses API response."""
    data = orjson.loads(reply)
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    response = _envelope(f"resp_{request_id}", model, request, "completed")
    if message.get("content"):
        response["output"].append(_text_item(f"msg_{request_id}", message["content"]))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        response["output"].append(
            _call_item(
                f"fc_{request_id}_{index}",
                str(call.get("id", "")),
                str(function.get("name", "")),
                str(function.get("arguments", "")),
            )
        )
    if choice.get("finish_reason") == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    response["usage"] = _usage(data.get("usage"))
    return response


class StreamTranslator(ChunkTranslator):
    """OpenAI ``chat.completion.chunk`` events in, Responses API stream events out."""

    def __init__(self, model: str, request: dict[str, Any], request_id: str) -> None:
        self._request_id = request_id
        self._response = _envelope(f"resp_{request_id}", model, request, "in_progress")
        self._sequence = 0
        self._started = False
        self._text: list[str] | None = None  # the open text item's deltas
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> item
        self._finished = False

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return named_event(kind, data)

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        return [
            self._event("response.created", response=self._response),
            self._event("response.in_progress", response=self._response),
        ]

    def _open_text(self) -> list[bytes]:
        self._text = []
        item = {**_text_item(f"msg_{self._request_id}", ""), "status": "in_progress"}
        item["content"] = []
        index = len(self._response["output"])
        self._response["output"].append(item)
        return [
            self._event("response.output_item.added", output_index=index, item=item),
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            ),
        ]

    def _close_text(self) -> list[bytes]:
        if self._text is None:
            return []
        text, self._text = "".join(self._text), None
        index = next(
            i for i, item in enumerate(self._response["output"]) if item["type"] == "message"
        )
        item = _text_item(f"msg_{self._request_id}", text)
        self._response["output"][index] = item
        part = item["content"][0]
        return [
            self._event(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
            ),
            self._event(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self._start()
        if isinstance(chunk.get("usage"), dict):
            self._response["usage"] = _usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self._text is None:
                    out += self._open_text()
                self._text.append(text)  # type: ignore[union-attr]
                out.append(
                    self._event(
                        "response.output_text.delta",
                        item_id=f"msg_{self._request_id}",
                        output_index=len(self._response["output"]) - 1,
                        content_index=0,
                        delta=text,
                    )
                )
            for call in delta.get("tool_calls") or []:
                out += self._call_delta(call)
            if choice.get("finish_reason") == "length":
                self._response["status"] = "incomplete"
                self._response["incomplete_details"] = {"reason": "max_output_tokens"}
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        position = int(call.get("index") or 0)
        function = call.get("function") or {}
        item = self._calls.get(position)
        if item is None:
            out += self._close_text()
            item = {
                **_call_item(
                    f"fc_{self._request_id}_{position}",
                    str(call.get("id") or f"call_{position}"),
                    str(function.get("name") or ""),
                    "",
                ),
                "status": "in_progress",
                "output_index": len(self._response["output"]),
            }
            self._calls[position] = item
            self._response["output"].append(item)
            shown = {k: v for k, v in item.items() if k != "output_index"}
            out.append(
                self._event(
                    "response.output_item.added", output_index=item["output_index"], item=shown
                )
            )
        arguments = function.get("arguments")
        if arguments:
            item["arguments"] += arguments
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=item["output_index"],
                    delta=arguments,
                )
            )
        return out

    def _finish(self, error: dict[str, Any] | None = None) -> list[bytes]:
        if self._finished:
            return []
        self._finished = True
        out = self._start() + self._close_text()
        for item in self._calls.values():
            index = item.pop("output_index")
            item["status"] = "completed"
            self._response["output"][index] = item
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                )
            )
            out.append(self._event("response.output_item.done", output_index=index, item=item))
        if error is not None:
            self._response["status"] = "failed"
            self._response["error"] = {
                "code": "server_error",
                "message": str(error.get("message", "")),
            }
            out.append(self._event("response.failed", response=self._response))
            return out
        if self._response["status"] == "in_progress":
            self._response["status"] = "completed"
        kind = (
            "response.completed"
            if self._response["status"] == "completed"
            else ("response.incomplete")
        )
        out.append(self._event(kind, response=self._response))
        return out

    def _error(self, error: dict[str, Any]) -> list[bytes]:
        return self._finish(error)
