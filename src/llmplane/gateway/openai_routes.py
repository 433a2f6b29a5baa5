"""The OpenAI-compatible routes: chat completions, responses, embeddings, moderations, rerank,
models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.keys import Principal
from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.errors import InvalidRequestError, PermissionDeniedError
from llmplane.gateway import responses
from llmplane.gateway.calls import CallContext, CallResult
from llmplane.gateway.guarded import GUARDED, guards_output
from llmplane.gateway.http import (
    Policy,
    RequestScope,
    documented,
    endpoint,
    json_response,
    requires,
)
from llmplane.gateway.providers.base import Endpoint
from llmplane.gateway.streaming import RelayResponse
from llmplane.gateway.validation import (
    check_chat,
    check_embeddings,
    check_moderations,
    check_rerank,
    parse_json_object,
)
from llmplane.guardrails.engine import RequestGuard
from llmplane.prompts.cache import ResolvedPrompt
from llmplane.prompts.request import (
    apply_to_chat,
    apply_to_responses,
    is_registered_reference,
    parse_reference,
)
from llmplane.telemetry.content import RequestContent

_MAX_USER_LENGTH = 200  # the ledger's user_id column
_MAX_TAGS = 20
_MAX_TAG_LENGTH = 100
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _parse_tags(header: str) -> dict[str, str]:
    """``x-llmplane-tags: feature=search, env=prod`` (at most 20 tags of 100 characters)."""
    tags: dict[str, str] = {}
    for item in header.split(",")[:_MAX_TAGS]:
        name, _, value = item.partition("=")
        if name.strip():
            tags[name.strip()[:_MAX_TAG_LENGTH]] = value.strip()[:_MAX_TAG_LENGTH]
    return tags


_OUTPUT_LIMITS = {
    Endpoint.CHAT: ("max_completion_tokens", "max_tokens"),
    Endpoint.RESPONSES: ("max_output_tokens",),
    Endpoint.MESSAGES: ("max_tokens",),
}


def _apply_max_tokens_ceiling(body: dict[str, Any], ceiling: int, names: tuple[str, ...]) -> None:
    """Hold a request to its team's ``max_tokens`` ceiling: refuse more, default to it."""
    for name in names:
        asked = body.get(name)
        if asked is not None and asked > ceiling:
            raise InvalidRequestError(
                f"'{name}' is {asked}, above your team's ceiling of {ceiling}.",
                param=name,
                code="max_tokens_above_ceiling",
            )
    if all(body.get(name) is None for name in names):
        body[names[-1]] = ceiling


def call_context(
    scope: RequestScope,
    principal: Principal,
    model: str,
    endpoint_kind: Endpoint,
    body: dict[str, Any],
    body_bytes: int,
    prompt: str | None = None,
) -> CallContext:
    trace = scope.trace
    user = body.get("user") or scope.request.headers.get("x-llmplane-user")
    if user is not None:
        user = user[:_MAX_USER_LENGTH]
    content = None
    if trace is not None:  # before the checks: a refused call is reported with its model
        trace.operation, trace.model, trace.principal = endpoint_kind.value, model, principal
        trace.stream = body.get("stream") is True
        policy = principal.log_policy
        if policy is not None:  # the team stores request logs (the default, none, does not)
            trace.content = RequestContent(policy, body, user)
            if policy.wants_content:
                content = trace.content
    scope.services.router.require(model)
    if not principal.may_use(model):
        raise PermissionDeniedError(f"This key may not use the model '{model}'.", param="model")
    ceiling = principal.team_max_tokens
    if ceiling is not None and endpoint_kind in _OUTPUT_LIMITS:
        _apply_max_tokens_ceiling(body, ceiling, _OUTPUT_LIMITS[endpoint_kind])
    metadata = body.get("metadata")
    tags = dict(metadata) if isinstance(metadata, dict) else {}
    header = scope.request.headers.get("x-llmplane-tags")
    if header:
        tags.update(_parse_tags(header))
    guard = None
    if principal.guardrail_policy is not None:  # one attribute check for everyone else
        guard = _request_guard(
            scope, principal, principal.guardrail_policy, endpoint_kind, body.get("stream") is True
        )
    return CallContext(
        request_id=scope.request_id,
        principal=principal,
        model=model,
        endpoint=endpoint_kind,
        user=user,
        tags=tags or None,
        body_bytes=body_bytes,
        trace=trace,
        content=content,
        prompt=prompt,
        guard=guard,
    )


def _request_guard(
    scope: RequestScope,
    principal: Principal,
    policy: str,
    endpoint_kind: Endpoint,
    stream: bool,
) -> RequestGuard | None:
    """The guard of a request under the caller's guardrail policy. Chat completions,
    messages and responses are checked (a streamed response only when the policy needs
    nothing of the answer: its stream is refused rather than passed unchecked);
    embeddings, moderations and rerank are not generation and pass."""
    engine = scope.services.guardrails
    if engine is None or endpoint_kind not in GUARDED:
        return None
    guard = engine.guard(policy, principal.team_id)
    if endpoint_kind is Endpoint.RESPONSES and stream and guards_output(guard):
        raise InvalidRequestError(
            f"Your key's guardrail policy '{policy}' checks answers, which a streamed "
            "response cannot be yet: send stream: false, or use /v1/chat/completions or "
            "/v1/messages.",
            param="stream",
            code="guardrail_unsupported",
        )
    trace = scope.trace
    if trace is not None:
        trace.guardrails, trace.guardrail_policy = guard.checks, policy
    return guard


def reply_headers(result: CallResult) -> dict[str, str]:
    """The deployment, rate-limit and (when priced) cost headers of a finished call."""
    headers = {"x-llmplane-deployment": result.deployment.id, **result.limit_headers}
    if result.cost_nanousd is not None:
        usd = f"{result.cost_nanousd / NANO_PER_USD:.9f}".rstrip("0").rstrip(".") or "0"
        headers["x-llmplane-cost-usd"] = usd
    return headers


async def one_reply(scope: RequestScope, ctx: CallContext, body: dict[str, Any]) -> Response:
    """Make the (non-streaming) call and answer with what the upstream answered."""
    result = await scope.unless_disconnected(scope.services.caller.complete(ctx, body))
    if ctx.content is not None:  # the team's request logs keep bodies
        ctx.content.reply = result.reply.body
    return _reply(scope, result)


def _reply(scope: RequestScope, result: CallResult) -> Response:
    """The upstream's body, untouched, with the deployment and (when priced) the cost."""
    return Response(
        result.reply.body,
        media_type="application/json",
        headers=scope.headers(**reply_headers(result)),
    )


PromptApply = Callable[[dict[str, Any], ResolvedPrompt, dict[str, Any]], None]


async def render_prompt(
    scope: RequestScope, principal: Principal, body: dict[str, Any], apply: PromptApply
) -> str:
    """Resolve the body's registered ``prompt`` (from the in-memory cache) and render it
    into the body; return ``name@version`` for the ledger row and the span."""
    reference = parse_reference(body["prompt"])
    resolved = await scope.services.prompts.resolve(
        principal, reference.name, label=reference.label, version=reference.version
    )
    apply(body, resolved, reference.variables)
    subject = resolved.version.subject
    if scope.trace is not None:
        scope.trace.prompt = subject
    return subject


@requires(Policy.KEY)
@documented(
    "ChatCompletion",
    request="ChatCompletionRequest",
    other_media={
        "text/event-stream": "Server-sent chat.completion.chunk events when stream is true."
    },
)
@endpoint
async def chat_completions(scope: RequestScope) -> Response:
    """Chat completions, JSON or server-sent events; a registered ``prompt`` ({name, label
    or version, variables}) is rendered before any ``messages``."""
    principal = await scope.principal()
    raw = await scope.body()
    body = parse_json_object(raw)
    prompt = None
    if "prompt" in body:
        prompt = await render_prompt(scope, principal, body, apply_to_chat)
    model = check_chat(body)
    ctx = call_context(scope, principal, model, Endpoint.CHAT, body, len(raw), prompt)
    if body.get("stream") is True:
        return await stream_reply(scope, ctx, body)
    return await one_reply(scope, ctx, body)


@requires(Policy.KEY)
@documented(
    "Response",
    request="ResponseRequest",
    other_media={"text/event-stream": "Responses API stream events when stream is true."},
)
@endpoint
async def create_response(scope: RequestScope) -> Response:
    """OpenAI Responses API, JSON or server-sent events: passed through to deployments that
    serve it, bridged through chat for the others (see ``responses_api``). A registered
    ``prompt`` ({name, ...}) is rendered before ``input``; OpenAI's own ({id, ...}) is
    passed through."""
    principal = await scope.principal()
    raw = await scope.body()
    body = parse_json_object(raw)
    prompt = None
    if is_registered_reference(body):
        prompt = await render_prompt(scope, principal, body, apply_to_responses)
    model = responses.check_request(body)
    ctx = call_context(scope, principal, model, Endpoint.RESPONSES, body, len(raw), prompt)
    if body.get("stream") is True:
        return await stream_reply(scope, ctx, body)
    return await one_reply(scope, ctx, body)


async def stream_reply(
    scope: RequestScope,
    ctx: CallContext,
    body: dict[str, Any],
) -> Response:
    """Open the call's stream and relay it."""
    deployment, relay, first, limit_headers = await scope.services.caller.open_stream(ctx, body)
    trace, telemetry = scope.trace, scope.services.telemetry
    return RelayResponse(
        relay,
        first,
        headers=scope.headers(
            **_SSE_HEADERS, **limit_headers, **{"x-llmplane-deployment": deployment.id}
        ),
        on_end=(
            (lambda status, code: telemetry.finish(trace, status, error_code=code))
            if trace is not None
            else None
        ),
    )


async def _one_shot(
    scope: RequestScope,
    check: Callable[[dict[str, Any]], str],
    kind: Endpoint,
    default_model: str | None = None,
) -> Response:
    """A non-streaming call whose answer is passed on as the upstream sent it."""
    principal = await scope.principal()
    raw = await scope.body()
    body = parse_json_object(raw)
    if default_model is not None and body.get("model") is None:
        body["model"] = default_model
    ctx = call_context(scope, principal, check(body), kind, body, len(raw))
    return await one_reply(scope, ctx, body)


@requires(Policy.KEY)
@documented("EmbeddingList", request="EmbeddingRequest")
@endpoint
async def embeddings(scope: RequestScope) -> Response:
    """Embeddings for one or many inputs."""
    return await _one_shot(scope, check_embeddings, Endpoint.EMBEDDINGS)


@requires(Policy.KEY)
@documented("Moderation", request="ModerationRequest")
@endpoint
async def moderations(scope: RequestScope) -> Response:
    """Moderation of one or many inputs by a model that serves it (without ``model``: the
    platform's ``defaults.moderation_model``)."""
    default = scope.services.platform.defaults.moderation_model
    return await _one_shot(scope, check_moderations, Endpoint.MODERATIONS, default)


@requires(Policy.KEY)
@documented("RerankList", request="RerankRequest")
@endpoint
async def rerank(scope: RequestScope) -> Response:
    """Documents ranked by relevance to a query, by a model that serves reranking."""
    return await _one_shot(scope, check_rerank, Endpoint.RERANK)


@requires(Policy.KEY)
@documented("ModelList")
@endpoint
async def list_models(scope: RequestScope) -> Response:
    """The models this key may use."""
    principal = await scope.principal()
    services = scope.services
    data = [
        {"id": name, "object": "model", "created": services.started_at, "owned_by": "llmplane"}
        for name in services.router.model_names
        if principal.may_use(name)
    ]
    return json_response(scope, {"object": "list", "data": data})


routes = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/embeddings", embeddings, methods=["POST"]),
    Route("/v1/moderations", moderations, methods=["POST"]),
    Route("/moderations", moderations, methods=["POST"]),
    Route("/v1/rerank", rerank, methods=["POST"]),
    Route("/rerank", rerank, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/models", list_models, methods=["GET"]),
]
