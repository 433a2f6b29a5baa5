"""OTLP trace receivers for the tracing tests: what a collector gets, decoded with
``opentelemetry-proto``'s own messages (so every byte the gateway encodes is read by the
reference parser)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests import canary


def spans_of(bodies: Iterable[bytes]) -> list[Span]:
    """Every span of these ``ExportTraceServiceRequest`` bodies, in order."""
    spans: list[Span] = []
    for body in bodies:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    return spans


def resource_attributes(bodies: Iterable[bytes]) -> list[dict[str, Any]]:
    """The resource attributes of every ``ResourceSpans`` of these bodies."""
    return [
        attributes(resource_spans.resource)
        for body in bodies
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans
    ]


def attributes(message: Any) -> dict[str, Any]:
    """The ``attributes`` of a span, event or resource as a dict of Python values."""
    values: dict[str, Any] = {}
    for attribute in message.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value") or "string_value")
    return values


class Collected:
    """The request bodies a receiver got, in order."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def keep(self, body: bytes) -> None:
        """Keep one export request, scanned for the test run's secrets."""
        canary.scan(body, "spans exported")
        self.bodies.append(body)

    def spans(self) -> list[Span]:
        return spans_of(self.bodies)

    def wait_for(self, count: int, timeout_s: float = 10) -> list[Span]:
        deadline = time.monotonic() + timeout_s
        while len(spans := self.spans()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return spans


class HttpReceiver(Collected):
    """A minimal OTLP/HTTP traces endpoint: keeps every POST body and its path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.paths.append(self.path)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.keep(body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class GrpcReceiver(Collected):
    """A minimal OTLP/gRPC collector: a grpcio server implementing ``TraceService`` that
    keeps every request (as its serialized body) and the metadata it came with."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        super().__init__()
        self.metadata: list[dict[str, str]] = []
        receiver = self

        class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(
                self, request: ExportTraceServiceRequest, context: Any
            ) -> ExportTraceServiceResponse:
                receiver.metadata.append(dict(context.invocation_metadata()))
                receiver.keep(request.SerializeToString())
                return ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> GrpcReceiver:
        self.server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop(grace=None)
