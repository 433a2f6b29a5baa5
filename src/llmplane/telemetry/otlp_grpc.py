"""OTLP/gRPC for :mod:`tracing`: spans already encoded, sent by OpenTelemetry's exporter.

Needs ``opentelemetry-exporter-otlp-proto-grpc`` (and ``grpcio``), in the ``otel`` extra;
imported only when ``LLMPLANE_OTEL_PROTOCOL=grpc`` (or ``OTEL_EXPORTER_OTLP_PROTOCOL``).
The exporter brings the channel (TLS unless the endpoint is ``http://`` or
``OTEL_EXPORTER_OTLP_INSECURE``), ``OTEL_EXPORTER_OTLP_HEADERS`` as metadata, compression,
and retries with backoff; it translates SDK spans to the request message in
``_translate_data``, its hook for that, which here parses the body that
:mod:`span_encoding` wrote (in C: a few microseconds a batch).
"""

from __future__ import annotations

from typing import NamedTuple

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export import SpanExportResult


class _Encoded(NamedTuple):
    payload: bytes
    spans: int


class GrpcSpanSender(OTLPSpanExporter):
    """Sends encoded ``ExportTraceServiceRequest`` bodies to an OTLP/gRPC collector."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint=endpoint)

    def send(self, payload: bytes, spans: int) -> bool:
        """Send one request (retried on transient failures); whether the collector took it."""
        return self._export(_Encoded(payload, spans)) is SpanExportResult.SUCCESS  # type: ignore[arg-type]

    def _translate_data(self, data: _Encoded) -> ExportTraceServiceRequest:  # type: ignore[override]
        request = ExportTraceServiceRequest()
        request.ParseFromString(data.payload)
        return request

    def _count_data(self, data: _Encoded) -> int:  # type: ignore[override]
        return data.spans
