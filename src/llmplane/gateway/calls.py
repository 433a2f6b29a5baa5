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

from llmplane.accounting.budgets import AdmissionGuard, Reservation
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
    body_bytes: int = 0


@dataclass(slots=True)
class CallResult:
    """A finished non-streaming call."""

    reply: UpstreamReply
    deployment: Deployment
    cost_nanousd: int | None
    limit_headers: dict[str, str]


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

    def __init__(self, router: ModelRouter, ledger: UsageLedger, admission: AdmissionGuard) -> None:
        self._router = router
        self._ledger = ledger
        self._admission = admission

    async def _reserve(
        self, ctx: CallContext, deployment: Deployment, body: dict[str, Any]
    ) -> Reservation:
        """Admit the call under every rate limit above the caller and hold its worst-case
        cost under every budget above it."""
        output = 0
        if ctx.endpoint is Endpoint.CHAT:
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            output = (limit or deployment.max_output_tokens) * (body.get("n") or 1)
        # Every prompt token is at least one byte of the request body.
        rates = deployment.rates
        worst = rates.cost_nanousd(ctx.body_bytes, output, 0) if rates is not None else 0
        reservation: Reservation = await self._admission.admit(
            ctx.principal, worst, ctx.body_bytes + output, ctx.model
        )
        return reservation

    def _settle(
        self,
        ctx: CallContext,
        deployment: Deployment,
        *,
        stream: bool,
        status: int,
        usage: Usage | None,
        started: float,
        reservation: Reservation,
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
        self._admission.settle(
            reservation, cost or 0, usage.prompt_tokens + usage.completion_tokens
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
        reservation = await self._reserve(ctx, deployment, body)
        started = time.perf_counter()
        upstream_body = {**body, "model": deployment.upstream_model}

        def settle(status: int, usage: Usage | None, error_code: str | None = None) -> int | None:
            return self._settle(
                ctx,
                deployment,
                stream=False,
                status=status,
                usage=usage,
                started=started,
                reservation=reservation,
                error_code=error_code,
            )

        try:
            reply = await deployment.provider.complete(ctx.endpoint, upstream_body, ctx.request_id)
        except LLMPlaneError as exc:
            settle(exc.http_status, None, exc.code)
            raise
        except asyncio.CancelledError:
            settle(CLIENT_CLOSED, _estimate(body, None), "client_disconnected")
            raise
        cost = settle(200, reply.usage or _estimate(body, reply.body))
        return CallResult(reply, deployment, cost, reservation.headers)

    async def open_stream(
        self, ctx: CallContext, body: dict[str, Any]
    ) -> tuple[Deployment, StreamRelay, bytes | None, dict[str, str]]:
        """Start a stream and read its first bytes; errors until then are raised.

        Returns the deployment, the relay, the first bytes and the rate-limit headers."""
        deployment = self._router.pick(ctx.model)
        reservation = await self._reserve(ctx, deployment, body)
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
                reservation=reservation,
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
        except asyncio.CancelledError:
            settle(CLIENT_CLOSED, Usage(estimated=True), None, "client_disconnected")
            raise
        relay = StreamRelay(
            stream, body, wants_usage=client_options.get("include_usage") is True, settle=settle
        )
        first = await relay.start()
        return deployment, relay, first, reservation.headers
