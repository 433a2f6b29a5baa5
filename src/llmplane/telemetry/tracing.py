"""OpenTelemetry spans for gateway requests, after the GenAI semantic conventions.

One span per request, made when the request has finished, from its :class:`RequestTrace`:
explicit start and end times, the caller's W3C ``traceparent`` as parent (so the gateway
span joins the caller's trace), ``gen_ai.*`` attributes for the model call, ``llmplane.*``
attributes for who called and what it cost, and one event per upstream attempt (the
retries and fallbacks). Making the span at the end keeps the request path to one call.

Spans go to a bounded ``BatchSpanProcessor``: ending a span only queues it, a background
thread exports batches over OTLP/HTTP, and when the queue is full spans are dropped rather
than requests slowed. Spans carry ids and numbers only: never a key, a provider secret or
prompt and completion content.

This module imports OpenTelemetry: import it only when tracing is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmplane.telemetry import RequestTrace

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from llmplane.accounting.ledger import UsageRecord

# llmplane's operations as GenAI ``gen_ai.operation.name`` values; the others keep their
# own name (semconv allows custom values).
_OPERATION_NAMES = {
    "chat.completions": "chat",
    "messages": "chat",
    "responses": "chat",
    "embeddings": "embeddings",
}
# llmplane provider names as GenAI ``gen_ai.provider.name`` values, where they differ.
_PROVIDER_NAMES = {"azure": "azure.ai.openai"}
_NS = 1_000_000_000
_TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: a base URL gets ``/v1/traces`` appended
    (as ``OTEL_EXPORTER_OTLP_ENDPOINT`` does); a URL already ending in it is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(_TRACES_PATH) else endpoint + _TRACES_PATH


class SpanObserver:
    """Turns each finished request into one OpenTelemetry span, exported in batches."""

    def __init__(
        self,
        exporter: SpanExporter,
        service_name: str = "llmplane",
        max_queue_size: int = 8192,
        max_export_batch_size: int = 512,
        schedule_delay_ms: float = 1000,
    ) -> None:
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
        )
        self._provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=max_queue_size,
                max_export_batch_size=min(max_export_batch_size, max_queue_size),
                schedule_delay_millis=schedule_delay_ms,
            )
        )
        self._tracer = self._provider.get_tracer("llmplane.gateway")
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def otlp_http(
        cls, endpoint: str, service_name: str = "llmplane", max_queue_size: int = 8192
    ) -> SpanObserver:
        """An observer exporting to the OTLP/HTTP collector at ``endpoint`` (its base URL,
        or its full ``/v1/traces`` URL); headers come from ``OTEL_EXPORTER_OTLP_HEADERS``."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls(OTLPSpanExporter(endpoint=traces_url(endpoint)), service_name, max_queue_size)

    def request_finished(self, trace: RequestTrace) -> None:
        """Record ``trace`` as a span; export happens later, off the request path."""
        if trace.is_probe:
            return
        parent = (
            self._propagator.extract({"traceparent": trace.traceparent})
            if trace.traceparent
            else None
        )
        operation = _OPERATION_NAMES.get(trace.operation or "", trace.operation)
        name = f"{operation} {trace.model}" if operation and trace.model else trace.path
        start_ns = int(trace.started_at * _NS)
        span = self._tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=_attributes(trace, operation),
            start_time=start_ns,
        )
        _add_attempt_events(span, trace.attempts)
        if trace.error_type or trace.error_code or trace.status >= 400:
            span.set_attribute("error.type", trace.error_type or trace.error_code or "error")
            span.set_status(Status(StatusCode.ERROR, trace.error_code))
        span.end(end_time=start_ns + int(trace.duration_s * _NS))

    def close(self) -> None:
        """Export what is queued, then stop the exporter (blocks: call it off the loop)."""
        self._provider.shutdown()


def _attributes(trace: RequestTrace, operation: str | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "http.request.method": trace.method,
        "url.path": trace.path,
        "http.response.status_code": trace.status,
        "llmplane.request_id": trace.request_id,
        "llmplane.stream": trace.stream,
        "llmplane.attempts": len(trace.attempts),
    }
    if operation:
        attributes["gen_ai.operation.name"] = operation
    if trace.model:
        attributes["gen_ai.request.model"] = trace.model
    if trace.error_code:
        attributes["llmplane.error.code"] = trace.error_code
    principal = trace.principal
    if principal is not None:
        # Ids name the caller for filtering; the key itself never leaves the key service.
        attributes["llmplane.key.id"] = principal.key_id
        if principal.team_id:
            attributes["llmplane.team.id"] = principal.team_id
        if principal.service_id:
            attributes["llmplane.service.id"] = principal.service_id
    served = trace.served_by
    if served is not None:
        provider = _PROVIDER_NAMES.get(served.provider, served.provider)
        attributes["gen_ai.provider.name"] = provider
        attributes["gen_ai.system"] = provider  # the older name, still read by many backends
        attributes["gen_ai.response.model"] = served.model
        attributes["llmplane.deployment"] = served.deployment
        # Usage and cost add up every attempt, as the ledger does.
        attempts = trace.attempts
        cached = sum(a.cached_tokens for a in attempts)
        attributes["gen_ai.usage.input_tokens"] = sum(a.prompt_tokens for a in attempts)
        attributes["gen_ai.usage.output_tokens"] = sum(a.completion_tokens for a in attempts)
        attributes["gen_ai.usage.cache_read.input_tokens"] = cached
        attributes["llmplane.cache_hit"] = cached > 0
        attributes["llmplane.cost_usd"] = sum(a.cost_nanousd for a in attempts) / _NS
        if served.ttft_ms is not None:
            attributes["llmplane.ttft_ms"] = served.ttft_ms
    return attributes


def _add_attempt_events(span: Span, attempts: Sequence[UsageRecord]) -> None:
    """One event per upstream attempt: the first is ``attempt``, a later one on the same
    model ``retry``, one on another model ``fallback``."""
    if not attempts:
        return
    first_model = attempts[0].model
    for record in attempts:
        kind = (
            "attempt"
            if record.attempt == 0
            else ("retry" if record.model == first_model else "fallback")
        )
        attributes: dict[str, AttributeValue] = {
            "llmplane.attempt": record.attempt,
            "llmplane.deployment": record.deployment,
            "gen_ai.response.model": record.model,
            "gen_ai.provider.name": _PROVIDER_NAMES.get(record.provider, record.provider),
            "http.response.status_code": record.status,
            "llmplane.latency_ms": record.latency_ms,
        }
        if record.error_code:
            attributes["error.type"] = record.error_code
        span.add_event(f"llmplane.{kind}", attributes, int(record.created_at.timestamp() * _NS))
