"""The span observer: what one finished request looks like as an OpenTelemetry span, as
the collector receives it (OTLP protobuf, decoded by ``opentelemetry-proto``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import ValidationError

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageRecord
from llmplane.config.settings import Settings
from llmplane.telemetry import RequestTrace
from llmplane.telemetry.span_encoding import parse_traceparent
from llmplane.telemetry.tracing import SpanObserver, traces_url
from tests.telemetry.otlp import Collected, attributes, resource_attributes, spans_of

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


class Sender(Collected):
    """A collector in process: keeps every request body it is sent."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.threads: set[str] = set()
        self.closed = False

    def send(self, payload: bytes, spans: int) -> bool:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        self.keep(payload)
        return True

    def shutdown(self) -> None:
        self.closed = True


@pytest.fixture
def exported() -> Iterator[tuple[SpanObserver, Sender]]:
    sender = Sender()
    observer = SpanObserver(sender, service_name="gateway-test", schedule_delay_ms=10)
    yield observer, sender
    observer.close()


def _spans(observer: SpanObserver, sender: Sender) -> list[Span]:
    observer.close()  # exports what is queued
    return sender.spans()


def test_a_call_becomes_one_genai_span(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
    trace = _trace()
    observer.request_finished(trace)
    [span] = _spans(observer, sender)
    assert span.name == "chat gpt-4o"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == int(trace.started_at * 1e9)
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_250_000_000
    assert attributes(span) == {
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
    assert span.status.code == Status.STATUS_CODE_UNSET
    [resource] = resource_attributes(sender.bodies)
    assert resource["service.name"] == "gateway-test"
    assert resource["telemetry.sdk.language"] == "python"
    assert [event.name for event in span.events] == ["llmplane.attempt"]
    [event] = span.events
    assert event.time_unix_nano == int(trace.attempts[0].created_at.timestamp() * 1e9)
    assert attributes(event) == {
        "llmplane.attempt": 0,
        "llmplane.deployment": "gpt-4o-east",
        "gen_ai.response.model": "gpt-4o",
        "gen_ai.provider.name": "openai",
        "http.response.status_code": 200,
        "llmplane.latency_ms": 41.5,
    }
    assert sender.threads == {"llmplane-spans"}  # encoded and sent off the caller's thread


def test_requests_of_every_shape_keep_their_own_attributes() -> None:
    """Repeated parts of spans are encoded once and reused: each span still carries
    exactly what its own request had, whatever came before it."""
    other_team = Principal(key_id="key-2", name="search", team_id="team-2")
    variants = [
        _trace(),
        _trace(stream=True),
        _trace(principal=other_team),
        _trace(principal=Principal("key-1", "checkout", team_id="team-3", service_id="svc-1")),
        _trace(model="gpt-4o-mini", operation="embeddings"),
        _trace(status=429, error_type="rate_limit_error", error_code="rpm_exceeded", attempts=[]),
        _trace(status=502, error_type="api_error", error_code="upstream_error"),
        _trace(attempts=[_attempt(prompt_tokens=99, cost_nanousd=7, ttft_ms=12.5)]),
        _trace(attempts=[_attempt(status=500, error_code="upstream_error"), _attempt(1)]),
        _trace(attempts=[_attempt(deployment="gpt-4o-west", provider="azure")]),
    ]

    def encoded(traces: list[RequestTrace]) -> list[Span]:
        sender = Sender()
        observer = SpanObserver(sender, schedule_delay_ms=60_000)
        for trace in traces:
            observer.request_finished(trace)
        return _spans(observer, sender)

    alone = [encoded([variant])[0] for variant in variants]
    together = encoded(variants * 3)
    for n, span in enumerate(together):
        expected = alone[n % len(variants)]
        assert attributes(span) == attributes(expected)
        assert (span.name, span.status, span.start_time_unix_nano, span.end_time_unix_nano) == (
            expected.name,
            expected.status,
            expected.start_time_unix_nano,
            expected.end_time_unix_nano,
        )
        assert [(e.name, e.time_unix_nano, attributes(e)) for e in span.events] == [
            (e.name, e.time_unix_nano, attributes(e)) for e in expected.events
        ]
    assert attributes(alone[7])["llmplane.ttft_ms"] == 12.5
    assert attributes(alone[9])["gen_ai.provider.name"] == "azure.ai.openai"
    assert attributes(alone[4])["gen_ai.operation.name"] == "embeddings"
    assert alone[6].status.message == "upstream_error"


def test_the_callers_traceparent_is_the_parent(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
    observer.request_finished(_trace(traceparent=TRACEPARENT))
    observer.request_finished(_trace())
    joined, alone = _spans(observer, sender)
    assert joined.trace_id.hex() == TRACE_ID
    assert joined.parent_span_id.hex() == PARENT_ID
    assert joined.flags == 0x301  # sampled; the parent is known to be remote, and is
    assert alone.parent_span_id == b"" and alone.trace_id.hex() != TRACE_ID
    assert len(alone.trace_id) == 16 and alone.trace_id != bytes(16)
    assert len({joined.span_id, alone.span_id}) == 2 and len(joined.span_id) == 8


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{TRACE_ID}-{PARENT_ID}",  # too short
        f"00-{'0' * 32}-{PARENT_ID}-01",  # an invalid trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # an invalid parent id
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # a forbidden version
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",  # not lowercase hex
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",  # version 00 has no more fields
        f"00_{TRACE_ID}-{PARENT_ID}-01",
        f"01-{TRACE_ID}-{PARENT_ID}-01x",  # a later version still separates its fields
    ],
)
def test_a_malformed_traceparent_starts_a_trace_of_its_own(
    exported: tuple[SpanObserver, Sender], traceparent: str
) -> None:
    observer, sender = exported
    assert parse_traceparent(traceparent) is None
    observer.request_finished(_trace(traceparent=traceparent))
    [span] = _spans(observer, sender)
    assert span.parent_span_id == b"" and span.trace_id.hex() != TRACE_ID


def test_a_later_traceparent_version_is_read_for_its_known_fields() -> None:
    parsed = parse_traceparent(f"01-{TRACE_ID}-{PARENT_ID}-01-what-comes-next")
    assert parsed == (bytes.fromhex(TRACE_ID), bytes.fromhex(PARENT_ID), True)


def test_an_unsampled_caller_gets_no_span(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
    observer.request_finished(_trace(traceparent=f"00-{TRACE_ID}-{PARENT_ID}-00"))
    observer.request_finished(_trace(request_id="sampled", traceparent=TRACEPARENT))
    [span] = _spans(observer, sender)
    assert attributes(span)["llmplane.request_id"] == "sampled"


def test_retries_and_fallbacks_are_events_and_usage_adds_up(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
    attempts = [
        _attempt(0, status=502, prompt_tokens=0, completion_tokens=0, cost_nanousd=0,
                 error_code="upstream_error"),
        _attempt(1, status=429, prompt_tokens=0, completion_tokens=0, cost_nanousd=0,
                 error_code="rate_limited"),
        _attempt(2, model="claude", deployment="claude-main", provider="anthropic",
                 cached_tokens=8),
    ]  # fmt: skip
    observer.request_finished(_trace(attempts=attempts))
    [span] = _spans(observer, sender)
    assert [event.name for event in span.events] == [
        "llmplane.attempt",
        "llmplane.retry",
        "llmplane.fallback",
    ]
    first = attributes(span.events[0])
    assert first["http.response.status_code"] == 502
    assert first["error.type"] == "upstream_error"
    assert first["llmplane.deployment"] == "gpt-4o-east"
    assert first["llmplane.latency_ms"] == 41.5
    assert attributes(span.events[1])["error.type"] == "rate_limited"
    values = attributes(span)
    assert values["gen_ai.response.model"] == "claude"
    assert values["gen_ai.provider.name"] == "anthropic"
    assert values["llmplane.deployment"] == "claude-main"
    assert values["llmplane.attempts"] == 3
    assert values["gen_ai.usage.input_tokens"] == 12
    assert values["gen_ai.usage.cache_read.input_tokens"] == 8
    assert values["llmplane.cache_hit"] is True
    assert values["llmplane.cost_usd"] == 2.5e-06
    assert span.status.code == Status.STATUS_CODE_UNSET


def test_a_failed_request_has_error_status_and_type(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
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
    refused, unknown = _spans(observer, sender)
    assert refused.status.code == Status.STATUS_CODE_ERROR
    assert refused.status.message == "budget_exceeded"
    assert attributes(refused)["error.type"] == "rate_limit_error"
    assert attributes(refused)["llmplane.error.code"] == "budget_exceeded"
    assert "gen_ai.response.model" not in attributes(refused)
    assert unknown.name == "/v1/chat/completions"
    assert unknown.status.code == Status.STATUS_CODE_ERROR
    assert unknown.status.message == ""
    assert attributes(unknown)["error.type"] == "authentication_error"
    assert "llmplane.key.id" not in attributes(unknown)


def test_a_slow_collector_drops_spans_instead_of_slowing_requests() -> None:
    sender = Sender(delay_s=0.2)
    observer = SpanObserver(sender, max_queue_size=16, schedule_delay_ms=10)
    started = time.perf_counter()
    for _ in range(1_000):
        observer.request_finished(_trace())
    assert time.perf_counter() - started < 0.5
    assert 16 <= len(_spans(observer, sender)) < 100
    assert observer.dropped >= 900
    assert sender.closed


def test_large_backlogs_go_out_in_bounded_batches() -> None:
    sender = Sender()
    observer = SpanObserver(sender, max_export_batch_size=100, schedule_delay_ms=60_000)
    for n in range(250):
        observer.request_finished(_trace(request_id=f"req-{n}"))
    spans = _spans(observer, sender)  # the thread has slept all along: close sends them
    assert [len(spans_of([body])) for body in sender.bodies] == [100, 100, 50]
    assert [attributes(span)["llmplane.request_id"] for span in spans] == [
        f"req-{n}" for n in range(250)
    ]


class FailingSender(Sender):
    """A collector that refuses the first body and breaks on the second."""

    def send(self, payload: bytes, spans: int) -> bool:
        calls = len(self.threads) + len(self.bodies)
        self.threads.add(f"call-{calls}")
        if calls == 0:
            return False
        if calls == 1:
            raise ConnectionError("collector gone")
        self.keep(payload)
        return True


def test_a_failing_collector_costs_its_spans_not_the_thread() -> None:
    sender = FailingSender()
    observer = SpanObserver(sender, max_export_batch_size=1, schedule_delay_ms=60_000)
    for n in range(3):
        observer.request_finished(_trace(request_id=f"req-{n}"))
    [span] = _spans(observer, sender)
    assert attributes(span)["llmplane.request_id"] == "req-2"
    assert observer.failed == 2


class HangingSender(Sender):
    """A collector that never answers until the sender is shut down."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def send(self, payload: bytes, spans: int) -> bool:
        self.keep(payload)
        return self.released.wait(10)

    def shutdown(self) -> None:
        super().shutdown()
        self.released.set()


def test_closing_gives_up_on_a_collector_that_hangs(caplog: pytest.LogCaptureFixture) -> None:
    sender = HangingSender()
    observer = SpanObserver(sender, max_export_batch_size=1, schedule_delay_ms=60_000)
    for _ in range(3):
        observer.request_finished(_trace())
    started = time.perf_counter()
    observer.close(timeout_s=0.2)
    assert time.perf_counter() - started < 2
    assert sender.closed
    assert "2 requests still queued are not traced" in caplog.text
    observer._thread.join(2)
    assert len(sender.bodies) == 1  # nothing was sent once the sender was shut down


def test_health_probes_are_not_traced(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
    observer.request_finished(_trace(method="GET", path="/health/ready", operation=None))
    assert _spans(observer, sender) == []
    assert sender.bodies == []  # nothing to send: no empty request either


def test_traces_url_appends_the_signal_path_once() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://phoenix:6006/v1/traces/") == "http://phoenix:6006/v1/traces"
    assert (
        traces_url("https://cloud.langfuse.com/api/public/otel")
        == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    )


def test_the_protocol_comes_from_llmplane_or_the_standard_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("LLMPLANE_OTEL_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().otel_protocol == "http/protobuf"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    assert Settings().otel_protocol == "grpc"
    monkeypatch.setenv("LLMPLANE_OTEL_PROTOCOL", "http/protobuf")
    assert Settings().otel_protocol == "http/protobuf"
    monkeypatch.setenv("LLMPLANE_OTEL_PROTOCOL", "http/json")  # not supported: refused at start
    with pytest.raises(ValidationError, match="LLMPLANE_OTEL_PROTOCOL"):
        Settings()


def test_a_registered_prompt_is_named_on_the_span(
    exported: tuple[SpanObserver, Sender],
) -> None:
    observer, sender = exported
    observer.request_finished(_trace(prompt="support-reply@3"))
    observer.request_finished(_trace(prompt="support-reply@4"))
    observer.request_finished(_trace())
    spans = _spans(observer, sender)
    named = [
        (
            attributes(span).get("llmplane.prompt.name"),
            attributes(span).get("llmplane.prompt.version"),
        )
        for span in spans
    ]
    # Spans of the same shape are cached: each version still gets its own attributes.
    assert named == [("support-reply", 3), ("support-reply", 4), (None, None)]
