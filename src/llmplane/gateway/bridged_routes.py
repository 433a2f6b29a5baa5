"""APIs bridged onto the chat path: ``POST /v1/messages``.

``/v1/messages`` is Anthropic's Messages API, for Claude clients and coding
agents (:mod:`llmplane.gateway.anthropic`). Each request becomes a chat
request and takes the chat path — key (``x-api-key`` or bearer), model
allowlist, ``max_tokens`` ceiling, limits, budgets, routing, retries, ledger —
and the answer and stream events come back in the API's own shapes.
(OpenAI's ``/v1/responses`` is bridged per deployment instead, below the router:
:mod:`llmplane.gateway.providers.responses_bridge`.)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.keys import Principal
from llmplane.gateway import anthropic
from llmplane.gateway.http import (
    Policy,
    RequestScope,
    documented,
    endpoint,
    requires,
)
from llmplane.gateway.openai_routes import call_context, reply_headers, stream_reply
from llmplane.gateway.providers.base import Endpoint
from llmplane.gateway.streaming import ChunkTranslator
from llmplane.gateway.validation import parse_json_object


async def _bridge(
    scope: RequestScope,
    principal: Principal,
    raw_size: int,
    body: dict[str, Any],
    stream: Callable[[], ChunkTranslator],
    reply: Callable[[bytes], dict[str, Any]],
) -> Response:
    """Run a translated chat request; translate its stream (``stream()`` makes the
    translator) or its reply (``reply(body)``) back."""
    ctx = call_context(scope, principal, body["model"], Endpoint.CHAT, body, raw_size)
    if body.get("stream") is True:
        body["stream_options"] = {"include_usage": True}  # the translator reports usage
        return await stream_reply(scope, ctx, body, stream().translate)
    result = await scope.unless_disconnected(scope.services.caller.complete(ctx, body))
    return Response(
        orjson.dumps(reply(result.reply.body)),
        media_type="application/json",
        headers=scope.headers(**reply_headers(result)),
    )


@requires(Policy.KEY)
@documented(
    "Message",
    request="MessageRequest",
    other_media={"text/event-stream": "Anthropic stream events when stream is true."},
)
@functools.partial(endpoint, errors=anthropic.error_body)
async def messages(scope: RequestScope) -> Response:
    """Anthropic-style messages, JSON or server-sent events."""
    principal = await scope.principal()  # before the body: strangers learn nothing from it
    raw = await scope.body()
    body = anthropic.to_chat_request(parse_json_object(raw))
    model: str = body["model"]
    return await _bridge(
        scope,
        principal,
        len(raw),
        body,
        lambda: anthropic.StreamTranslator(model, scope.request_id),
        lambda reply: anthropic.from_chat_reply(reply, model),
    )


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
]
