"""What a request's content looks like to the stored request logs and to spans.

A team's :class:`LogPolicy` says what its requests leave behind: ``metadata`` (who, what,
how much, and the request's parameters without content), ``redacted`` (the bodies too,
with PII and secrets replaced) or ``full`` (the bodies as sent and received); ``none`` is
no policy object at all, so the request path pays one attribute check.

On the request path a :class:`RequestContent` only keeps references: the parsed request
body, the reply bytes, or the SSE bytes of a stream as they were relayed (up to a cap).
Everything that costs CPU — parsing a reply, assembling a streamed answer, cutting long
text, redacting — is done by whoever reads it later, off the event loop
(:mod:`llmplane.telemetry.bodies`, called by the request-log writer and the span
exporter threads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from llmplane.telemetry.stream_answers import assemble_stream

if TYPE_CHECKING:
    from llmplane.config.platform import RequestLogDefaults

METADATA, REDACTED, FULL = "metadata", "redacted", "full"
POLICIES = ("none", METADATA, REDACTED, FULL)

# Scalar request parameters worth keeping with the metadata: numbers, flags and enums,
# never text a user wrote.
_NUMERIC_PARAMS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "stream",
    "dimensions",
    "top_n",
)
_ENUM_PARAMS = ("reasoning_effort", "service_tier", "encoding_format", "truncation")
_MAX_ENUM = 40
_TRUNCATED = "…[truncated]"
_SCALAR_SIZE = 8  # what a number, flag or null counts towards a body's size
# A stream's raw SSE is several times its text: keep this many times the body cap.
_EVENT_BYTES_FACTOR = 8


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """What a team's requests leave in the stored request logs (``none`` is ``None``)."""

    bodies: str  # metadata | redacted | full
    retention_days: int
    max_body_bytes: int = 256 * 1024

    @property
    def wants_content(self) -> bool:
        """Whether request and response bodies are kept (redacted or full)."""
        return self.bodies != METADATA


def resolve_policy(
    bodies: str | None, retention_days: int | None, default: RequestLogDefaults
) -> LogPolicy | None:
    """A team's policy: its own settings where set, else the platform's ``default``;
    ``None`` for ``none``."""
    chosen = bodies or default.bodies
    if chosen == "none":
        return None
    return LogPolicy(chosen, retention_days or default.retention_days, default.max_body_bytes)


@dataclass(slots=True)
class RequestContent:
    """The content of one request, kept by reference for its stored log (see module)."""

    policy: LogPolicy
    request: dict[str, Any]  # the parsed request body (also read for the metadata params)
    user: str | None = None  # the end user the client named, else None (the key's user)
    reply: bytes | None = None  # a non-streaming answer, as sent to the client
    events: list[bytes] | None = None  # a stream's SSE bytes, as relayed
    event_bytes: int = 0
    events_truncated: bool = False
    _event_limit: int = field(default=0, repr=False)
    # The bodies after the policy's filter (telemetry.bodies.Bodies), False when none
    # are kept; set once, off the loop, by the first background thread that needs them.
    filtered: Any = field(default=None, repr=False)

    def start_stream(self) -> None:
        """A (new) stream attempt starts: forget the events of an earlier one."""
        self.events = []
        self.event_bytes = 0
        self.events_truncated = False
        self._event_limit = self.policy.max_body_bytes * _EVENT_BYTES_FACTOR

    def add_events(self, data: bytes) -> None:
        """Keep relayed SSE bytes (up to the cap; the rest is marked truncated)."""
        events = self.events
        if events is None or self.events_truncated:
            return
        self.event_bytes += len(data)
        if self.event_bytes > self._event_limit:
            self.events_truncated = True
            return
        events.append(data)

    def response(self, api: str | None) -> Any:
        """The answer as JSON: the reply parsed, or the stream assembled into one object in
        the API's own reply shape (``api``: the operation, e.g. ``chat.completions``)."""
        if self.reply is not None:
            try:
                return orjson.loads(self.reply)
            except orjson.JSONDecodeError:
                return self.reply.decode(errors="replace")
        if self.events is not None:
            return assemble_stream(b"".join(self.events), api)
        return None


def request_params(body: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters without its content: numbers and enums, tool names, the
    response format's type, and how many messages or inputs it had."""
    params: dict[str, Any] = {}
    for name in _NUMERIC_PARAMS:
        value = body.get(name)
        if isinstance(value, int | float | bool):
            params[name] = value
    for name in _ENUM_PARAMS:
        value = body.get(name)
        if isinstance(value, str) and len(value) <= _MAX_ENUM:
            params[name] = value
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str):
        params["reasoning_effort"] = reasoning["effort"][:_MAX_ENUM]
    tools = body.get("tools")
    if isinstance(tools, list):
        params["tools"] = [_tool_name(tool) for tool in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        params["tool_choice"] = choice[:_MAX_ENUM]
    elif isinstance(choice, dict):
        params["tool_choice"] = _tool_name(choice)
    fmt = body.get("response_format")
    text = body.get("text")
    if isinstance(text, dict):
        fmt = text.get("format")
    if isinstance(fmt, dict) and isinstance(fmt.get("type"), str):
        params["response_format"] = fmt["type"][:_MAX_ENUM]
    for name in ("messages", "input", "documents"):
        value = body.get(name)
        if isinstance(value, list):
            params[name] = len(value)
    return params


def _tool_name(tool: Any) -> str | None:
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    if not isinstance(name, str):
        name = tool.get("type")
    return name[:200] if isinstance(name, str) else None


def bounded(value: Any, limit: int) -> tuple[Any, bool]:
    """``value`` with its text cut once ``limit`` characters have been seen (strings count
    their length, other values a few characters; what follows is shortened to a marker),
    and whether anything was cut. The result is still JSON of the same shape, so a long
    body stays readable and redactable."""
    left = limit
    cut = False

    def walk(item: Any) -> Any:
        nonlocal left, cut
        if isinstance(item, str):
            if len(item) <= left:
                left -= len(item)
                return item
            cut = True
            kept, left = item[: max(left, 0)], 0
            return kept + _TRUNCATED
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list):
            kept_items = []
            for inner in item:
                if left <= 0:  # e.g. an embedding's numbers: stop the list here
                    cut = True
                    kept_items.append(_TRUNCATED)
                    break
                kept_items.append(walk(inner))
            return kept_items
        left -= _SCALAR_SIZE
        return item

    return walk(value), cut


def map_strings(value: Any, change: Callable[[list[str]], list[str]]) -> Any:
    """``value`` with every string in it (not the keys) replaced by ``change``'s answer for
    the list of all of them, in order (one call: a redactor scans them as one text)."""
    found: list[str] = []

    def collect(item: Any) -> None:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for inner in item.values():
                collect(inner)
        elif isinstance(item, list):
            for inner in item:
                collect(inner)

    collect(value)
    if not found:
        return value
    replaced = iter(change(found))

    def rebuild(item: Any) -> Any:
        if isinstance(item, str):
            return next(replaced)
        if isinstance(item, dict):
            return {key: rebuild(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [rebuild(inner) for inner in item]
        return item

    return rebuild(value)
