"""Serving the Responses and Messages APIs on every deployment: natively, or bridged
through chat.

Every deployment's provider is wrapped in one :class:`ApiAdapter`. Chat, embeddings
and the other one-shot endpoints go straight through. The two APIs that not every
upstream speaks are served inside the attempt, so the caller (routing, retries,
fallbacks across both kinds, budgets, ledger) sees one answer shape from every
deployment and a model group may mix them:

- ``POST /v1/responses`` is passed through as-is to a deployment that serves the
  Responses API natively (``responses_api: native``, the default of ``openai`` and
  ``azure``); for the others (``mock``, ``responses_api: bridge``) it is translated into
  a chat request, and the chat reply or stream back into a Responses object or events
  (:mod:`llmplane.gateway.responses`). A native deployment whose upstream answers
  ``/responses`` with 404 or 405 (an OpenAI-compatible server without that API: Ollama,
  TGI, llama.cpp, older vLLM) is switched to the bridge for the rest of the process,
  once, with a warning; a 404 that names the model (``model_not_found``) is the model's
  fault, not the API's, and switches nothing.
- ``POST /v1/messages`` reaches an ``anthropic`` deployment as the client sent it (only
  ``model`` is the deployment's), so what the chat shape cannot carry — extended
  thinking and its signed blocks, ``cache_control``, documents, citations, ``top_k``,
  server tools — reaches Claude intact and its reply and events come back unchanged.
  Any other deployment gets it translated into chat (:mod:`llmplane.gateway.anthropic`)
  and the answer translated back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmplane.errors import UpstreamRejectedError
from llmplane.gateway import anthropic, responses
from llmplane.gateway.providers.base import Endpoint, EventStream, Provider, UpstreamReply
from llmplane.gateway.streaming import ChunkTranslator

log = logging.getLogger(__name__)

_NO_SUCH_API = (404, 405)


def _lacks_responses_api(exc: UpstreamRejectedError) -> bool:
    return exc.upstream_status in _NO_SUCH_API and exc.code != "model_not_found"


class BridgedStream:
    """A chat stream read as another API's events (Responses, Anthropic Messages) through
    that API's chunk translator."""

    def __init__(self, chat: EventStream, translator: ChunkTranslator) -> None:
        self._chat = chat
        self._translator = translator

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        translator = self._translator
        async for batch in self._chat:
            events = translator.feed_events(b"".join(batch))
            if events:
                yield events
        # Ended without [DONE] (or with it: then this is empty).
        tail = translator.end()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self._chat.aclose()


class ApiAdapter:
    """A deployment's provider, serving every endpoint: Responses and Messages calls
    natively where the upstream speaks them, through chat where it does not."""

    def __init__(
        self, inner: Provider, deployment_id: str, *, native_responses: bool, native_messages: bool
    ) -> None:
        self._inner = inner
        self._id = deployment_id
        self.native_responses = native_responses
        self.native_messages = native_messages

    def _bridges(self, endpoint: Endpoint) -> bool:
        if endpoint is Endpoint.RESPONSES:
            return not self.native_responses
        return endpoint is Endpoint.MESSAGES and not self.native_messages

    def _bridge_responses_from_now_on(self) -> None:
        if self.native_responses:
            self.native_responses = False
            log.warning(
                "deployment %r has no /responses upstream (HTTP 404/405): Responses calls "
                "are bridged through chat from now on; set responses_api: bridge to say so",
                self._id,
            )

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Pass the call on, or serve it through chat where the upstream lacks its API."""
        if not self._bridges(endpoint):
            if endpoint is not Endpoint.RESPONSES:
                return await self._inner.complete(endpoint, body, request_id)
            try:
                return await self._inner.complete(endpoint, body, request_id)
            except UpstreamRejectedError as exc:
                if not _lacks_responses_api(exc):
                    raise
                self._bridge_responses_from_now_on()
        if endpoint is Endpoint.RESPONSES:
            chat = responses.to_chat_request(body)
            reply = await self._inner.complete(Endpoint.CHAT, chat, request_id)
            answer = responses.from_chat_reply(reply.body, chat["model"], body, request_id)
        else:
            chat = anthropic.to_chat_request(body)
            reply = await self._inner.complete(Endpoint.CHAT, chat, request_id)
            answer = anthropic.from_chat_reply(reply.body, chat["model"])
        return UpstreamReply(orjson.dumps(answer), reply.usage)

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> EventStream:
        """Open the stream; a bridged one is a chat stream (with its usage chunk, which the
        translator reports) translated into the API's events."""
        if not self._bridges(endpoint):
            if endpoint is not Endpoint.RESPONSES:
                return await self._inner.open_stream(endpoint, body, request_id)
            try:
                return await self._inner.open_stream(endpoint, body, request_id)
            except UpstreamRejectedError as exc:
                if not _lacks_responses_api(exc):
                    raise
                self._bridge_responses_from_now_on()
        translator: ChunkTranslator
        if endpoint is Endpoint.RESPONSES:
            chat = responses.to_chat_request(body)
            translator = responses.StreamTranslator(chat["model"], body, request_id)
        else:
            chat = anthropic.to_chat_request(body)
            translator = anthropic.StreamTranslator(chat["model"], request_id)
        chat["stream_options"] = {"include_usage": True}
        stream = await self._inner.open_stream(Endpoint.CHAT, chat, request_id)
        return BridgedStream(stream, translator)

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """The wrapped provider's health."""
        return await self._inner.healthy(path, timeout_s)

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """The wrapped provider's load."""
        return await self._inner.load(path, timeout_s)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._inner.aclose()
