"""The span observer: what one finished request looks like as an OpenTelemetry span."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageRecord
from llmplane.telemetry import RequestTrace
from llmplane.telemetry.tracing import SpanObserver, traces_url
from tests import canary

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def _attempt(attempt: int = 0, **overrides: object) -> UsageRecord:
    values: dict[str, object] = {
        "request_id": "req-1",
        "created_at": datetime.now(UTC),
        "model": "gpt-4o",
        "deployment": "gpt-4o-east",
        "provider": "openai",
        "endpoint": "chat.completions",
        "stream": False,
        "status": 200,
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "cached_tokens": 0,
        "cost_nanousd": 2_500,
        "latency_ms": 41.5,
        "attempt": attempt,
        "key_id": "key-1",
        "team_id": "team-1",
        "service_id": "svc-1",
    }
    values.update(overrides)
    return UsageRecord(**values)  # type: ignore[arg-type]


def _trace(**overrides: object) -> RequestTrace:
    trace = RequestTrace("req-1", "POST", "/v1/chat/completions", time.time() - 1.5, 0.0)
    trace.operation, trace.model, trace.status, trace.duration_s = (
        "chat.completions",
        "gpt-4o",
        200,
        1.25,
    )
    trace.principal = Principal(
        key_id="key-1", name="checkout", team_id="team-1", service_id="svc-1"
    )
    trace.attempts = [_attempt()]
    for name, value in overrides.items():
        setattr(trace, name, value)
    return trace


@pytest.fixture
def exported() -> tuple[SpanObserver, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return SpanObserver(exporter, service_name="gateway-test", schedule_delay_ms=10), exporter


def _spans(observer: SpanObserver, exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    observer.close()  # flushes the batch processor
    spans = exporter.get_finished_spans()
    for span in spans:
        canary.scan(span.to_json(indent=None), "span exported")
    return spans


def test_a_call_becomes_one_genai_span(
    exported: tuple[SpanObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = exported
    trace = _trace()
    observer.request_finished(trace)
    [span] = _spans(observer, exporter)
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.SERVER
    assert span.start_time == int(trace.started_at * 1e9)
    assert span.end_time is not None and span.end_time - span.start_time == 1_250_000_000
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "url.path": "/v1/chat/completions",
        "http.response.status_code": 200,
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "llmplane.request_id": "req-1",
        "llmplane.stream": False,
        "llmplane.attempts": 1,
        "llmplane.key.id": "key-1",
        "llmplane.team.id": "team-1",
        "llmplane.service.id": "svc-1",
        "llmplane.deployment": "gpt-4o-east",
        "llmplane.cache_hit": False,
        "llmplane.cost_usd": 2.5e-06,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.resource.attributes["service.name"] == "gateway-test"
    assert [event.name for event in span.events] == ["llmplane.attempt"]


def test_the_callers_traceparent_is_the_parent(
    exported: tuple[SpanObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = exported
    observer.request_finished(_trace(traceparent=TRACEPARENT))
    observer.request_finished(_trace())
    joined, alone = _spans(observer, exporter)
    assert format(joined.context.trace_id, "032x") == TRACE_ID
    assert joined.parent is not None and format(joined.parent.span_id, "016x") == PARENT_ID
    assert joined.parent.is_remote
    assert alone.parent is None and format(alone.context.trace_id, "032x") != TRACE_ID


def test_an_unsampled_caller_gets_no_span(
    exported: tuple[SpanObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = exported
    observer.request_finished(_trace(traceparent=f"00-{TRACE_ID}-{PARENT_ID}-00"))
    assert _spans(observer, exporter) == ()


def test_retries_and_fallbacks_are_events_and_usage_adds_up(
    exported: tuple[SpanObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = exported
    attempts = [
        _attempt(0, status=502, prompt_tokens=0, completion_tokens=0, cost_nanousd=0,
                 error_code="upstream_error"),
        _attempt(1, status=429, prompt_tokens=0, completion_tokens=0, cost_nanousd=0,
                 error_code="rate_limited"),
        _attempt(2, model="claude", deployment="claude-main", provider="anthropic",
                 cached_tokens=8),
    ]  # fmt: skip
    observer.request_finished(_trace(attempts=attempts))
    [span] = _spans(observer, exporter)
    assert [event.name for event in span.events] == [
        "llmplane.attempt",
        "llmplane.retry",
        "llmplane.fallback",
    ]
    first = dict(span.events[0].attributes or {})
    assert first["http.response.status_code"] == 502
    assert first["error.type"] == "upstream_error"
    assert first["llmplane.deployment"] == "gpt-4o-east"
    assert first["llmplane.latency_ms"] == 41.5
    attributes = span.attributes or {}
    assert attributes["gen_ai.response.model"] == "claude"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["llmplane.deployment"] == "claude-main"
    assert attributes["llmplane.attempts"] == 3
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["llmplane.cache_hit"] is True
    assert span.status.status_code is StatusCode.UNSET


def test_a_failed_request_has_error_status_and_type(
    exported: tuple[SpanObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = exported
    observer.request_finished(
        _trace(
            status=429,
            error_type="rate_limit_error",
            error_code="budget_exceeded",
            attempts=[],
        )
    )
    observer.request_finished(_trace(operation=None, model=None, principal=None, status=401,
                                     error_type="authentication_error", attempts=[]))  # fmt: skip
    refused, unknown = _spans(observer, exporter)
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.status.description == "budget_exceeded"
    assert (refused.attributes or {})["error.type"] == "rate_limit_error"
    assert (refused.attributes or {})["llmplane.error.code"] == "budget_exceeded"
    assert "gen_ai.response.model" not in (refused.attributes or {})
    assert unknown.name == "/v1/chat/completions"
    assert unknown.status.status_code is StatusCode.ERROR
    assert "llmplane.key.id" not in (unknown.attributes or {})


class SlowExporter(InMemorySpanExporter):
    """A collector that takes its time over every batch."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(0.2)
        return super().export(spans)


def test_a_slow_collector_drops_spans_instead_of_slowing_requests() -> None:
    exporter = SlowExporter()
    observer = SpanObserver(exporter, max_queue_size=16, schedule_delay_ms=10)
    started = time.perf_counter()
    for _ in range(1_000):
        observer.request_finished(_trace())
    assert time.perf_counter() - started < 0.5
    assert 16 <= len(_spans(observer, exporter)) < 100


def test_health_probes_are_not_traced(
    exported: tuple[SpanObserver, InMemorySpanExporter],
) -> None:
    observer, exporter = exported
    observer.request_finished(_trace(method="GET", path="/health/ready", operation=None))
    assert _spans(observer, exporter) == ()


def test_traces_url_appends_the_signal_path_once() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://phoenix:6006/v1/traces/") == "http://phoenix:6006/v1/traces"
    assert (
        traces_url("https://cloud.langfuse.com/api/public/otel")
        == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    )
