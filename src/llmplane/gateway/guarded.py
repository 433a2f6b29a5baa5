"""Guardrail policies on the generation APIs: where the checked texts are in each shape.

The policy engine (:mod:`llmplane.guardrails.engine`) checks plain texts; this module
finds them, as :class:`Slot` s, in requests and answers of chat completions, Anthropic
messages and the Responses API, and writes the rewritten texts back in place.

- Input: chat messages' string content or ``text`` parts, by role (``system`` and
  ``developer`` → source ``system``, ``user``, ``tool``/``function`` → ``tool``); a
  Messages request's ``system``, user text blocks and ``tool_result`` contents (``tool``);
  a response request's ``instructions`` (``system``), ``input`` (a string, or messages'
  text parts) and ``function_call_output`` items (``tool``). Earlier assistant turns are
  not checked.
- Output: each chat choice's content and tool call arguments; each Anthropic text block,
  and each ``tool_use`` input as its JSON text; each response output text part and
  function call's arguments.

Streams are :mod:`llmplane.gateway.guarded_streams`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from llmplane.errors import OutputBlockedError
from llmplane.gateway.providers.base import Endpoint, UpstreamReply
from llmplane.guardrails.base import Source
from llmplane.guardrails.engine import RequestGuard

_ROLE_SOURCES: dict[str, Source] = {
    "user": "user",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}


@dataclass(slots=True)
class Slot:
    """Where one checked text lives in a parsed body: ``container[key]``, a string, or (for
    an Anthropic ``tool_use`` block's ``input``) a JSON value checked as its JSON text."""

    container: Any
    key: str
    source: Source = "output"
    json: bool = False

    def get(self) -> str:
        value = self.container[self.key]
        return orjson.dumps(value).decode() if self.json else str(value)

    def set(self, text: str) -> None:
        if not self.json:
            self.container[self.key] = text
            return
        try:
            self.container[self.key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            # A rewrite made the JSON unreadable: nothing of the original may pass.
            raise OutputBlockedError(
                "The answer was withheld: a guardrail rewrite of a tool call's input left it "
                "unreadable."
            ) from None


def _text_parts(container: Any, key: str, source: Source, kinds: tuple[str, ...]) -> list[Slot]:
    """``container[key]`` as a string, or its text parts (``type`` in ``kinds``)."""
    value = container.get(key) if isinstance(container, dict) else None
    if isinstance(value, str):
        return [Slot(container, key, source)]
    if not isinstance(value, list):
        return []
    return [
        Slot(part, "text", source)
        for part in value
        if isinstance(part, dict)
        and part.get("type") in kinds
        and isinstance(part.get("text"), str)
    ]


def chat_request_slots(body: dict[str, Any]) -> list[Slot]:
    """A chat request's texts: each message's string content or text parts (assistant turns
    are not checked)."""
    slots: list[Slot] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        role = message.get("role") if isinstance(message, dict) else None
        source = _ROLE_SOURCES.get(role) if isinstance(role, str) else None
        if source is not None:
            slots += _text_parts(message, "content", source, ("text",))
    return slots


def messages_request_slots(body: dict[str, Any]) -> list[Slot]:
    """An Anthropic Messages request's texts: ``system``, user turns' text blocks and tool
    results (``source`` ``tool``)."""
    slots = _text_parts(body, "system", "system", ("text",))
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        slots += _text_parts(message, "content", "user", ("text",))
        blocks = message.get("content")
        for block in blocks if isinstance(blocks, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                slots += _text_parts(block, "content", "tool", ("text",))
    return slots


def responses_request_slots(body: dict[str, Any]) -> list[Slot]:
    """A Responses API request's texts: ``instructions``, the input (a string, or messages
    with text parts) and function call outputs (``source`` ``tool``)."""
    slots = _text_parts(body, "instructions", "system", ())
    slots += _text_parts(body, "input", "user", ())
    items = body.get("input")
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output" and isinstance(item.get("output"), str):
            slots.append(Slot(item, "output", "tool"))
            continue
        role = item.get("role")
        source = _ROLE_SOURCES.get(role) if isinstance(role, str) else None
        if source is not None:
            slots += _text_parts(item, "content", source, ("input_text", "text"))
    return slots


def chat_reply_slots(parsed: Any) -> list[Slot]:
    """A chat completion's answer: each choice's content and tool call arguments."""
    slots: list[Slot] = []
    choices = parsed.get("choices") if isinstance(parsed, dict) else None
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        if isinstance(message.get("content"), str):
            slots.append(Slot(message, "content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                slots.append(Slot(function, "arguments"))
    return slots


def messages_reply_slots(parsed: Any) -> list[Slot]:
    """An Anthropic message's answer: text blocks, and tool_use inputs as JSON text."""
    slots: list[Slot] = []
    blocks = parsed.get("content") if isinstance(parsed, dict) else None
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            slots.append(Slot(block, "text"))
        elif block.get("type") == "tool_use" and "input" in block:
            slots.append(Slot(block, "input", json=True))
    return slots


def responses_reply_slots(parsed: Any) -> list[Slot]:
    """A response's answer: output text parts and function call arguments."""
    slots: list[Slot] = []
    items = parsed.get("output") if isinstance(parsed, dict) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
            slots.append(Slot(item, "arguments"))
        elif item.get("type") == "message":
            slots += _text_parts(item, "content", "output", ("output_text",))
    return slots


_REQUEST_SLOTS: dict[Endpoint, Callable[[dict[str, Any]], list[Slot]]] = {
    Endpoint.CHAT: chat_request_slots,
    Endpoint.MESSAGES: messages_request_slots,
    Endpoint.RESPONSES: responses_request_slots,
}
_REPLY_SLOTS: dict[Endpoint, Callable[[Any], list[Slot]]] = {
    Endpoint.CHAT: chat_reply_slots,
    Endpoint.MESSAGES: messages_reply_slots,
    Endpoint.RESPONSES: responses_reply_slots,
}
GUARDED = frozenset(_REQUEST_SLOTS)
"""The APIs whose requests and answers a policy can check."""


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else None


async def guard_request(endpoint: Endpoint, guard: RequestGuard, body: dict[str, Any]) -> None:
    """Check a request's texts under ``guard``'s policy and rewrite them in ``body``
    (raises when the policy blocks); remembers the system prompt and the response schema
    for the output checks."""
    slots = _REQUEST_SLOTS[endpoint](body)
    texts = [(slot.source, slot.get()) for slot in slots]
    system = [text for source, text in texts if source == "system"]
    guard.system_prompt = "\n".join(system) if system else None
    guard.json_schema = _json_schema(body)
    rewritten = await guard.check_input(texts)
    if rewritten is None:
        return
    for slot, (_, old), new in zip(slots, texts, rewritten, strict=True):
        if new != old:
            slot.set(new)


def guards_output(guard: RequestGuard | None) -> bool:
    """Whether the answer may need the guard (before the input check): output rules, or a
    pseudonymising policy that may issue placeholders to restore."""
    return guard is not None and (bool(guard.policy.output) or guard.pseudonymizer is not None)


def answer_needs_guard(guard: RequestGuard | None) -> bool:
    """Whether the answer needs the guard once the input was checked: output rules, or
    placeholders the input check actually issued (none issued: the answer is relayed as is,
    not parsed)."""
    return guard is not None and (bool(guard.policy.output) or bool(guard.pseudonymizer))


async def guard_reply(
    endpoint: Endpoint, guard: RequestGuard, reply: UpstreamReply
) -> UpstreamReply:
    """The reply with its answer checked (raises when the policy blocks), rewritten and its
    placeholders restored; the same reply when nothing changed."""
    try:
        parsed = orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return reply
    slots = _REPLY_SLOTS[endpoint](parsed)
    texts = [slot.get() for slot in slots]
    final = await guard.check_output(texts) or texts
    final = [guard.restore(text) for text in final]
    if final == texts:
        return reply
    for slot, old, new in zip(slots, texts, final, strict=True):
        if new != old:
            slot.set(new)
    return UpstreamReply(orjson.dumps(parsed), reply.usage)
