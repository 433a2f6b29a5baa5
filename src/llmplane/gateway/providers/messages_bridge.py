"""Serving ``POST /v1/messages`` on a deployment: passed through to Anthropic, or bridged
through chat for every other provider.

:class:`MessagesAdapter` wraps a deployment's provider like
:class:`~llmplane.gateway.providers.responses_bridge.ResponsesAdapter` does for the
Responses API. An ``anthropic`` deployment gets the client's Messages request as it
came (only ``model`` is the deployment's), so what the chat shape cannot carry —
extended thinking and its signed blocks, ``cache_control`` on system prompts and tools,
documents, citations, ``top_k``, server tools — reaches Claude intact, and its reply and
stream events come back unchanged. Any other deployment gets the request translated
into chat (:mod:`llmplane.gateway.anthropic`) inside the attempt, and the reply or
stream translated back. Routing, retries, fallbacks (across both kinds), budgets and
the ledger see one Messages call either way.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmplane.gateway import anthropic
from llmplane.gateway.providers.base import Endpoint, EventStream, Provider, UpstreamReply
from llmplane.gateway.providers.responses_bridge import BridgedStream, ProviderWrapper


class MessagesAdapter(ProviderWrapper):
    """A deployment's provider, serving Messages calls natively (Anthropic) or via chat."""

    def __init__(self, inner: Provider, *, native: bool) -> None:
        super().__init__(inner)
        self.native = native

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Pass the call on; a Messages call to a non-Anthropic deployment goes via chat."""
        if endpoint is not Endpoint.MESSAGES or self.native:
            return await self._inner.complete(endpoint, body, request_id)
        chat = anthropic.to_chat_request(body)
        reply = await self._inner.complete(Endpoint.CHAT, chat, request_id)
        answer = anthropic.from_chat_reply(reply.body, chat["model"])
        return UpstreamReply(orjson.dumps(answer), reply.usage)

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> EventStream:
        """Open the stream; a bridged one is a chat stream translated into Anthropic's events
        (with the chat usage chunk, which the translator reports in ``message_delta``)."""
        if endpoint is not Endpoint.MESSAGES or self.native:
            return await self._inner.open_stream(endpoint, body, request_id)
        chat = anthropic.to_chat_request(body)
        chat["stream_options"] = {"include_usage": True}
        stream = await self._inner.open_stream(Endpoint.CHAT, chat, request_id)
        return BridgedStream(stream, anthropic.StreamTranslator(chat["model"], request_id))
