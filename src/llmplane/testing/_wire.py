"""How the simulator's replies go on the wire: pacing, error faults and broken transfers.

Unpaced streams are written in one piece (a real upstream's events also arrive
coalesced by TCP, and one write keeps the simulator far faster than the
gateway); with ``tokens_per_second`` each event is its own write.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

import orjson

from llmplane.gateway.providers.mock import sse_event
from llmplane.testing import _anthropic
from llmplane.testing._asgi import (
    Receive,
    Scope,
    Send,
    abort_connection,
    error_payload,
    send_error,
    send_json,
)
from llmplane.testing._faults import Fault

__all__ = ["Behaviour", "Exchange", "send_status_fault"]

_DONE = sse_event("[DONE]")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How slowly the simulator answers; every value is in ms or per second, 0 = off."""

    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    waiting_requests: float = 0.0  # reported at /metrics, as vLLM does
    kv_cache_usage: float = 0.0  # 0..1, reported at /metrics

    def updated(self, settings: Mapping[str, Any]) -> Behaviour:
        """A copy with ``settings`` applied; unknown names and bad values raise ``ValueError``."""
        known = Behaviour.__dataclass_fields__
        values: dict[str, float] = {}
        for name, value in settings.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(known)}")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"setting {name!r} must be a number >= 0")
            values[name] = float(value)
        return replace(self, **values)


def _fault_error(status: int) -> tuple[str, str | None]:
    if status == 429:
        return "rate_limit_error", "rate_limit_exceeded"
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 403:
        return "permission_error", None
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


def _fault_message(fault: Fault) -> str:
    if fault.message:
        return fault.message
    if fault.status == 529:
        return "Overloaded"
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Error"
    return f"Simulated upstream failure: {fault.status} {phrase}."


async def send_status_fault(send: Send, fault: Fault, *, anthropic: bool = False) -> None:
    """The error a ``status`` fault asks for, with its retry headers, in OpenAI's shape or
    (``anthropic``) Anthropic's."""
    message = _fault_message(fault)
    headers: list[tuple[bytes, bytes]] = []
    if fault.retry_after is not None:
        headers.append((b"retry-after", b"%g" % fault.retry_after))
    if fault.retry_after_ms is not None:
        headers.append((b"retry-after-ms", b"%d" % fault.retry_after_ms))
    if anthropic:
        await _anthropic.send_error(send, fault.status, message, headers)
        return
    error_type, code = _fault_error(fault.status)
    await send_error(send, fault.status, message, error_type, code=code, headers=headers)


def _stream_error_event(fault: Fault, anthropic: bool, responses: bool) -> bytes:
    message = _fault_message(fault)
    if anthropic:
        return _anthropic.error_event(fault.status, message)
    error_type, code = _fault_error(fault.status)
    if responses:  # the Responses API's own error event
        data = {"type": "error", "code": code, "message": message, "param": None}
        return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"
    return b"data: " + error_payload(message, error_type, code=code) + b"\n\n"


@dataclass(slots=True)
class Exchange:
    """One request past the checks, with the fault and behaviour it is answered under."""

    scope: Scope
    receive: Receive
    send: Send
    body: Any
    fault: Fault | None
    behaviour: Behaviour

    @property
    def breaks(self) -> bool:
        """Whether the transfer is to be cut (a ``break_stream`` fault)."""
        return self.fault is not None and self.fault.kind == "break_stream"

    @property
    def hides_usage(self) -> bool:
        """Whether ``usage`` is to be left out (a ``no_usage`` or ``sloppy_stream`` fault)."""
        return self.fault is not None and self.fault.kind in ("no_usage", "sloppy_stream")

    @property
    def sloppy(self) -> bool:
        """Whether a stream is to be sent carelessly (a ``sloppy_stream`` fault)."""
        return self.fault is not None and self.fault.kind == "sloppy_stream"

    async def reply(self, payload: bytes) -> None:
        """A 200 JSON reply, or half of it and a cut connection under ``break_stream``."""
        if not self.breaks:
            await send_json(self.send, 200, payload)
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        half = payload[: len(payload) // 2]
        await self.send({"type": "http.response.body", "body": half, "more_body": True})
        await abort_connection(self.scope, self.receive)

    async def stream(
        self, events: list[bytes], *, anthropic: bool = False, done: bool = True
    ) -> bool:
        """SSE ``events`` then ``[DONE]`` (not in an ``anthropic`` stream, nor unless
        ``done``: the Responses API sends none), paced as configured, or cut after
        ``after_chunks``; under ``sloppy_stream``, no ``[DONE]`` and every event split in two
        writes in the middle of its bytes; under ``stream_error``, an error event after
        ``after_chunks``. Returns whether the client left while a paced stream was being
        sent."""
        fault = self.fault
        if fault is not None and (self.breaks or fault.kind == "stream_error"):
            del events[fault.after_chunks :]
            if fault.kind == "stream_error":
                events.append(_stream_error_event(fault, anthropic, not done and not anthropic))
        elif self.sloppy:
            events = [part for e in events for part in (e[: len(e) // 2 + 1], e[len(e) // 2 + 1 :])]
        elif done and not anthropic:
            events.append(_DONE)
        send = self.send
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        behaviour = self.behaviour
        if behaviour.ttft_ms:
            await asyncio.sleep(behaviour.ttft_ms / 1000)
        tail = b""
        if behaviour.tokens_per_second > 0:
            gap = 1 / behaviour.tokens_per_second
            left = asyncio.ensure_future(_disconnected(self.receive))
            try:
                for index, event in enumerate(events):
                    if index:
                        await asyncio.wait({left}, timeout=gap)
                    if left.done():
                        return True
                    await send({"type": "http.response.body", "body": event, "more_body": True})
            finally:
                left.cancel()
        elif self.sloppy:
            for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        else:
            tail = b"".join(events)
        if self.breaks:
            if tail:
                await send({"type": "http.response.body", "body": tail, "more_body": True})
            await abort_connection(self.scope, self.receive)
            return False
        await send({"type": "http.response.body", "body": tail})
        return False


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
