"""Guardrail policies on chat completions: the request's texts, the answer, the stream.

The policy engine (:mod:`llmplane.guardrails.engine`) checks plain texts; this module
knows where they are in the chat shape. Input: every message's text (a string content or
its ``text`` parts) with its source (``system``/``developer`` → ``system``, ``user``,
``tool``/``function`` → ``tool``; earlier assistant turns are not checked), rewritten in
place. Output: each choice's ``message.content`` and each tool call's ``arguments``.

A stream is checked without buffering the whole answer (:class:`ChatStreamGuard`): per
choice, text is held back until ``stream_window_chars`` (W) more characters followed it,
checked when 2·W are held, and released but the last W. So a match of up to W characters
is always checked whole before any of it reaches the client (``block`` stops the stream
first; ``redact``/``mask``/``hash`` rewrite it); a longer one may be caught only after its
start was sent, and then the stream still stops. A tool call is held until it is complete
(the next call starts, its choice finishes, or the stream ends), checked, and released as
one delta. A blocked stream ends with an OpenAI-style ``{"error": …}`` event; the held
text is never sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from llmplane.gateway.providers.base import UpstreamReply
from llmplane.guardrails.actions import StreamRestorer
from llmplane.guardrails.base import Source
from llmplane.guardrails.engine import RequestGuard

_ROLE_SOURCES: dict[str, Source] = {
    "user": "user",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}
_Place = tuple[int, int | None]  # (message index, text part index or None for a string)


def _chat_texts(body: dict[str, Any]) -> tuple[list[tuple[Source, str]], list[_Place]]:
    texts: list[tuple[Source, str]] = []
    places: list[_Place] = []
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else ()):
        if not isinstance(message, dict):
            continue
        source = _ROLE_SOURCES.get(message.get("role"))  # type: ignore[arg-type]
        if source is None:
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append((source, content))
            places.append((i, None))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if (
                    isinstance(part, dict)
                    and part.get("type") == "text"
                    and isinstance(part.get("text"), str)
                ):
                    texts.append((source, part["text"]))
                    places.append((i, j))
    return texts, places


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


async def guard_chat_request(guard: RequestGuard, body: dict[str, Any]) -> None:
    """Check a chat request's texts under ``guard``'s policy and rewrite them in ``body``
    (raises when the policy blocks); remembers the system prompt and schema for the
    output checks."""
    texts, places = _chat_texts(body)
    system = [text for source, text in texts if source == "system"]
    guard.system_prompt = "\n".join(system) if system else None
    guard.json_schema = _json_schema(body)
    rewritten = await guard.check_input(texts)
    if rewritten is None:
        return
    messages = body["messages"]
    for (i, j), (_, old), new in zip(places, texts, rewritten, strict=True):
        if new == old:
            continue
        if j is None:
            messages[i] = {**messages[i], "content": new}
        else:
            parts = list(messages[i]["content"])
            parts[j] = {**parts[j], "text": new}
            messages[i] = {**messages[i], "content": parts}


def guards_output(guard: RequestGuard | None) -> bool:
    """Whether the answer needs the guard: output rules, or placeholders to restore."""
    return guard is not None and (bool(guard.policy.output) or guard.pseudonymizer is not None)


async def guard_chat_reply(guard: RequestGuard, reply: UpstreamReply) -> UpstreamReply:
    """The reply with its answer checked (raises when the policy blocks), rewritten and its
    placeholders restored; the same reply when nothing changed."""
    try:
        parsed = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return reply
    choices = parsed.get("choices") if isinstance(parsed, dict) else None
    if not isinstance(choices, list):
        return reply
    holders: list[tuple[dict[str, Any], str]] = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            holders.append((message, "content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                holders.append((function, "arguments"))
    texts = [holder[key] for holder, key in holders]
    final = await guard.check_output(texts) or texts
    final = [guard.restore(text) for text in final]
    if final == texts:
        return reply
    for (holder, key), text in zip(holders, final, strict=True):
        holder[key] = text
    return UpstreamReply(orjson.dumps(parsed), reply.usage)


def _data(event: bytes) -> bytes:
    start = event.find(b"data:")
    return event[start + 5 :].strip() if start >= 0 else b""


@dataclass(slots=True)
class _Choice:
    restorer: StreamRestorer | None
    held: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    open_call: int | None = None


_TEMPLATE_KEYS = ("id", "object", "created", "model", "system_fingerprint")


class ChatStreamGuard:
    """Checks a chat stream's text window by window and each tool call whole (see the
    module docstring for what the window guarantees)."""

    def __init__(self, guard: RequestGuard) -> None:
        self._guard = guard
        self._checks = bool(guard.policy.output)
        self._window = guard.policy.window_chars
        self._choices: dict[int, _Choice] = {}
        self._template: dict[str, Any] = {"object": "chat.completion.chunk"}

    def _choice(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            pseudonymizer = self._guard.pseudonymizer
            restorer = pseudonymizer.restorer() if pseudonymizer is not None else None
            state = self._choices[index] = _Choice(restorer)
        return state

    def _event(self, index: int, delta: dict[str, Any]) -> bytes:
        chunk = {
            **self._template,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}],
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async def _release_text(self, index: int, state: _Choice, final: bool) -> list[bytes]:
        text = state.held
        if not text:
            text = ""
        elif not self._checks:
            state.held = ""
        elif final:
            text = (await self._guard.check_output([text]) or [text])[0]
            state.held = ""
        elif len(text) >= 2 * self._window:
            text, state.held = await self._guard.check_output_window(text, len(text) - self._window)
        else:
            return []
        if state.restorer is not None:
            text = state.restorer.feed(text)
            if final:
                text += state.restorer.flush()
        return [self._event(index, {"content": text})] if text else []

    async def _release_call(self, index: int, state: _Choice, position: int) -> list[bytes]:
        call = state.calls.pop(position)
        function = call["function"]
        arguments = function["arguments"]
        if self._checks and arguments:
            arguments = (await self._guard.check_output([arguments]) or [arguments])[0]
        function["arguments"] = self._guard.restore(arguments)
        return [self._event(index, {"tool_calls": [call]})]

    async def _flush(self, index: int, state: _Choice) -> list[bytes]:
        out = await self._release_text(index, state, final=True)
        for position in sorted(state.calls):
            out += await self._release_call(index, state, position)
        state.open_call = None
        return out

    async def _flush_all(self) -> list[bytes]:
        out: list[bytes] = []
        for index, state in self._choices.items():
            out += await self._flush(index, state)
        return out

    async def _choice_delta(self, choice: dict[str, Any], out: list[bytes]) -> bool:
        """Take the content and tool calls out of one choice's delta (held, released as
        checked); whether what is left of the choice is still worth sending."""
        index = choice.get("index", 0)
        state = self._choice(index if isinstance(index, int) else 0)
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str) and content:
                del delta["content"]
                state.held += content
                out += await self._release_text(index, state, final=False)
            calls = delta.pop("tool_calls", None)
            for call in calls if isinstance(calls, list) else ():
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
            payload = _data(event)
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
            self._template = {k: parsed[k] for k in _TEMPLATE_KEYS if k in parsed}
            kept = [c for c in choices if isinstance(c, dict) and await self._choice_delta(c, out)]
            if kept:
                out.append(b"data: " + orjson.dumps({**parsed, "choices": kept}) + b"\n\n")
        return b"".join(out)

    async def end(self) -> bytes:
        """What is still held, at the end of an upstream stream that sent no finish."""
        return b"".join(await self._flush_all())
