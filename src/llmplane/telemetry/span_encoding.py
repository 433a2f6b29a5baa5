"""Finished requests as OTLP spans, encoded straight to protobuf bytes.

:class:`SpanEncoder` turns a :class:`RequestTrace` into one OTLP ``Span`` (after the GenAI
semantic conventions: ``gen_ai.*`` attributes for the model call, ``llmplane.*`` for who
called and what it cost, one event per upstream attempt) and a batch of them into an
``ExportTraceServiceRequest``, the body that OTLP/HTTP posts and OTLP/gRPC sends.

Why by hand: building the same span through the OpenTelemetry SDK (span, attribute
checks, ``ReadableSpan``) and its OTLP encoder (a protobuf message per attribute) cost
~180 µs of CPU per request here, half a gateway request; in the gateway's process that
is CPU taken from requests whichever thread spends it. The protobuf wire format of these
few messages is small and fixed (field numbers from ``opentelemetry-proto``, whose parser
reads every byte of it in the tests), and the parts that repeat request after request
(attribute keys, model and team names, status codes) are encoded once and reused, so a
span costs a few microseconds. Spans carry ids and numbers only: never a key, a provider
secret or prompt and completion content.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmplane.accounting.ledger import UsageRecord
    from llmplane.telemetry import RequestTrace

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
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

# Protobuf tags (field number << 3 | wire type) of the OTLP messages written here.
_SPAN_TRACE_ID, _SPAN_SPAN_ID, _SPAN_PARENT_ID, _SPAN_NAME = b"\x0a", b"\x12", b"\x22", b"\x2a"
_SPAN_KIND_SERVER = b"\x30\x02"
_SPAN_START, _SPAN_END = b"\x39", b"\x41"  # fixed64
_SPAN_ATTRIBUTE, _SPAN_EVENT, _SPAN_STATUS = b"\x4a", b"\x5a", b"\x7a"
_SPAN_FLAGS = b"\x85\x01"  # field 16, fixed32
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE = b"\x09", b"\x12", b"\x1a"
_STATUS_MESSAGE, _STATUS_ERROR = b"\x12", b"\x18\x02"
_KEY, _VALUE = b"\x0a", b"\x12"
_STRING, _BOOL_TRUE, _BOOL_FALSE, _INT, _DOUBLE, _ARRAY = (
    b"\x0a",
    b"\x10\x01",
    b"\x10\x00",
    b"\x18",
    b"\x21",
    b"\x2a",
)
_REQUEST_RESOURCE_SPANS, _RESOURCE_SPANS_RESOURCE, _RESOURCE_SPANS_SCOPE_SPANS = (
    b"\x0a",
    b"\x0a",
    b"\x12",
)
_RESOURCE_ATTRIBUTE, _SCOPE_SPANS_SCOPE, _SCOPE_SPANS_SPAN, _SCOPE_NAME = (
    b"\x0a",
    b"\x0a",
    b"\x12",
    b"\x0a",
)
# Trace flags "sampled", and "whether the parent is remote" known (and, with a parent, true).
_FLAGS_ROOT = struct.pack("<I", 0x101)
_FLAGS_REMOTE_PARENT = struct.pack("<I", 0x301)
_U64 = struct.Struct("<Q").pack
_F64 = struct.Struct("<d").pack
_SMALL = [bytes((n,)) for n in range(0x80)]
_CACHE_LIMIT = 8192


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length and the payload."""
    size = len(payload)
    return tag + (_SMALL[size] if size < 0x80 else _varint(size)) + payload


def _any_value(value: object) -> bytes:
    """An ``AnyValue`` message of a string, bool, int, float or a sequence of them (other
    values as their text)."""
    if isinstance(value, str):
        return _field(_STRING, value.encode())
    if isinstance(value, bool):
        return _BOOL_TRUE if value else _BOOL_FALSE
    if isinstance(value, int):
        return _INT + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return _DOUBLE + _F64(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return _field(_ARRAY, b"".join(_field(b"\x0a", _any_value(item)) for item in value))
    return _field(_STRING, str(value).encode())


def _attribute(tag: bytes, key: str, value: object) -> bytes:
    """One ``KeyValue`` as the field ``tag`` of the message that holds it."""
    return _field(tag, _field(_KEY, key.encode()) + _field(_VALUE, _any_value(value)))


class _Attributes:
    """Encoded attribute fields of one message kind (span or event), reused: most values
    (model, team and deployment names, status codes, token counts) repeat request after
    request. The cache is cleared when it grows past its limit, so it stays bounded."""

    def __init__(self, tag: bytes) -> None:
        self._tag = tag
        # Keyed by (key, value): a key always carries one type here, so True never meets 1.
        self._cache: dict[tuple[str, str | int], bytes] = {}

    def __call__(self, key: str, value: str | int) -> bytes:
        """The field of ``key`` = ``value`` (a string, bool or int that may repeat)."""
        try:
            return self._cache[key, value]
        except KeyError:
            pass
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        encoded = self._cache[key, value] = _attribute(self._tag, key, value)
        return encoded

    def unique(self, key: str, value: float | str) -> bytes:
        """The field of a value that does not repeat (a request id, a cost, a latency)."""
        return _attribute(self._tag, key, value)


def parse_traceparent(traceparent: str) -> tuple[bytes, bytes, bool] | None:
    """The trace id, parent span id and sampled flag of a W3C ``traceparent``
    (``00-<32 hex>-<16 hex>-<2 hex>``), or ``None`` when it is malformed or invalid
    (callers send what they like; such a request starts a trace of its own)."""
    if len(traceparent) < 55 or traceparent[2] != "-" or traceparent[35] != "-":
        return None
    version, trace_id, span_id, flags = (
        traceparent[:2],
        traceparent[3:35],
        traceparent[36:52],
        traceparent[53:55],
    )
    if (
        traceparent[52] != "-"
        or (version == "00" and len(traceparent) != 55)
        or version == "ff"
        or not _HEX.issuperset(version + trace_id + span_id + flags)
        or trace_id == _ZERO_TRACE_ID
        or span_id == _ZERO_SPAN_ID
    ):
        return None
    return bytes.fromhex(trace_id), bytes.fromhex(span_id), bool(int(flags, 16) & 1)


class SpanEncoder:
    """Encodes finished requests as OTLP spans of one service, and batches of them as
    ``ExportTraceServiceRequest`` bodies. Not thread-safe: one exporting thread uses it."""

    def __init__(
        self, resource: Mapping[str, object], scope_name: str = "llmplane.gateway"
    ) -> None:
        resource_bytes = b"".join(
            _attribute(_RESOURCE_ATTRIBUTE, key, value) for key, value in resource.items()
        )
        self._resource = _field(_RESOURCE_SPANS_RESOURCE, resource_bytes)
        self._scope = _field(_SCOPE_SPANS_SCOPE, _field(_SCOPE_NAME, scope_name.encode()))
        self._span_attribute = _Attributes(_SPAN_ATTRIBUTE)
        self._event_attribute = _Attributes(_EVENT_ATTRIBUTE)
        self._names: dict[str, bytes] = {}
        # Span ids need to be unique, not secret (the SDK draws them the same way).
        self._random = random.Random()  # noqa: S311

    def request(self, spans: Iterable[bytes]) -> bytes:
        """The ``ExportTraceServiceRequest`` carrying ``spans`` (each from :meth:`span`)."""
        scope_spans = _field(_RESOURCE_SPANS_SCOPE_SPANS, self._scope + b"".join(spans))
        return _field(_REQUEST_RESOURCE_SPANS, self._resource + scope_spans)

    def span(self, trace: RequestTrace) -> bytes | None:
        """``trace`` as a ``ScopeSpans.spans`` field, or ``None`` when the caller's trace
        context says it is not sampled (then its trace is not recorded, as the SDK's
        parent-based sampler does). The caller's ``traceparent`` is the parent."""
        parent = parse_traceparent(trace.traceparent) if trace.traceparent else None
        if parent is None:
            trace_id = self._random.getrandbits(128).to_bytes(16, "big")
            head = [_field(_SPAN_TRACE_ID, trace_id)]
            flags = _FLAGS_ROOT
        else:
            trace_id, parent_id, sampled = parent
            if not sampled:
                return None
            head = [_field(_SPAN_TRACE_ID, trace_id), _field(_SPAN_PARENT_ID, parent_id)]
            flags = _FLAGS_REMOTE_PARENT
        span_id = self._random.getrandbits(64) or 1
        operation = _OPERATION_NAMES.get(trace.operation or "", trace.operation)
        start_ns = int(trace.started_at * _NS)
        parts = [
            *head,
            _SPAN_SPAN_ID + b"\x08" + span_id.to_bytes(8, "big"),
            self._name(f"{operation} {trace.model}" if operation and trace.model else trace.path),
            _SPAN_KIND_SERVER,
            _SPAN_START + _U64(start_ns),
            _SPAN_END + _U64(start_ns + int(trace.duration_s * _NS)),
            _SPAN_FLAGS + flags,
        ]
        self._attributes(parts, trace, operation)
        if trace.attempts:
            self._attempt_events(parts, trace.attempts)
        if trace.error_type or trace.error_code or trace.status >= 400:
            parts.append(
                self._span_attribute("error.type", trace.error_type or trace.error_code or "error")
            )
            status = _STATUS_ERROR
            if trace.error_code:
                status = _field(_STATUS_MESSAGE, trace.error_code.encode()) + status
            parts.append(_field(_SPAN_STATUS, status))
        return _field(_SCOPE_SPANS_SPAN, b"".join(parts))

    def _name(self, name: str) -> bytes:
        encoded = self._names.get(name)
        if encoded is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            encoded = self._names[name] = _field(_SPAN_NAME, name.encode())
        return encoded

    def _attributes(self, parts: list[bytes], trace: RequestTrace, operation: str | None) -> None:
        attribute = self._span_attribute
        parts += (
            attribute("http.request.method", trace.method),
            attribute("url.path", trace.path),
            attribute("http.response.status_code", trace.status),
            attribute.unique("llmplane.request_id", trace.request_id),
            attribute("llmplane.stream", trace.stream),
            attribute("llmplane.attempts", len(trace.attempts)),
        )
        if operation:
            parts.append(attribute("gen_ai.operation.name", operation))
        if trace.model:
            parts.append(attribute("gen_ai.request.model", trace.model))
        if trace.error_code:
            parts.append(attribute("llmplane.error.code", trace.error_code))
        principal = trace.principal
        if principal is not None:
            # Ids name the caller for filtering; the key itself never leaves the key service.
            parts.append(attribute("llmplane.key.id", principal.key_id))
            if principal.team_id:
                parts.append(attribute("llmplane.team.id", principal.team_id))
            if principal.service_id:
                parts.append(attribute("llmplane.service.id", principal.service_id))
        attempts = trace.attempts
        if not attempts:
            return
        served = attempts[-1]
        provider = _PROVIDER_NAMES.get(served.provider, served.provider)
        # Usage and cost add up every attempt, as the ledger does.
        prompt = completion = cached = cost = 0
        for record in attempts:
            prompt += record.prompt_tokens
            completion += record.completion_tokens
            cached += record.cached_tokens
            cost += record.cost_nanousd
        parts += (
            attribute("gen_ai.provider.name", provider),
            attribute("gen_ai.system", provider),  # the older name, still read by many
            attribute("gen_ai.response.model", served.model),
            attribute("llmplane.deployment", served.deployment),
            attribute("gen_ai.usage.input_tokens", prompt),
            attribute("gen_ai.usage.output_tokens", completion),
            attribute("gen_ai.usage.cache_read.input_tokens", cached),
            attribute("llmplane.cache_hit", cached > 0),
            attribute.unique("llmplane.cost_usd", cost / _NS),
        )
        if served.ttft_ms is not None:
            parts.append(attribute.unique("llmplane.ttft_ms", served.ttft_ms))

    def _attempt_events(self, parts: list[bytes], attempts: Sequence[UsageRecord]) -> None:
        """One event per upstream attempt: the first is ``attempt``, a later one on the same
        model ``retry``, one on another model ``fallback``."""
        attribute = self._event_attribute
        first_model = attempts[0].model
        for record in attempts:
            kind = (
                "attempt"
                if record.attempt == 0
                else ("retry" if record.model == first_model else "fallback")
            )
            event = [
                _EVENT_TIME + _U64(int(record.created_at.timestamp() * _NS)),
                _EVENT_NAME_FIELDS[kind],
                attribute("llmplane.attempt", record.attempt),
                attribute("llmplane.deployment", record.deployment),
                attribute("gen_ai.response.model", record.model),
                attribute(
                    "gen_ai.provider.name", _PROVIDER_NAMES.get(record.provider, record.provider)
                ),
                attribute("http.response.status_code", record.status),
                attribute.unique("llmplane.latency_ms", record.latency_ms),
            ]
            if record.error_code:
                event.append(attribute("error.type", record.error_code))
            parts.append(_field(_SPAN_EVENT, b"".join(event)))


_EVENT_NAME_FIELDS = {
    kind: _field(_EVENT_NAME, f"llmplane.{kind}".encode())
    for kind in ("attempt", "retry", "fallback")
}
