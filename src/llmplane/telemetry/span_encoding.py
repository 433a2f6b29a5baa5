"""Finished requests as OTLP spans, encoded straight to protobuf bytes.

:class:`SpanEncoder` turns a :class:`RequestTrace` into one OTLP ``Span`` (after the GenAI
semantic conventions: ``gen_ai.*`` attributes for the model call, ``llmplane.*`` for who
called and what it cost, one event per upstream attempt) and a batch of them into an
``ExportTraceServiceRequest``, the body that OTLP/HTTP posts and OTLP/gRPC sends.

Why by hand: building the same span through the OpenTelemetry SDK (span, attribute
checks, ``ReadableSpan``) and its OTLP encoder (a protobuf message per attribute) cost
~160 µs of CPU per request here, some 40 % of a gateway request; in the gateway's process
that is CPU taken from requests whichever thread spends it. The protobuf wire format of these
few messages is small and fixed (field numbers from ``opentelemetry-proto``, whose parser
reads every byte of it in the tests), and the parts that repeat request after request
(attribute keys, model and team names, status codes) are encoded once and reused, so a
span costs a few microseconds. Spans carry ids and numbers, never a key or a provider
secret; prompt and completion content only as the ``extra`` attributes the caller adds
(where the team's policy allows: :mod:`llmplane.telemetry.tracing`).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Mapping, Sequence
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
_FLAGS_ROOT = _SPAN_FLAGS + struct.pack("<I", 0x101)
_FLAGS_REMOTE_PARENT = _SPAN_FLAGS + struct.pack("<I", 0x301)
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


class _Cache(dict[object, bytes]):
    """Encoded parts by what they encode, cleared when it grows past its limit (so that it
    stays bounded whatever the traffic)."""

    def put(self, key: object, value: bytes) -> bytes:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[key] = value
        return value


def _double_prefix(tag: bytes, key: str) -> bytes:
    """Everything of a ``KeyValue`` field holding a double but its 8 bytes (a double's
    ``AnyValue`` is always 9 bytes long, so the lengths are known in advance)."""
    body = _field(_KEY, key.encode()) + _VALUE + b"\x09" + _DOUBLE
    return tag + _varint(len(body) + 8) + body


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
        or (len(traceparent) > 55 and traceparent[55] != "-")
        or version == "ff"
        or not _HEX.issuperset(version + trace_id + span_id + flags)
        or trace_id == _ZERO_TRACE_ID
        or span_id == _ZERO_SPAN_ID
    ):
        return None
    return bytes.fromhex(trace_id), bytes.fromhex(span_id), bool(int(flags, 16) & 1)


class SpanEncoder:
    """Encodes finished requests as OTLP spans of one service, and batches of them as
    ``ExportTraceServiceRequest`` bodies. Not thread-safe: one exporting thread uses it.

    What repeats request after request is encoded once and reused: a span's name, kind,
    status and every attribute that is not a count or a number of its own (method, path,
    status code, model, caller's ids, deployment), keyed by those values; an attempt's
    event but for its time and latency; token counts. Only ids, times, cost and latencies
    are encoded for each request."""

    def __init__(
        self, resource: Mapping[str, object], scope_name: str = "llmplane.gateway"
    ) -> None:
        resource_bytes = b"".join(
            _attribute(_RESOURCE_ATTRIBUTE, key, value) for key, value in resource.items()
        )
        self._resource = _field(_RESOURCE_SPANS_RESOURCE, resource_bytes)
        self._scope = _field(_SCOPE_SPANS_SCOPE, _field(_SCOPE_NAME, scope_name.encode()))
        self._shapes = _Cache()  # a span's name, kind, status and steady attributes
        self._events = _Cache()  # an attempt's event name and steady attributes
        self._counts = _Cache()  # token counts and flags: (key, value) -> field
        # Span ids need to be unique, not secret (the SDK draws them the same way).
        self._random = random.Random()  # noqa: S311

    def request(self, spans: Sequence[bytes]) -> bytes:
        """The ``ExportTraceServiceRequest`` carrying ``spans`` (each from :meth:`span`),
        joined in one copy (a batch is hundreds of kilobytes)."""
        scope_spans_size = len(self._scope) + sum(map(len, spans))
        scope_spans_head = _RESOURCE_SPANS_SCOPE_SPANS + _varint(scope_spans_size)
        resource_spans_size = len(self._resource) + len(scope_spans_head) + scope_spans_size
        return b"".join(
            [
                _REQUEST_RESOURCE_SPANS + _varint(resource_spans_size),
                self._resource,
                scope_spans_head,
                self._scope,
                *spans,
            ]
        )

    def span(
        self,
        trace: RequestTrace,
        extra: Callable[[RequestTrace], Sequence[tuple[str, str]]] | None = None,
    ) -> bytes | None:
        """``trace`` as a ``ScopeSpans.spans`` field, or ``None`` when the caller's trace
        context says it is not sampled (then its trace is not recorded, as the SDK's
        parent-based sampler does). The caller's ``traceparent`` is the parent; ``extra``
        gives string attributes of this span alone (not cached), asked only for a span
        that is recorded."""
        parent = parse_traceparent(trace.traceparent) if trace.traceparent else None
        span_id = (self._random.getrandbits(64) or 1).to_bytes(8, "big")
        if parent is None:
            trace_id = self._random.getrandbits(128).to_bytes(16, "big")
            ids = _TRACE_ID_16 + trace_id + _SPAN_ID_8 + span_id + _FLAGS_ROOT
        else:
            trace_id, parent_id, sampled = parent
            if not sampled:
                return None
            ids = (
                _TRACE_ID_16 + trace_id + _SPAN_ID_8 + span_id + _PARENT_ID_8 + parent_id
            ) + _FLAGS_REMOTE_PARENT
        start_ns = int(trace.started_at * _NS)
        attempts = trace.attempts
        parts = [
            ids,
            _SPAN_START + _U64(start_ns),
            _SPAN_END + _U64(start_ns + int(trace.duration_s * _NS)),
            self._shape(trace),
            _request_id(trace.request_id),
        ]
        if extra is not None:
            parts.extend(_attribute(_SPAN_ATTRIBUTE, key, value) for key, value in extra(trace))
        if attempts:
            self._usage(parts, attempts)
            self._attempt_events(parts, attempts)
        if trace.guardrails:
            parts += _guardrail_attributes(trace)
        return _field(_SCOPE_SPANS_SPAN, b"".join(parts))

    def _shape(self, trace: RequestTrace) -> bytes:
        """What a span shares with every span of the same request shape, encoded once."""
        principal = trace.principal
        served = trace.attempts[-1] if trace.attempts else None
        key = (
            trace.method,
            trace.path,
            trace.status,
            trace.stream,
            len(trace.attempts),
            trace.operation,
            trace.model,
            trace.error_type,
            trace.error_code,
            principal.key_id if principal else None,
            principal.team_id if principal else None,
            principal.service_id if principal else None,
            served.provider if served else None,
            served.model if served else None,
            served.deployment if served else None,
            trace.prompt,
        )
        shape = self._shapes.get(key)
        return shape if shape is not None else self._shapes.put(key, _encode_shape(trace))

    def _count(self, key: str, value: int) -> bytes:
        field = self._counts.get((key, value))
        if field is None:
            field = self._counts.put((key, value), _attribute(_SPAN_ATTRIBUTE, key, value))
        return field

    def _usage(self, parts: list[bytes], attempts: Sequence[UsageRecord]) -> None:
        """Usage and cost, added up over every attempt, as the ledger does."""
        prompt = completion = cached = cost = 0
        for record in attempts:
            prompt += record.prompt_tokens
            completion += record.completion_tokens
            cached += record.cached_tokens
            cost += record.cost_nanousd
        parts += (
            self._count("gen_ai.usage.input_tokens", prompt),
            self._count("gen_ai.usage.output_tokens", completion),
            self._count("gen_ai.usage.cache_read.input_tokens", cached),
            _CACHE_HIT if cached > 0 else _NO_CACHE_HIT,
            _COST_USD + _F64(cost / _NS),
        )
        ttft_ms = attempts[-1].ttft_ms
        if ttft_ms is not None:
            parts.append(_TTFT_MS + _F64(ttft_ms))

    def _attempt_events(self, parts: list[bytes], attempts: Sequence[UsageRecord]) -> None:
        """One event per upstream attempt: the first is ``attempt``, a later one on the same
        model ``retry``, one on another model ``fallback``."""
        first_model = attempts[0].model
        for record in attempts:
            kind = (
                "attempt"
                if record.attempt == 0
                else ("retry" if record.model == first_model else "fallback")
            )
            key = (
                kind,
                record.attempt,
                record.deployment,
                record.model,
                record.provider,
                record.status,
                record.error_code,
            )
            steady = self._events.get(key)
            if steady is None:
                steady = self._events.put(key, _encode_event(kind, record))
            event = (
                _EVENT_TIME
                + _U64(int(record.created_at.timestamp() * _NS))
                + steady
                + _LATENCY_MS
                + _F64(record.latency_ms)
            )
            parts.append(_SPAN_EVENT + _varint(len(event)) + event)


_MAX_GUARDRAIL_ITEMS = 32


def _guardrail_attributes(trace: RequestTrace) -> list[bytes]:
    """The request's guardrail verdicts: its policy, the rule that blocked (if one did),
    each rule's outcome (``input[0]=blocklist:flagged``) and what was flagged
    (``input[0]:EMAIL_ADDRESS``); types and rules, never matched text; at most 32 of each."""
    checks = trace.guardrails or ()
    outcomes = [f"{c.rule}={c.detector}:{c.outcome}" for c in checks][:_MAX_GUARDRAIL_ITEMS]
    flags = [f"{c.rule}:{t}" for c in checks for t in c.types][:_MAX_GUARDRAIL_ITEMS]
    attributes: dict[str, object] = {
        "llmplane.guardrail.policy": trace.guardrail_policy or "",
        "llmplane.guardrail.outcomes": outcomes,
    }
    blocked = next((c.rule for c in checks if c.action == "block"), None)
    if blocked is not None:
        attributes["llmplane.guardrail.blocked"] = blocked
    if flags:
        attributes["llmplane.guardrail.flags"] = flags
    return [_attribute(_SPAN_ATTRIBUTE, key, value) for key, value in attributes.items()]


def _request_id(request_id: str) -> bytes:
    """The ``llmplane.request_id`` attribute field (unique to each request)."""
    encoded = request_id.encode()
    any_value = _STRING + _varint(len(encoded)) + encoded
    body = _REQUEST_ID_KEY + _VALUE + _varint(len(any_value)) + any_value
    return _SPAN_ATTRIBUTE + _varint(len(body)) + body


def _encode_shape(trace: RequestTrace) -> bytes:
    """A span's name, kind, status and the attributes that its request shape fixes."""
    operation = _OPERATION_NAMES.get(trace.operation or "", trace.operation)
    name = f"{operation} {trace.model}" if operation and trace.model else trace.path
    parts = [_field(_SPAN_NAME, name.encode()), _SPAN_KIND_SERVER]
    attributes: dict[str, object] = {
        "http.request.method": trace.method,
        "url.path": trace.path,
        "http.response.status_code": trace.status,
        "llmplane.stream": trace.stream,
        "llmplane.attempts": len(trace.attempts),
    }
    if operation:
        attributes["gen_ai.operation.name"] = operation
    if trace.model:
        attributes["gen_ai.request.model"] = trace.model
    if trace.error_code:
        attributes["llmplane.error.code"] = trace.error_code
    if trace.prompt:
        name, _, version = trace.prompt.rpartition("@")
        attributes["llmplane.prompt.name"] = name
        attributes["llmplane.prompt.version"] = int(version)
    principal = trace.principal
    if principal is not None:
        # Ids name the caller for filtering; the key itself never leaves the key service.
        attributes["llmplane.key.id"] = principal.key_id
        if principal.team_id:
            attributes["llmplane.team.id"] = principal.team_id
        if principal.service_id:
            attributes["llmplane.service.id"] = principal.service_id
    if trace.attempts:
        served = trace.attempts[-1]
        provider = _PROVIDER_NAMES.get(served.provider, served.provider)
        attributes["gen_ai.provider.name"] = provider
        attributes["gen_ai.system"] = provider  # the older name, still read by many backends
        attributes["gen_ai.response.model"] = served.model
        attributes["llmplane.deployment"] = served.deployment
    failed = trace.error_type or trace.error_code or trace.status >= 400
    if failed:
        attributes["error.type"] = trace.error_type or trace.error_code or "error"
    parts += (_attribute(_SPAN_ATTRIBUTE, key, value) for key, value in attributes.items())
    if failed:
        status = _STATUS_ERROR
        if trace.error_code:
            status = _field(_STATUS_MESSAGE, trace.error_code.encode()) + status
        parts.append(_field(_SPAN_STATUS, status))
    return b"".join(parts)


def _encode_event(kind: str, record: UsageRecord) -> bytes:
    """An attempt's event name and the attributes that do not change from call to call."""
    attributes: dict[str, object] = {
        "llmplane.attempt": record.attempt,
        "llmplane.deployment": record.deployment,
        "gen_ai.response.model": record.model,
        "gen_ai.provider.name": _PROVIDER_NAMES.get(record.provider, record.provider),
        "http.response.status_code": record.status,
    }
    if record.error_code:
        attributes["error.type"] = record.error_code
    return _field(_EVENT_NAME, f"llmplane.{kind}".encode()) + b"".join(
        _attribute(_EVENT_ATTRIBUTE, key, value) for key, value in attributes.items()
    )


_TRACE_ID_16 = _SPAN_TRACE_ID + b"\x10"
_SPAN_ID_8 = _SPAN_SPAN_ID + b"\x08"
_PARENT_ID_8 = _SPAN_PARENT_ID + b"\x08"
_REQUEST_ID_KEY = _field(_KEY, b"llmplane.request_id")
_COST_USD = _double_prefix(_SPAN_ATTRIBUTE, "llmplane.cost_usd")
_TTFT_MS = _double_prefix(_SPAN_ATTRIBUTE, "llmplane.ttft_ms")
_LATENCY_MS = _double_prefix(_EVENT_ATTRIBUTE, "llmplane.latency_ms")
_CACHE_HIT = _attribute(_SPAN_ATTRIBUTE, "llmplane.cache_hit", True)
_NO_CACHE_HIT = _attribute(_SPAN_ATTRIBUTE, "llmplane.cache_hit", False)
