"""One model call: pick a deployment, call it, account for it — streaming or not.

Both paths end in :meth:`ModelCaller._settle`, which prices the usage and
queues exactly one ledger row per upstream call, whether it succeeded, failed
or was abandoned by the client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageLedger, UsageRecord
from llmplane.errors import LLMPlaneError
from llmplane.gateway.providers.base import Endpoint, UpstreamReply, Usage
from llmplane.gateway.router import Deployment, ModelRouter
from llmplane.gateway.streaming import CLIENT_CLOSED, StreamRelay
from llmplane.gateway.tokens import completion_text, count_tokens, request_prompt_tokens


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who asked, for what, under which request id: everything a ledger row is attributed to."""

    request_id: str
    principal: Principal
    model: str
    endpoint: Endpoint
    user: str | None
    tags: dict[str, Any] | None


@dataclass(slots=True)
class CallResult:
    """A finished non-streaming call."""

    reply: UpstreamReply
    deployment: Deployment
    cost_nanousd: int | None


def _estimate(body: dict[str, Any], reply: bytes | None) -> Usage:
    completion = 0
    if reply:
        try:
            completion = count_tokens(completion_text(orjson.loads(reply)))
        except (orjson.JSONDecodeError, AttributeError):
            completion = 0
    return Usage(request_prompt_tokens(body), completion, 0, estimated=True)


class ModelCaller:
    """Routes calls to deployments and settles their usage in the ledger."""

    def __init__(self, router: ModelRouter, ledger: UsageLedger) -> None:
        self._router = router
        self._ledger = ledger

    def _settle(
        self,
        ctx: CallContext,
        deployment: Deployment,
        *,
        stream: bool,
        status: int,
        usage: Usage | None,
        started: float,
        ttft: float | None = None,
        error_code: str | None = None,
    ) -> int | None:
        usage = usage or Usage(estimated=True)
        rates = deployment.rates
        cost = (
            rates.cost_nanousd(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
            if rates is not None
            else None
        )
        principal = ctx.principal
        self._ledger.record(
            UsageRecord(
                request_id=ctx.request_id,
                created_at=datetime.now(UTC),
                model=ctx.model,
                deployment=deployment.id,
                provider=deployment.provider_name,
                endpoint=ctx.endpoint.value,
                stream=stream,
                status=status,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost_nanousd=cost or 0,
                latency_ms=(time.perf_counter() - started) * 1000,
                ttft_ms=(ttft - started) * 1000 if ttft is not None else None,
                key_id=principal.key_id,
                team_id=principal.team_id,
                service_id=principal.service_id,
                user_id=ctx.user or principal.user_id,
                error_code=error_code,
                usage_estimated=usage.estimated,
                tags=ctx.tags,
            )
        )
        return cost

    async def complete(self, ctx: CallContext, body: dict[str, Any]) -> CallResult:
        """Call the model once and return the upstream's reply with its cost."""
        deployment = self._router.pick(ctx.model)
        started = time.perf_counter()
        upstream_body = {**body, "model": deployment.upstream_model}
        try:
            reply = await deployment.provider.complete(ctx.endpoint, upstream_body, ctx.request_id)
        except LLMPlaneError as exc:
            self._settle(
                ctx,
                deployment,
                stream=False,
                status=exc.http_status,
                usage=None,
                started=started,
                error_code=exc.code,
            )
            raise
        except asyncio.CancelledError:
            self._settle(
                ctx,
                deployment,
                stream=False,
                status=CLIENT_CLOSED,
                usage=_estimate(body, None),
                started=started,
                error_code="client_disconnected",
            )
            raise
        usage = reply.usage or _estimate(body, reply.body)
        cost = self._settle(ctx, deployment, stream=False, status=200, usage=usage, started=started)
        return CallResult(reply, deployment, cost)

    async def open_stream(
        self, ctx: CallContext, body: dict[str, Any]
    ) -> tuple[Deployment, StreamRelay, bytes | None]:
        """Start a stream and read its first bytes; errors until then are raised."""
        deployment = self._router.pick(ctx.model)
        started = time.perf_counter()
        options = body.get("stream_options")
        client_options = options if isinstance(options, dict) else {}
        upstream_body = {
            **body,
            "model": deployment.upstream_model,
            "stream_options": {**client_options, "include_usage": True},
        }

        def settle(status: int, usage: Usage, ttft: float | None, error_code: str | None) -> None:
            self._settle(
                ctx,
                deployment,
                stream=True,
                status=status,
                usage=usage,
                started=started,
                ttft=ttft,
                error_code=error_code,
            )

        try:
            stream = await deployment.provider.open_stream(
                ctx.endpoint, upstream_body, ctx.request_id
            )
        except LLMPlaneError as exc:
            settle(exc.http_status, Usage(estimated=True), None, exc.code)
            raise
        relay = StreamRelay(
            stream, body, wants_usage=client_options.get("include_usage") is True, settle=settle
        )
        first = await relay.start()
        return deployment, relay, first
