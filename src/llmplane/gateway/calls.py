"""One model call: pick a deployment, call it, retry or fall back, account for it.

Each attempt reserves its worst case under the caller's budgets (the prompt as the
deployment's token counter counts it, plus the most output the call may produce), calls one
deployment and settles in :meth:`ModelCaller._settle`, which prices the usage
and queues exactly one ledger row per upstream call (``attempt`` 0, 1, …),
whether it succeeded, failed or was abandoned by the client. Streams are
retried and failed over only until their first byte reaches the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from llmplane.accounting.budgets import AdmissionGuard, Reservation
from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageLedger, UsageRecord
from llmplane.errors import LLMPlaneError
from llmplane.gateway.guarded import answer_needs_guard, guard_reply, guard_request
from llmplane.gateway.guarded_streams import stream_guard
from llmplane.gateway.providers.base import Endpoint, UpstreamReply, Usage
from llmplane.gateway.retries import AttemptPlan, retry_after_s
from llmplane.gateway.router import Deployment, ModelRouter
from llmplane.gateway.streaming import CLIENT_CLOSED, StreamRelay, no_first_token
from llmplane.gateway.token_counters import TokenCounter
from llmplane.gateway.tokens import completion_text, count_prompt, request_prompt_tokens
from llmplane.guardrails.engine import RequestGuard
from llmplane.telemetry import RequestTrace
from llmplane.telemetry.content import RequestContent

_T = TypeVar("_T")
# Failures of a guardrail check, not of the deployment: its health counts them as successes.
_GUARDRAIL_CODES = frozenset({"guardrail_blocked", "guardrail_unavailable"})


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
    # Prompt tokens as each counter reserves them, counted once per call (retries and
    # fallbacks to deployments with the same counter reuse it).
    prompt_counts: dict[TokenCounter, int] = field(default_factory=dict, compare=False)
    trace: RequestTrace | None = field(default=None, compare=False)  # when telemetry is on
    # The trace's content when the team's request logs keep bodies (redacted or full).
    content: RequestContent | None = field(default=None, compare=False)
    prompt: str | None = None  # the registered prompt rendered (name@version)

    # The request's guardrail checks, when a policy applies to the caller.
    guard: RequestGuard | None = field(default=None, compare=False)


@dataclass(slots=True)
class CallResult:
    """A finished non-streaming call."""

    reply: UpstreamReply
    deployment: Deployment
    cost_nanousd: int | None
    limit_headers: dict[str, str]


def _estimate(body: dict[str, Any], reply: bytes | None, counter: TokenCounter) -> Usage:
    completion = 0
    if reply:
        try:
            completion = counter.count(completion_text(orjson.loads(reply)))
        except (orjson.JSONDecodeError, AttributeError):
            completion = 0
    return Usage(request_prompt_tokens(body, counter), completion, 0, estimated=True)


def reserved_prompt_tokens(ctx: CallContext, counter: TokenCounter, body: dict[str, Any]) -> int:
    """The prompt tokens a call reserves under ``counter``: counted, never fewer than the
    upstream will bill for an exact counter (long text is bounded by its bytes)."""
    tokens = ctx.prompt_counts.get(counter)
    if tokens is None:
        tokens = ctx.prompt_counts[counter] = count_prompt(body, counter)[0]
    return tokens


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
        elif ctx.endpoint is Endpoint.RESPONSES:
            output = body.get("max_output_tokens") or deployment.max_output_tokens
        elif ctx.endpoint is Endpoint.MESSAGES:
            output = body.get("max_tokens") or deployment.max_output_tokens
        rates = deployment.rates
        # Counting a prompt costs ~0.1 µs a token: only worth it where a token limit or a
        # priced budget will look at the count.
        prompt = 0
        if any(limit.tpm for limit in ctx.principal.limits_for(ctx.model)) or (
            rates is not None and self._admission.budgets_above(ctx.principal)
        ):
            prompt = reserved_prompt_tokens(ctx, deployment.counter, body)
        worst = rates.cost_nanousd(prompt, output, 0) if rates is not None else 0
        reservation: Reservation = await self._admission.admit(
            ctx.principal, worst, prompt + output, ctx.model
        )
        return reservation

    async def _check_input(
        self, ctx: CallContext, body: dict[str, Any], reservation: Reservation
    ) -> None:
        """The request's input guardrails, once, after its first admission (a caller over
        its limits costs no detector time); the texts are rewritten in ``body`` for every
        attempt. A refusal releases the reservation: nothing was called, so no ledger row
        (the verdict is in the trace: request log, span, metrics)."""
        guard = ctx.guard
        if guard is None or guard.input_checked:
            return
        guard.input_checked = True
        try:
            await guard_request(ctx.endpoint, guard, body)
        except BaseException:
            self._admission.settle(reservation, 0, 0)
            raise

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
        attempt: int = 0,
    ) -> int | None:
        usage = usage or Usage(estimated=True)
        rates = deployment.rates
        cost = (
            rates.cost_nanousd(
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.cache_write_tokens,
            )
            if rates is not None
            else None
        )
        self._admission.settle(
            reservation, cost or 0, usage.prompt_tokens + usage.completion_tokens
        )
        principal = ctx.principal
        record = UsageRecord(
            request_id=ctx.request_id,
            attempt=attempt,
            created_at=datetime.now(UTC),
            model=deployment.model,  # the model that served: a fallback is priced as itself
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
            prompt=ctx.prompt,
            guardrails=ctx.guard.summary() if ctx.guard is not None else None,
        )
        self._ledger.record(record)
        if ctx.trace is not None:
            ctx.trace.attempts.append(record)
        return cost

    async def complete(self, ctx: CallContext, body: dict[str, Any]) -> CallResult:
        """Call the model, retrying and falling back as its routing says; return the first
        success with its cost, or raise the last failure."""
        return await self._with_retries(ctx, body, self._complete_once)

    async def _with_retries(
        self,
        ctx: CallContext,
        body: dict[str, Any],
        once: Callable[[CallContext, dict[str, Any], Deployment, int], Awaitable[_T]],
    ) -> _T:
        """Run ``once`` (one attempt on one deployment) as the attempt plan says."""
        plan = self._plan(ctx, body)
        deployment, attempt = plan.first(), 0
        while True:
            try:
                return await once(ctx, body, deployment, attempt)
            except LLMPlaneError as exc:
                step = plan.next(exc)
                if step is None:
                    raise
                deployment, wait = step
                attempt += 1
                if wait:
                    await asyncio.sleep(wait)

    async def _complete_once(
        self, ctx: CallContext, body: dict[str, Any], deployment: Deployment, attempt: int
    ) -> CallResult:
        reservation = await self._reserve(ctx, deployment, body)
        await self._check_input(ctx, body, reservation)
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
                attempt=attempt,
            )

        router = self._router
        probe = router.started(deployment)
        try:
            reply = await deployment.provider.complete(ctx.endpoint, upstream_body, ctx.request_id)
        except LLMPlaneError as exc:
            settle(exc.http_status, None, exc.code)
            router.ended(deployment, exc.http_status, retry_after_s=retry_after_s(exc), probe=probe)
            raise
        except asyncio.CancelledError:
            settle(CLIENT_CLOSED, _estimate(body, None, deployment.counter), "client_disconnected")
            router.ended(deployment, CLIENT_CLOSED, probe=probe)
            raise
        router.ended(deployment, 200, latency_s=time.perf_counter() - started, probe=probe)
        guard = ctx.guard
        if guard is not None and answer_needs_guard(guard):
            # Output checks before settling: the ledger row carries their verdicts, and an
            # answer that is withheld is still paid for.
            answered = reply
            try:
                reply = await guard_reply(ctx.endpoint, guard, reply)
            except LLMPlaneError as exc:
                usage = answered.usage or _estimate(body, answered.body, deployment.counter)
                settle(exc.http_status, usage, exc.code)
                raise
            except asyncio.CancelledError:
                usage = answered.usage or _estimate(body, answered.body, deployment.counter)
                settle(CLIENT_CLOSED, usage, "client_disconnected")
                raise
        cost = settle(200, reply.usage or _estimate(body, reply.body, deployment.counter))
        return CallResult(reply, deployment, cost, reservation.headers)

    def _plan(self, ctx: CallContext, body: dict[str, Any]) -> AttemptPlan:
        config = self._router.config(ctx.model)
        window = config.context_window
        tokens = 0
        if window is not None:  # only a model with a known context window needs the count
            counter = self._router.deployments(ctx.model)[0].counter
            tokens = reserved_prompt_tokens(ctx, counter, body)
            if tokens > window:
                # Too long, or long text only bounded by its bytes: the full count decides.
                tokens, _ = count_prompt(body, counter, None)
        return AttemptPlan(self._router, ctx.principal, config, tokens)

    async def open_stream(
        self, ctx: CallContext, body: dict[str, Any]
    ) -> tuple[Deployment, StreamRelay, bytes | None, dict[str, str]]:
        """Start a stream and read its first bytes, retrying and falling back until then;
        the last failure is raised.

        Returns the deployment, the relay, the first bytes and the rate-limit headers."""
        return await self._with_retries(ctx, body, self._open_stream_once)

    async def _open_stream_once(
        self, ctx: CallContext, body: dict[str, Any], deployment: Deployment, attempt: int
    ) -> tuple[Deployment, StreamRelay, bytes | None, dict[str, str]]:
        reservation = await self._reserve(ctx, deployment, body)
        await self._check_input(ctx, body, reservation)
        started = time.perf_counter()
        options = body.get("stream_options")
        client_options = options if isinstance(options, dict) else {}
        upstream_body = {**body, "model": deployment.upstream_model}
        if ctx.endpoint is Endpoint.CHAT:  # Responses and Messages streams carry usage
            upstream_body["stream_options"] = {**client_options, "include_usage": True}
        router = self._router

        def settle(
            status: int,
            usage: Usage,
            ttft: float | None,
            error_code: str | None,
            retry_after: float | None = None,
        ) -> None:
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
                attempt=attempt,
            )
            router.ended(
                deployment,
                200 if error_code in _GUARDRAIL_CODES else status,
                ttft - started if ttft is not None else None,
                retry_after,
                probe=probe,
            )

        probe = router.started(deployment)
        ttft_s = router.config(deployment.model).timeouts.ttft_s
        try:
            # The time to first token runs from here: until the upstream answers, then until
            # its first event.
            async with asyncio.timeout(ttft_s):
                stream = await deployment.provider.open_stream(
                    ctx.endpoint, upstream_body, ctx.request_id
                )
        except TimeoutError:
            assert ttft_s is not None  # only a set limit expires
            exc = no_first_token(ttft_s)
            settle(exc.http_status, Usage(estimated=True), None, exc.code)
            raise exc from None
        except LLMPlaneError as exc:
            settle(exc.http_status, Usage(estimated=True), None, exc.code, retry_after_s(exc))
            raise
        except asyncio.CancelledError:
            settle(CLIENT_CLOSED, Usage(estimated=True), None, "client_disconnected")
            raise
        relay = StreamRelay(
            stream,
            body,
            deployment.counter,
            wants_usage=client_options.get("include_usage") is True,
            settle=settle,
            api=ctx.endpoint,
            capture=ctx.content,
            guard=(
                stream_guard(ctx.endpoint, ctx.guard)
                if ctx.guard is not None and answer_needs_guard(ctx.guard)
                else None
            ),
        )
        left = None if ttft_s is None else max(ttft_s - (time.perf_counter() - started), 0.001)
        first = await relay.start(left)
        return deployment, relay, first, reservation.headers
