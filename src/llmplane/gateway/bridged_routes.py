"""``POST /v1/messages``: Anthropic's Messages API, for Claude clients and coding agents.

The request takes the same path as chat — key (``x-api-key`` or bearer), model
allowlist, the team's ``max_tokens`` ceiling, limits, budgets, routing, retries,
ledger — as an :attr:`Endpoint.MESSAGES` call. Below the router each attempt is
either passed through to an ``anthropic`` deployment as it came, or bridged through
chat for any other (:mod:`llmplane.gateway.providers.bridges`), so replies,
stream events and errors are always in Anthropic's shapes.
"""

from __future__ import annotations

import functools

from starlette.responses import Response
from starlette.routing import Route

from llmplane.gateway import anthropic
from llmplane.gateway.http import Policy, RequestScope, documented, endpoint, requires
from llmplane.gateway.openai_routes import call_context, one_reply, stream_reply
from llmplane.gateway.providers.base import Endpoint
from llmplane.gateway.validation import parse_json_object


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
    body = parse_json_object(raw)
    model = anthropic.check_request(body)
    ctx = call_context(scope, principal, model, Endpoint.MESSAGES, body, len(raw))
    if body.get("stream") is True:
        return await stream_reply(scope, ctx, body)
    return await one_reply(scope, ctx, body)


routes = [
    Route("/v1/messages", messages, methods=["POST"]),
]
