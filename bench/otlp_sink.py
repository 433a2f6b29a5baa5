"""A local OTLP/HTTP traces receiver that counts what it gets and keeps nothing.

Usage: .venv/bin/python bench/otlp_sink.py [--port 4318]

``POST /v1/traces`` takes an ``ExportTraceServiceRequest`` (protobuf, gzip or not) and
answers an empty ``ExportTraceServiceResponse``; ``GET /health`` answers 200 and
``GET /stats`` ``{"requests": N, "spans": N, "bytes": N}``. The gateway bench starts it
on the load generator's core for the **llmplane+tracing** target, so that the spans
travel over a real socket to a real receiver (bench/README.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_REPLY = ExportTraceServiceResponse().SerializeToString()


class Sink(ThreadingHTTPServer):
    """The receiver and its counters."""

    daemon_threads = True
    requests = spans = received_bytes = 0


class Handler(BaseHTTPRequestHandler):
    server: Sink
    protocol_version = "HTTP/1.1"  # keep-alive, as a collector offers

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces":
            self._answer(404, b"", "text/plain")
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        self.server.requests += 1
        self.server.received_bytes += len(body)
        for resource in request.resource_spans:
            self.server.spans += sum(len(scope.spans) for scope in resource.scope_spans)
        self._answer(200, _REPLY, "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path == "/stats":
            stats = {
                "requests": self.server.requests,
                "spans": self.server.spans,
                "bytes": self.server.received_bytes,
            }
            self._answer(200, json.dumps(stats).encode(), "application/json")
        else:
            self._answer(200 if self.path == "/health" else 404, b"", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    with Sink((args.host, args.port), Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
