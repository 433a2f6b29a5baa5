"""OpenTelemetry spans for gateway requests, exported over OTLP in batches, off the loop.

One span per request, made from its :class:`RequestTrace` once the request has finished:
explicit start and end times, the caller's W3C ``traceparent`` as parent (so the gateway
span joins the caller's trace; a caller that does not sample its trace gets no span),
``gen_ai.*`` attributes for the model call, ``llmplane.*`` attributes for who called and
what it cost, and one event per upstream attempt (the retries and fallbacks). See
:mod:`span_encoding` for the span itself.

On the event loop a finished request costs one append to a bounded deque (when the deque
is full the request is dropped from tracing and counted, never slowed). One background
thread wakes every ``schedule_delay_ms``, encodes what has gathered straight to OTLP
protobuf and sends it in batches of ``max_export_batch_size`` spans, through the
OpenTelemetry exporter of the chosen protocol: OTLP/HTTP (``http/protobuf``, the default)
or OTLP/gRPC (``grpc``, the ``opentelemetry-exporter-otlp-proto-grpc`` package, imported
only then). The exporters bring the standard ``OTEL_EXPORTER_OTLP_*`` settings (headers,
timeout, compression, certificates) and their retries. :meth:`SpanObserver.close` sends
what is queued and stops the thread.

Prompt and completion content goes into a span only where the team's request-log policy
lets bodies out (``full``, or ``redacted`` through the PII redactor: the same filtered
bodies the stored request logs keep, computed once, in this thread or theirs), as the
GenAI attributes ``gen_ai.system_instructions``, ``gen_ai.input.messages`` and
``gen_ai.output.messages`` (JSON, each cut to ``CONTENT_CHARS`` characters of text).

This module imports OpenTelemetry: import it only when tracing is configured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Literal, Protocol

import orjson
from opentelemetry.sdk.resources import Resource

from llmplane.errors import ConfigError
from llmplane.telemetry import RequestTrace
from llmplane.telemetry.bodies import Bodies, BodyFilter
from llmplane.telemetry.content import bounded
from llmplane.telemetry.span_encoding import SpanEncoder

log = logging.getLogger("llmplane.telemetry.tracing")

OTLPProtocol = Literal["http/protobuf", "grpc"]
_TRACES_PATH = "/v1/traces"
# Spans encoded between two yields of the GIL, so that a large batch does not hold the
# event loop's thread up for more than a fraction of a millisecond at a time.
_ENCODE_SLICE = 32


# Text kept per content attribute: collectors refuse or cut very large attributes.
CONTENT_CHARS = 16_384


def _json(value: Any) -> str:
    return orjson.dumps(bounded(value, CONTENT_CHARS)[0]).decode()


def content_attributes(operation: str | None, bodies: Bodies) -> list[tuple[str, str]]:
    """The GenAI content attributes of a request's (filtered) bodies: its system
    instructions, input messages and output messages, as the operation shapes them."""
    request, response = bodies.request, bodies.response
    if not isinstance(request, dict):
        return []
    attributes: list[tuple[str, str]] = []
    system = request.get("instructions") if operation == "responses" else request.get("system")
    if system:
        attributes.append(("gen_ai.system_instructions", _json(system)))
    inputs = request.get("input") if operation in ("responses", "embeddings") else None
    inputs = inputs if inputs is not None else request.get("messages")
    if inputs is not None:
        attributes.append(("gen_ai.input.messages", _json(inputs)))
    output: Any = None
    if isinstance(response, dict):
        if operation == "chat.completions":
            choices = response.get("choices")
            if isinstance(choices, list):
                output = [c.get("message") for c in choices if isinstance(c, dict)]
        elif operation == "responses":
            output = response.get("output")
        elif operation == "messages":
            output = [{"role": "assistant", "content": response.get("content")}]
    elif isinstance(response, str):
        output = response
    if output is not None:
        attributes.append(("gen_ai.output.messages", _json(output)))
    return attributes


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of ``endpoint``: a base URL gets ``/v1/traces`` appended
    (as ``OTEL_EXPORTER_OTLP_ENDPOINT`` does); a URL already ending in it is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(_TRACES_PATH) else endpoint + _TRACES_PATH


class SpanSender(Protocol):
    """Sends encoded ``ExportTraceServiceRequest`` bodies to a collector (blocking)."""

    def send(self, payload: bytes, spans: int) -> bool:
        """Send one request body holding ``spans`` spans; whether the collector took it."""
        ...

    def shutdown(self) -> None:
        """Close the connection; nothing is sent afterwards."""
        ...


def otlp_sender(endpoint: str, protocol: OTLPProtocol = "http/protobuf") -> SpanSender:
    """The sender of ``protocol`` to the collector at ``endpoint``: for ``http/protobuf``
    its base URL or full ``/v1/traces`` URL, for ``grpc`` its ``http(s)://host:port``."""
    if protocol == "grpc":
        try:
            from llmplane.telemetry.otlp_grpc import GrpcSpanSender
        except ImportError as exc:
            raise ConfigError(
                f"OTLP over gRPC needs {exc.name or 'grpcio'}: pip install 'llmplane[otel]'",
                key_path="LLMPLANE_OTEL_PROTOCOL",
            ) from exc
        return GrpcSpanSender(endpoint)
    from llmplane.telemetry.otlp_http import HttpSpanSender

    return HttpSpanSender(traces_url(endpoint))


class SpanObserver:
    """Turns each finished request into one OpenTelemetry span, exported in batches by a
    background thread."""

    def __init__(
        self,
        sender: SpanSender,
        service_name: str = "llmplane",
        max_queue_size: int = 8192,
        max_export_batch_size: int = 512,
        schedule_delay_ms: float = 1000,
        bodies: BodyFilter | None = None,
    ) -> None:
        # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and the telemetry.sdk.* attributes.
        resource = Resource.create({"service.name": service_name})
        self._encoder = SpanEncoder(dict(resource.attributes))
        self._sender = sender
        self._bodies = bodies  # None: no content in spans
        self._limit = max_queue_size
        self._batch_size = max(1, min(max_export_batch_size, max_queue_size))
        self._delay_s = schedule_delay_ms / 1000
        self._pending: deque[RequestTrace] = deque()
        self._stopped = threading.Event()
        self._sender_closed = False
        self.dropped = 0  # requests not traced because the queue was full
        self._dropped_reported = 0
        self.failed = 0  # spans the collector did not take
        self._thread = threading.Thread(target=self._run, name="llmplane-spans", daemon=True)
        self._thread.start()

    @classmethod
    def otlp(
        cls,
        endpoint: str,
        protocol: OTLPProtocol = "http/protobuf",
        service_name: str = "llmplane",
        max_queue_size: int = 8192,
        bodies: BodyFilter | None = None,
    ) -> SpanObserver:
        """An observer exporting to the OTLP collector at ``endpoint`` over ``protocol``;
        with ``bodies``, spans carry content where the team's policy allows it."""
        return cls(otlp_sender(endpoint, protocol), service_name, max_queue_size, bodies=bodies)

    @property
    def depth(self) -> int:
        """Requests waiting for their span."""
        return len(self._pending)

    def request_finished(self, trace: RequestTrace) -> None:
        """Queue ``trace`` for its span; encoding and export happen in the thread."""
        if len(self._pending) >= self._limit:
            self.dropped += 1
        elif not trace.is_probe:
            self._pending.append(trace)

    def _run(self) -> None:
        while not self._stopped.wait(self._delay_s):
            self._export_pending()
        self._export_pending()

    def _export_pending(self) -> None:
        pending = self._pending
        while pending and not self._sender_closed:
            spans: list[bytes] = []
            while pending and len(spans) < self._batch_size:
                trace = pending.popleft()
                try:
                    span = self._encoder.span(trace, self._content)
                except Exception:  # one odd trace must not stop tracing
                    log.exception("could not encode the span of request %s", trace.request_id)
                    continue
                if span is not None:
                    spans.append(span)
                    if len(spans) % _ENCODE_SLICE == 0:
                        time.sleep(0)  # let the event loop's thread have the GIL
            if spans:
                self._send(spans)
        if self.dropped != self._dropped_reported:
            log.warning(
                "%d requests were not traced: the span queue (%d) was full",
                self.dropped - self._dropped_reported,
                self._limit,
            )
            self._dropped_reported = self.dropped

    def _content(self, trace: RequestTrace) -> list[tuple[str, str]]:
        if self._bodies is None:
            return []
        try:
            bodies = self._bodies.bodies(trace)
        except Exception:  # the redactor failed: the span goes without content
            log.exception("no content in the span of request %s", trace.request_id)
            return []
        return content_attributes(trace.operation, bodies) if bodies is not None else []

    def _send(self, spans: list[bytes]) -> None:
        try:
            sent = self._sender.send(self._encoder.request(spans), len(spans))
        except Exception:  # a broken collector must not stop the thread
            log.exception("could not export %d spans", len(spans))
            sent = False
        if not sent:
            self.failed += len(spans)

    def close(self, timeout_s: float = 30.0) -> None:
        """Export what is queued, then stop the thread and the sender (blocks: call it off
        the loop). A collector that has not taken everything within ``timeout_s`` loses the
        rest: stopping the sender aborts its retries. Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning(
                "the collector did not take the last spans within %.0f s; %d requests "
                "still queued are not traced",
                timeout_s,
                len(self._pending),
            )
        self._sender_closed = True  # the thread, if still sending, sends nothing more
        self._sender.shutdown()
