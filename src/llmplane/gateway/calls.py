"""One model call: pick a deployment, call it, account for it — streaming or not.

Both paths end in :meth:`ModelCaller._settle`, which prices the usage and
queues exactly one ledger row per upstream call, whether it succeeded, failed
or was abandoned by the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageLedger, UsageRecord
from llmplane.errors import LLMPlaneError, error_body
from llmplane.gateway.providers.base import Endpoint, EventStream, UpstreamReply, Usage
from llmplane.gateway.router import Deployment, ModelRouter
from llmplane.gateway.tokens import completion_text, count_tokens, request_prompt_tokens

CLIENT_CLOSED = 499  # nginx's status for "client closed the request", as in the ledger
_USAGE_MARKERS = (b'"usage":{', b'"usage": {')
_DONE = b"data: [DONE]"


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


def _data(event: bytes) -> bytes:
    start = event.find(b"data:")
    return event[start + 5 :].strip() if start >= 0 else b""


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
    ) -> tuple[Deployment, AsyncIterator[bytes]]:
        """Start a stream; errors before the first byte raise, later ones become an event."""
        deployment = self._router.pick(ctx.model)
        started = time.perf_counter()
        options = body.get("stream_options")
        client_options = options if isinstance(options, dict) else {}
        wants_usage = client_options.get("include_usage") is True
        upstream_body = {
            **body,
            "model": deployment.upstream_model,
            "stream_options": {**client_options, "include_usage": True},
        }
        try:
            stream = await deployment.provider.open_stream(
                ctx.endpoint, upstream_body, ctx.request_id
            )
        except LLMPlaneError as exc:
            self._settle(
                ctx,
                deployment,
                stream=True,
                status=exc.http_status,
                usage=None,
                started=started,
                error_code=exc.code,
            )
            raise
        relay = self._relay(ctx, deployment, body, stream, wants_usage, started)
        return deployment, relay

    async def _relay(
        self,
        ctx: CallContext,
        deployment: Deployment,
        body: dict[str, Any],
        stream: EventStream,
        wants_usage: bool,
        started: float,
    ) -> AsyncIterator[bytes]:
        usage: Usage | None = None
        ttft: float | None = None
        chunks = 0
        status, error_code = 200, None
        try:
            async for events in stream:
                if ttft is None:
                    ttft = time.perf_counter()
                kept: list[bytes] = []
                for event in events:
                    if _USAGE_MARKERS[0] in event or _USAGE_MARKERS[1] in event:
                        try:
                            parsed = orjson.loads(_data(event))
                        except orjson.JSONDecodeError:
                            parsed = {}
                        usage = Usage.from_openai(parsed.get("usage")) or usage
                        if not wants_usage and not parsed.get("choices"):
                            continue
                    elif _DONE not in event:
                        chunks += 1
                    kept.append(event)
                if kept:
                    yield b"".join(kept)
        except LLMPlaneError as exc:
            status, error_code = exc.http_status, exc.code
            yield b"data: " + error_body(exc) + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            status, error_code = CLIENT_CLOSED, "client_disconnected"
            raise
        finally:
            await stream.aclose()
            if usage is None:
                # Roughly one token per content chunk, less the role and finish chunks.
                usage = Usage(request_prompt_tokens(body), max(chunks - 2, 0), 0, estimated=True)
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
