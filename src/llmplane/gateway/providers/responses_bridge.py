"""Serving ``POST /v1/responses`` on a deployment: natively, or bridged through chat.

:class:`ResponsesAdapter` wraps a deployment's provider. Calls for every
endpoint but :attr:`Endpoint.RESPONSES` go straight through. A Responses call
is passed through as-is when the deployment serves the Responses API natively
(``responses_api: native``, the default of ``openai`` and ``azure``
deployments); otherwise — the ``mock`` provider, ``responses_api: bridge`` — it
is translated into a chat request, and the chat reply or stream back into a
Responses object or events, inside the attempt. So the caller (routing,
retries, fallbacks, budgets, ledger) sees a Responses-shaped answer from every
deployment, and a model group may mix both kinds.

A native deployment whose upstream answers ``/responses`` with 404 or 405 (an
OpenAI-compatible server without that API: Ollama, TGI, llama.cpp, older vLLM)
is switched to the bridge for the rest of the process, once, with a warning; a
404 that names the model (``model_not_found``) is the model's fault, not the
API's, and switches nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from llmplane.errors import UpstreamRejectedError
from llmplane.gateway import responses
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


class ProviderWrapper:
    """A provider around another that serves one API its own way; health, load and closing
    are the wrapped provider's."""

    def __init__(self, inner: Provider) -> None:
        self._inner = inner

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """The wrapped provider's health."""
        return await self._inner.healthy(path, timeout_s)

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """The wrapped provider's load."""
        return await self._inner.load(path, timeout_s)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self._inner.aclose()


class ResponsesAdapter(ProviderWrapper):
    """A deployment's provider, serving Responses calls natively or through chat."""

    def __init__(self, inner: Provider, deployment_id: str, *, native: bool) -> None:
        super().__init__(inner)
        self._id = deployment_id
        self.native = native

    def _bridge_from_now_on(self) -> None:
        if self.native:
            self.native = False
            log.warning(
                "deployment %r has no /responses upstream (HTTP 404/405): Responses calls "
                "are bridged through chat from now on; set responses_api: bridge to say so",
                self._id,
            )

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Pass the call on; a Responses call to a bridged deployment goes through chat."""
        if endpoint is not Endpoint.RESPONSES:
            return await self._inner.complete(endpoint, body, request_id)
        if self.native:
            try:
                return await self._inner.complete(endpoint, body, request_id)
            except UpstreamRejectedError as exc:
                if not _lacks_responses_api(exc):
                    raise
                self._bridge_from_now_on()
        chat = responses.to_chat_request(body)
        reply = await self._inner.complete(Endpoint.CHAT, chat, request_id)
        answer = responses.from_chat_reply(reply.body, chat["model"], body, request_id)
        return UpstreamReply(orjson.dumps(answer), reply.usage)

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> EventStream:
        """Open the stream; a Responses stream of a bridged deployment is a translated
        chat stream (with its usage chunk, which the translator reports)."""
        if endpoint is not Endpoint.RESPONSES:
            return await self._inner.open_stream(endpoint, body, request_id)
        if self.native:
            try:
                return await self._inner.open_stream(endpoint, body, request_id)
            except UpstreamRejectedError as exc:
                if not _lacks_responses_api(exc):
                    raise
                self._bridge_from_now_on()
        chat = responses.to_chat_request(body)
        chat["stream_options"] = {"include_usage": True}
        stream = await self._inner.open_stream(Endpoint.CHAT, chat, request_id)
        translator = responses.StreamTranslator(chat["model"], body, request_id)
        return BridgedStream(stream, translator)
