"""Relaying an upstream SSE stream to the client, and settling it exactly once.

The relay reads the first events before the response starts, so an upstream
that fails before its first event gets a normal error response (and, later,
a fallback); after that, a failure becomes a final OpenAI-shaped error event.
Usage comes from the upstream's final usage chunk (added upstream, hidden from
a client that did not ask for it), for a Responses API stream from its final
``response.completed`` / ``response.incomplete`` / ``response.failed`` event,
for an Anthropic Messages stream from ``message_start`` and ``message_delta``;
else it is estimated. :meth:`StreamRelay.finish`
settles once, whichever comes first: the end of the stream, an error, the
client leaving mid-stream, or the client leaving before the first byte.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from llmplane.errors import LLMPlaneError, UpstreamError, UpstreamTimeoutError, error_body
from llmplane.gateway.providers.anthropic_format import usage_of
from llmplane.gateway.providers.base import Endpoint, EventStream, Usage, sse_data
from llmplane.gateway.token_counters import TokenCounter
from llmplane.gateway.tokens import request_prompt_tokens
from llmplane.telemetry.content import RequestContent

if TYPE_CHECKING:
    from llmplane.gateway.guarded_streams import StreamGuard

CLIENT_CLOSED = 499  # nginx's status for "client closed the request", as in the ledger
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_DONE = b"data: [DONE]"
_RESPONSES_DELTA = b'.delta"'  # response.output_text.delta, …function_call_arguments.delta
_RESPONSES_FAILED = b'"type":"response.failed"'

# settle(status, usage, ttft, error_code)
Settle = Callable[[int, Usage, float | None, str | None], None]


def no_first_token(timeout_s: float) -> UpstreamTimeoutError:
    """The 504 of a stream whose first token did not come within the model's ``ttft_s``."""
    return UpstreamTimeoutError(f"The upstream sent no first token within {timeout_s:g}s.")


class StreamRelay:
    """One upstream stream on its way to one client."""

    def __init__(
        self,
        stream: EventStream,
        body: dict[str, Any],
        counter: TokenCounter,
        *,
        wants_usage: bool,
        settle: Settle,
        api: Endpoint = Endpoint.CHAT,
        capture: RequestContent | None = None,
        guard: StreamGuard | None = None,
    ) -> None:
        self._stream = stream
        self._upstream = stream.__aiter__()
        self._body = body
        self._counter = counter
        self._wants_usage = wants_usage
        self._settle = settle
        # A Responses API stream: usage in the final response event, always shown; no
        # [DONE]; content in *.delta events; errors as an ``error`` event.
        self._responses = api is Endpoint.RESPONSES
        # An Anthropic Messages stream: usage in message_start and message_delta, no [DONE],
        # content in content_block_delta events, errors as Anthropic's ``error`` event.
        self._messages = api is Endpoint.MESSAGES
        self._anthropic_usage: dict[str, int] = {}
        self._usage: Usage | None = None
        self._ttft: float | None = None
        self._chunks = 0
        self._settled = False
        self._done = False  # the upstream sent its [DONE]
        self._last = b""  # the latest Responses event, for the sequence number of an error
        self._failure: LLMPlaneError | None = None  # the upstream's own failure event
        self.status = 200  # how it ended, once settled
        self.error_code: str | None = None
        # The request's content, when the team's request logs keep bodies: the bytes the
        # client gets are kept (by reference; assembled later, off the event loop).
        self._capture = capture
        if capture is not None:
            capture.start_stream()
        # Output guardrails of a chat stream: text is held and checked window by window.
        self._guard = guard

    def _keep_responses(self, events: list[bytes]) -> bytes:
        for index, event in enumerate(events):
            # Only the final response object carries a usage object; in a delta it would be
            # escaped text.
            if _USAGE_MARKERS[0] in event or _USAGE_MARKERS[1] in event:
                try:
                    parsed = orjson.loads(sse_data(event))
                except orjson.JSONDecodeError:
                    continue
                final = parsed.get("response") if isinstance(parsed, dict) else None
                if isinstance(final, dict):
                    self._usage = Usage.from_openai(final.get("usage")) or self._usage
            elif _RESPONSES_DELTA in event:
                self._chunks += 1
            if _RESPONSES_FAILED in event[:80] or event.startswith(b"event: error"):
                # The upstream gave up: the events before it go out, then the call fails
                # (before the first byte: another deployment may serve it).
                self._failure = UpstreamError(
                    "The upstream failed mid-stream.", code="upstream_stream_failed"
                )
                events = events[:index]
                break
        if events:
            self._last = events[-1]
        return b"".join(events)

    def _responses_error(self, exc: LLMPlaneError) -> bytes:
        """The Responses API's ``error`` event, numbered after the last event relayed."""
        sequence = 0
        try:
            last = orjson.loads(sse_data(self._last)) if self._last else None
            if isinstance(last, dict) and isinstance(last.get("sequence_number"), int):
                sequence = last["sequence_number"] + 1
        except orjson.JSONDecodeError:
            pass
        error = orjson.loads(error_body(exc))["error"]
        data = {
            "type": "error",
            "code": error["code"],
            "message": error["message"],
            "param": error["param"],
            "sequence_number": sequence,
        }
        return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"

    def _keep_messages(self, events: list[bytes]) -> bytes:
        for event in events:
            if _USAGE_MARKERS[0] in event or _USAGE_MARKERS[1] in event:
                try:
                    parsed = orjson.loads(sse_data(event))
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(parsed, dict):
                    continue
                kind = parsed.get("type")
                if kind == "message_start":
                    message = parsed.get("message")
                    usage = message.get("usage") if isinstance(message, dict) else None
                else:
                    usage = parsed.get("usage") if kind == "message_delta" else None
                if isinstance(usage, dict):
                    self._anthropic_usage.update(
                        (k, v) for k, v in usage.items() if isinstance(v, int)
                    )
                    self._usage = usage_of(self._anthropic_usage) or self._usage
            elif b"content_block_delta" in event:
                self._chunks += 1
        return b"".join(events)

    def _keep(self, events: list[bytes]) -> bytes:
        if self._responses:
            return self._keep_responses(events)
        if self._messages:
            return self._keep_messages(events)
        kept: list[bytes] = []
        for event in events:
            if _USAGE_MARKERS[0] in event or _USAGE_MARKERS[1] in event:
                try:
                    parsed = orjson.loads(sse_data(event))
                except orjson.JSONDecodeError:
                    parsed = {}
                self._usage = Usage.from_openai(parsed.get("usage")) or self._usage
                if not self._wants_usage and not parsed.get("choices"):
                    continue
            elif _DONE in event:
                self._done = True
            else:
                self._chunks += 1
            kept.append(event)
        return b"".join(kept)

    async def _next(self) -> bytes | None:
        if self._failure is not None:
            raise self._failure
        while True:
            try:
                events = await self._upstream.__anext__()
            except StopAsyncIteration:
                guard, self._guard = self._guard, None
                data = await guard.end() if guard is not None else b""
                if not data:
                    return None
                if self._capture is not None:
                    self._capture.add_events(data)
                return data
            if self._ttft is None:
                self._ttft = time.perf_counter()
            data = self._keep(events)
            if data and self._guard is not None:
                data = await self._guard.feed(data)
            if data:
                if self._capture is not None:
                    self._capture.add_events(data)
                return data
            if self._failure is not None:
                raise self._failure

    async def start(self, timeout_s: float | None = None) -> bytes | None:
        """Read up to the first client-visible bytes, within ``timeout_s`` (the time to first
        token); upstream errors so far are raised, a timeout as :class:`UpstreamTimeoutError`."""
        try:
            if timeout_s is None:
                return await self._next()
            try:
                async with asyncio.timeout(timeout_s):
                    return await self._next()
            except TimeoutError:
                raise no_first_token(timeout_s) from None
        except LLMPlaneError as exc:
            await self.finish(exc.http_status, exc.code)
            raise
        except asyncio.CancelledError:
            await self.finish(CLIENT_CLOSED, "client_disconnected")
            raise

    async def events(self, first: bytes | None) -> AsyncIterator[bytes]:
        """The client's byte stream, starting with what :meth:`start` returned."""
        status, error_code = 200, None
        try:
            data = first
            while data is not None:
                yield data
                data = await self._next()
            if not self._done and not self._responses and not self._messages:
                yield _DONE + b"\n\n"  # an upstream that forgot it: clients wait for it
        except LLMPlaneError as exc:
            status, error_code = exc.http_status, exc.code
            if self._responses:
                yield self._responses_error(exc)
            elif self._messages:
                from llmplane.gateway.anthropic import error_body as anthropic_error

                yield b"event: error\ndata: " + anthropic_error(exc) + b"\n\n"
            else:
                yield b"data: " + error_body(exc) + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            status, error_code = CLIENT_CLOSED, "client_disconnected"
            raise
        finally:
            await self.finish(status, error_code)

    async def finish(self, status: int, error_code: str | None) -> None:
        """Release the upstream and settle usage; only the first call counts."""
        if self._settled:
            return
        self._settled = True
        self.status, self.error_code = status, error_code
        await self._stream.aclose()
        usage = self._usage
        if usage is None:
            # Roughly one token per content chunk (a Responses delta), less the role and
            # finish chunks of chat.
            chat = not self._responses and not self._messages
            content = max(self._chunks - 2, 0) if chat else self._chunks
            usage = Usage(
                request_prompt_tokens(self._body, self._counter), content, 0, estimated=True
            )
        self._settle(status, usage, self._ttft, error_code)


class RelayResponse(StreamingResponse):
    """An SSE response that settles its relay even if the client left before the first byte
    or the server stopped sending because the client was gone."""

    def __init__(
        self,
        relay: StreamRelay,
        first: bytes | None,
        headers: dict[str, str],
        on_end: Callable[[int, str | None], None] | None = None,
    ) -> None:
        super().__init__(relay.events(first), media_type="text/event-stream", headers=headers)
        self._relay = relay
        self._on_end = on_end
        # The stream's end, not the handler's return, ends the request's trace.
        self.finishes_trace = on_end is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._relay.finish(CLIENT_CLOSED, "client_disconnected")
            if self._on_end is not None:
                self._on_end(self._relay.status, self._relay.error_code)


class ChunkTranslator:
    """Base of the bridges from OpenAI ``chat.completion.chunk`` events to another API's
    stream (Anthropic messages, OpenAI responses): subclasses say what a chunk, the end
    and an error event become; this class reads the events and ends the stream once."""

    _finished = False

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def _finish(self) -> list[bytes]:
        raise NotImplementedError

    def _error(self, error: dict[str, Any]) -> list[bytes]:
        raise NotImplementedError

    def feed_events(self, data: bytes) -> list[bytes]:
        """Translate a batch of whole OpenAI SSE events into whole events of the other API."""
        out: list[bytes] = []
        for event in data.split(b"\n\n"):
            payload = sse_data(event)
            if not payload:
                continue
            if payload == b"[DONE]":
                out += self._finish()
                continue
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(parsed, dict):
                continue
            if isinstance(parsed.get("error"), dict):
                out += self._error(parsed["error"])
            else:
                out += self._chunk(parsed)
        return out

    def end(self) -> list[bytes]:
        """The closing events of a stream whose upstream ended (nothing if it was closed)."""
        return self._finish()
