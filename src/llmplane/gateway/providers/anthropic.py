"""``provider: anthropic``: chat and Messages calls to Anthropic's Messages API.

A chat request is translated into a Messages request and the reply or stream back
into OpenAI's shapes (:mod:`llmplane.gateway.providers.anthropic_format`), so
everything above the provider layer sees an OpenAI-compatible upstream. A Messages
request (the gateway's ``/v1/messages``) is passed through as it came, and its reply
and events come back unchanged; an ``error`` event in its stream is raised, so that
one before the first event relayed still falls back. The
HTTP side (pooled session, timeouts, error mapping, SSE) is the one every
network provider shares (:mod:`llmplane.gateway.providers._http`). Only the
deployment's key and the configured ``anthropic-version`` go upstream, never a
client's headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmplane.config.platform import DeploymentConfig, Timeouts
from llmplane.errors import InvalidRequestError, UpstreamError
from llmplane.gateway.providers._http import ErrorDetails, SSEEvents, UpstreamHTTP
from llmplane.gateway.providers.anthropic_format import (
    ChunkTranslator,
    stream_error,
    to_chat_completion,
    to_messages_request,
    usage_of,
)
from llmplane.gateway.providers.base import Endpoint, UpstreamReply

_PROMPT_TOO_LONG = "prompt is too long"


def anthropic_error_details(body: bytes) -> ErrorDetails:
    """Message and code of an Anthropic error body; a prompt over the model's context
    window gets OpenAI's ``context_length_exceeded`` code, so context fallbacks fire."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None, None, None
    if not isinstance(error, dict):
        return None, None, None
    message, kind = error.get("message"), error.get("type")
    message = message[:1000] if isinstance(message, str) else None
    code = kind[:100] if isinstance(kind, str) else None
    if message is not None and message.lower().startswith(_PROMPT_TOO_LONG):
        code = "context_length_exceeded"
    return message, code, None


class _ChatStream:
    """An Anthropic stream read as OpenAI chunk events, batch by batch."""

    def __init__(self, events: SSEEvents, translator: ChunkTranslator) -> None:
        self._events = events
        self._translator = translator

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        translator = self._translator
        async for batch in self._events:
            translated = translator.feed(batch)
            if translated:
                yield translated
            if translator.error is not None:
                raise translator.error

    async def aclose(self) -> None:
        await self._events.aclose()


class _MessagesStream:
    """An Anthropic stream passed through as it came, up to an ``error`` event, which is
    raised (after the events before it) as the gateway's error."""

    def __init__(self, events: SSEEvents, deployment: str) -> None:
        self._events = events
        self._deployment = deployment

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        async for batch in self._events:
            for index, event in enumerate(batch):
                if event.startswith(b"event: error") or b'"type":"error"' in event[:200]:
                    if index:
                        yield batch[:index]
                    try:
                        error = orjson.loads(event[event.find(b"data:") + 5 :]).get("error")
                    except (orjson.JSONDecodeError, AttributeError):
                        error = None
                    raise stream_error(error, self._deployment)
            yield batch

    async def aclose(self) -> None:
        await self._events.aclose()


class AnthropicProvider:
    """Calls one Anthropic deployment (chat only) over a pooled aiohttp session."""

    def __init__(
        self, deployment_id: str, config: DeploymentConfig, timeouts: Timeouts | None = None
    ) -> None:
        assert config.api_base is not None
        self._id = deployment_id
        self._url = config.api_base.rstrip("/").removesuffix("/v1") + "/v1/messages"
        headers = {
            "Content-Type": "application/json",
            **config.headers,
            "anthropic-version": config.anthropic_version,
        }
        key = config.upstream_key()
        if key is not None:
            headers["x-api-key"] = key
        self._http = UpstreamHTTP(
            deployment_id, config, timeouts, headers, read_error=anthropic_error_details
        )

    def _request(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        if endpoint is Endpoint.MESSAGES:
            return body  # the client's Messages request, with the deployment's model
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(
                f"Deployment {self._id!r} is an Anthropic model: it serves chat completions, "
                f"not {endpoint.value}.",
                code="unsupported_endpoint",
            )
        return to_messages_request(body)

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Send a Messages request and return the reply as a ``chat.completion``."""
        request = self._request(endpoint, body)
        response = await self._http.post(self._url, request, request_id)
        payload = await self._http.read(response)
        try:
            reply = orjson.loads(payload)
        except orjson.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):
            raise UpstreamError(
                f"The upstream of deployment {self._id!r} answered with something other "
                "than a message.",
                code="upstream_error",
            )
        if endpoint is Endpoint.MESSAGES:
            return UpstreamReply(payload, usage_of(reply.get("usage")))
        completion, usage = to_chat_completion(reply)
        return UpstreamReply(orjson.dumps(completion), usage)

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> _ChatStream | _MessagesStream:
        """Start a streamed Messages request; for a chat call its events arrive as chat
        chunk events, for a Messages call as they came."""
        request = {**self._request(endpoint, body), "stream": True}
        response = await self._http.post(self._url, request, request_id, stream=True)
        if endpoint is Endpoint.MESSAGES:
            return _MessagesStream(SSEEvents(response, self._id), self._id)
        return _ChatStream(SSEEvents(response, self._id), ChunkTranslator(self._id))

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """``GET`` ``path`` on the upstream server's root; any answer below 400 is healthy."""
        return await self._http.healthy(path, timeout_s)

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """Anthropic publishes no load gauges."""
        return None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()
