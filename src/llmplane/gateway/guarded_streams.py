"""Guardrail checks on streamed answers, without buffering the whole answer.

Per text (a chat choice, an Anthropic text block), text is held back until
``stream_window_chars`` (W) more characters followed it, checked when 2·W are held, and
released but the last W. So a match of up to W characters is always checked whole before
any of it reaches the client (``block`` stops the stream first; ``redact``, ``mask`` and
``hash`` rewrite it exactly as in a whole answer); a longer one may be caught only after
its start was sent, and then the stream still stops. A tool call (a chat ``tool_calls``
entry, an Anthropic ``tool_use`` block) is held until it is complete, checked, and
released at once. Placeholders of ``pseudonymize`` are restored in what is released.

A block raises :class:`~llmplane.errors.OutputBlockedError` from :meth:`feed`; the relay
then ends the stream with the API's error event (OpenAI ``data: {"error": …}``,
Anthropic ``event: error``). Held text is never sent.

The Responses API's stream repeats the whole text in its ``*.done`` and
``response.completed`` events, so it is not checked this way: a policy that needs the
answer refuses such streams (see the routes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from llmplane.gateway.chat_shapes import named_event
from llmplane.gateway.providers.base import Endpoint, sse_data
from llmplane.guardrails.actions import StreamRestorer
from llmplane.guardrails.engine import RequestGuard

__all__ = ["ChatStreamGuard", "MessagesStreamGuard", "StreamGuard", "stream_guard"]


class StreamGuard(Protocol):
    """What the stream relay calls: whole SSE events in, checked events out."""

    async def feed(self, data: bytes) -> bytes:
        """The checked bytes to send for a batch of whole SSE events."""
        ...

    async def end(self) -> bytes:
        """What is still held when the upstream stream ended."""
        ...


def stream_guard(endpoint: Endpoint, guard: RequestGuard) -> StreamGuard | None:
    """The stream guard of ``endpoint``'s streams, if it has one."""
    if endpoint is Endpoint.CHAT:
        return ChatStreamGuard(guard)
    if endpoint is Endpoint.MESSAGES:
        return MessagesStreamGuard(guard)
    return None


class _TextHold:
    """One streamed text: what is held back, checked and released (see the module)."""

    def __init__(self, guard: RequestGuard) -> None:
        self._guard = guard
        self._checks = bool(guard.policy.output)
        # The whole answer as the model wrote it, for rules that judge only a whole one.
        self._whole: list[str] | None = (
            [] if any(rule.whole_text for rule in guard.policy.output) else None
        )
        self._window = guard.policy.window_chars
        pseudonymizer = guard.pseudonymizer
        self._restorer: StreamRestorer | None = (
            pseudonymizer.restorer() if pseudonymizer is not None else None
        )
        self.held = ""

    async def add(self, text: str) -> str:
        """Hold ``text``; what can be released now."""
        self.held += text
        if self._whole is not None:
            self._whole.append(text)
        return await self.release(final=False)

    async def release(self, final: bool) -> str:
        """The text to release now (all of it when ``final``), checked and restored."""
        text = self.held
        if not text:
            text = ""
        elif not self._checks:
            self.held = ""
        elif final:
            if self._whole is not None:  # raises on a block; rewrites nothing (sent already)
                await self._guard.check_output(["".join(self._whole)], whole=True)
                text = (await self._guard.check_output([text], whole=False) or [text])[0]
            else:
                text = (await self._guard.check_output([text]) or [text])[0]
            self.held = ""
        elif len(text) >= 2 * self._window:
            text, self.held = await self._guard.check_output_window(text, len(text) - self._window)
        else:
            return ""
        if self._restorer is not None:
            text = self._restorer.feed(text)
            if final:
                text += self._restorer.flush()
        return text


async def _checked_call(guard: RequestGuard, arguments: str) -> str:
    """A complete tool call's arguments, checked (raises on a block) and restored."""
    if guard.policy.output and arguments:
        arguments = (await guard.check_output([arguments]) or [arguments])[0]
    return guard.restore(arguments)


@dataclass(slots=True)
class _Choice:
    text: _TextHold
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    open_call: int | None = None


_TEMPLATE_KEYS = ("id", "object", "created", "model", "system_fingerprint")


class ChatStreamGuard:
    """Checks a chat stream: each choice's text window by window, each tool call whole."""

    def __init__(self, guard: RequestGuard) -> None:
        self._guard = guard
        self._choices: dict[int, _Choice] = {}
        self._template: dict[str, Any] = {"object": "chat.completion.chunk"}

    def _choice(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice(_TextHold(self._guard))
        return state

    def _event(self, index: int, delta: dict[str, Any]) -> bytes:
        chunk = {
            **self._template,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _text(self, index: int, text: str) -> list[bytes]:
        return [self._event(index, {"content": text})] if text else []

    async def _release_call(self, index: int, state: _Choice, position: int) -> list[bytes]:
        call = state.calls.pop(position)
        function = call["function"]
        function["arguments"] = await _checked_call(self._guard, function["arguments"])
        return [self._event(index, {"tool_calls": [call]})]

    async def _flush(self, index: int, state: _Choice) -> list[bytes]:
        out = self._text(index, await state.text.release(final=True))
        for position in sorted(state.calls):
            out += await self._release_call(index, state, position)
        state.open_call = None
        return out

    async def _flush_all(self) -> list[bytes]:
        out: list[bytes] = []
        for index, state in self._choices.items():
            out += await self._flush(index, state)
        return out

    async def _tool_calls(
        self, index: int, state: _Choice, calls: list[Any], out: list[bytes]
    ) -> None:
        for call in calls:
            if not isinstance(call, dict):
                continue
            position = call.get("index", 0)
            open_call = state.open_call
            if open_call is not None and open_call != position and open_call in state.calls:
                out += await self._release_call(index, state, open_call)
            state.open_call = position
            held = state.calls.get(position)
            function = call.get("function") or {}
            if held is None:
                held = state.calls[position] = {
                    "index": position,
                    "id": call.get("id"),
                    "type": call.get("type", "function"),
                    "function": {"name": function.get("name"), "arguments": ""},
                }
            elif function.get("name"):
                held["function"]["name"] = function["name"]
            held["function"]["arguments"] += function.get("arguments") or ""

    async def _choice_delta(self, choice: dict[str, Any], out: list[bytes]) -> bool:
        """Take the content and tool calls out of one choice's delta (held, released as
        checked); whether what is left of the choice is still worth sending."""
        index = choice.get("index", 0)
        index = index if isinstance(index, int) else 0
        state = self._choice(index)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str) and content:
                del delta["content"]
                out += self._text(index, await state.text.add(content))
            calls = delta.pop("tool_calls", None)
            if isinstance(calls, list):
                await self._tool_calls(index, state, calls, out)
        if choice.get("finish_reason") is not None:
            out += await self._flush(index, state)
            return True
        rest = delta if isinstance(delta, dict) else {}
        return bool(rest) or choice.get("logprobs") is not None

    async def feed(self, data: bytes) -> bytes:
        """The checked bytes to send for a batch of whole SSE events (raises when the
        policy blocks)."""
        out: list[bytes] = []
        for event in data.split(b"\n\n"):
            payload = sse_data(event)
            if not payload:
                continue
            parsed: Any = None
            if payload != b"[DONE]":
                try:
                    parsed = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    parsed = None
            choices = parsed.get("choices") if isinstance(parsed, dict) else None
            if not isinstance(choices, list) or not choices:
                # [DONE], the usage chunk, an error: everything held goes out before it.
                out += await self._flush_all()
                out.append(event + b"\n\n")
                continue
            if len(self._template) == 1:  # the stream's fields, taken from its first chunk
                self._template |= {k: parsed[k] for k in _TEMPLATE_KEYS if k in parsed}
            kept = [c for c in choices if isinstance(c, dict) and await self._choice_delta(c, out)]
            if kept:
                out.append(b"data: " + orjson.dumps({**parsed, "choices": kept}) + b"\n\n")
        return b"".join(out)

    async def end(self) -> bytes:
        """What is still held, at the end of an upstream stream that sent no finish."""
        return b"".join(await self._flush_all())


@dataclass(slots=True)
class _Block:
    text: _TextHold | None  # a text block
    start: dict[str, Any] | None = None  # a tool_use block's start event, held
    json: str = ""


class MessagesStreamGuard:
    """Checks an Anthropic Messages stream: text blocks window by window, each
    ``tool_use`` block whole (its start, input and stop released together)."""

    def __init__(self, guard: RequestGuard) -> None:
        self._guard = guard
        self._blocks: dict[int, _Block] = {}

    @staticmethod
    def _text(index: int, text: str) -> list[bytes]:
        if not text:
            return []
        delta = {"type": "text_delta", "text": text}
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        return [named_event("content_block_delta", data)]

    async def _close(self, index: int) -> list[bytes]:
        """Release what a block still holds (its end: checked whole)."""
        block = self._blocks.pop(index, None)
        if block is None:
            return []
        if block.text is not None:
            return self._text(index, await block.text.release(final=True))
        assert block.start is not None
        arguments = await _checked_call(self._guard, block.json)
        out = [named_event("content_block_start", block.start)]
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            data = {"type": "content_block_delta", "index": index, "delta": delta}
            out.append(named_event("content_block_delta", data))
        return out

    async def _event(self, event: bytes, parsed: dict[str, Any]) -> list[bytes]:
        kind = parsed.get("type")
        index = parsed.get("index")
        if kind == "content_block_start" and isinstance(index, int):
            content_block = parsed.get("content_block")
            block_type = content_block.get("type") if isinstance(content_block, dict) else None
            if block_type == "tool_use":
                self._blocks[index] = _Block(None, parsed)
                return []
            if block_type == "text":
                self._blocks[index] = _Block(_TextHold(self._guard))
            return [event]
        if kind == "content_block_delta" and isinstance(index, int) and index in self._blocks:
            block = self._blocks[index]
            delta = parsed.get("delta") or {}
            if block.text is not None and delta.get("type") == "text_delta":
                return self._text(index, await block.text.add(str(delta.get("text") or "")))
            if block.start is not None and delta.get("type") == "input_json_delta":
                block.json += str(delta.get("partial_json") or "")
                return []
            return [event]
        if kind == "content_block_stop" and isinstance(index, int):
            return [*await self._close(index), event]
        if kind in ("message_delta", "message_stop", "error"):
            out: list[bytes] = []
            for open_index in sorted(self._blocks):
                out += await self._close(open_index)
            return [*out, event]
        return [event]

    async def feed(self, data: bytes) -> bytes:
        """The checked bytes to send for a batch of whole SSE events (raises when the
        policy blocks)."""
        out: list[bytes] = []
        for event in data.split(b"\n\n"):
            payload = sse_data(event)
            if not payload:
                continue
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                out.append(event + b"\n\n")
                continue
            out += [
                e if e.endswith(b"\n\n") else e + b"\n\n" for e in await self._event(event, parsed)
            ]
        return b"".join(out)

    async def end(self) -> bytes:
        """What is still held, at the end of an upstream stream that sent no stop."""
        out: list[bytes] = []
        for index in sorted(self._blocks):
            out += await self._close(index)
        return b"".join(out)
