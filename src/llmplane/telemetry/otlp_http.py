"""OTLP/HTTP for :mod:`tracing`: spans already encoded, sent by OpenTelemetry's exporter.

The exporter brings what a collector connection needs (``OTEL_EXPORTER_OTLP_HEADERS``,
timeout, compression, certificates, retries of 429 and 5xx with backoff); its ``export``
takes SDK spans and encodes them itself, which is the cost :mod:`span_encoding` avoids,
so this subclass hands the exporter's HTTP client the body directly.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter


class HttpSpanSender(OTLPSpanExporter):
    """Posts encoded ``ExportTraceServiceRequest`` bodies to an OTLP/HTTP traces URL."""

    def __init__(self, url: str) -> None:
        super().__init__(endpoint=url)

    def send(self, payload: bytes, spans: int) -> bool:
        """Post one body (retried on transient failures); whether the collector took it."""
        return self._client.export(payload).success
