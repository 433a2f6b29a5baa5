"""Spans end to end: ``llmplane up`` with ``LLMPLANE_OTEL_ENDPOINT`` pointing at an OTLP/HTTP
receiver in the test, real traffic through the openai SDK, and what the receiver gets."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from llmplane.testing.upstream import UpstreamSimulator
from tests import canary
from tests.helpers import ADMIN_KEY, PROVIDER_KEY, GatewayProcess, openai_client, simulator_model

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLS = 24


class OTLPReceiver:
    """A minimal OTLP/HTTP traces endpoint: keeps every POST body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.paths.append(self.path)
                receiver.bodies.append(body)
                canary.scan(body, "spans exported")
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

    def spans(self) -> list[Span]:
        spans: list[Span] = []
        for body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    spans.extend(scope_spans.spans)
        return spans


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _attributes(span: Span) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        values[attribute.key] = getattr(value, value.WhichOneof("value") or "string_value")
    return values


def test_every_request_reaches_the_collector_in_the_callers_trace(
    tmp_path: Path, upstream_simulator: UpstreamSimulator, receiver: OTLPReceiver
) -> None:
    routing = {"retries": 1, "backoff": {"base_s": 0.01, "max_s": 0.02}}
    models = [simulator_model("sim", upstream_simulator.url, routing=routing)]
    gateway = GatewayProcess(
        tmp_path, models, env={"LLMPLANE_OTEL_ENDPOINT": receiver.url, "OTEL_SERVICE_NAME": "gw"}
    )
    upstream_simulator.add_faults({"kind": "status", "status": 500, "count": 1})
    with gateway:
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
        for n in range(CALLS):
            traceparent = f"00-{TRACE_ID}-{n + 1:016x}-01"
            headers = {"traceparent": traceparent, "x-request-id": f"otel-{n}"}
            if n % 4 == 3:
                stream = client.chat.completions.create(
                    model="sim",
                    stream=True,
                    stream_options={"include_usage": True},
                    messages=[{"role": "user", "content": f"stream number {n}"}],
                    extra_headers=headers,
                )
                assert list(stream)
            else:
                client.chat.completions.create(
                    model="sim",
                    messages=[{"role": "user", "content": f"call number {n}"}],
                    extra_headers=headers,
                )
    # Stopped: the gateway flushed its spans on the way out, and its ledger rows too.
    assert set(receiver.paths) == {"/v1/traces"}
    spans = receiver.spans()
    assert len(spans) == CALLS
    ledger = {
        request_id: (prompt, completion, attempts)
        for request_id, prompt, completion, attempts in gateway.sql(
            "SELECT request_id, SUM(prompt_tokens), SUM(completion_tokens), COUNT(*) "
            "FROM usage_ledger WHERE request_id LIKE 'otel-%' GROUP BY request_id"
        )
    }
    assert len(ledger) == CALLS
    for span in spans:
        attributes = _attributes(span)
        request_id = attributes["llmplane.request_id"]
        n = int(request_id.removeprefix("otel-"))
        assert span.trace_id.hex() == TRACE_ID
        assert span.parent_span_id.hex() == f"{n + 1:016x}"
        assert span.name == "chat sim"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "sim"
        assert attributes["llmplane.stream"] is (n % 4 == 3)
        assert (
            attributes["gen_ai.usage.input_tokens"],
            attributes["gen_ai.usage.output_tokens"],
            attributes["llmplane.attempts"],
        ) == ledger[request_id]
        assert attributes["gen_ai.usage.output_tokens"] > 0
        assert len(span.events) == attributes["llmplane.attempts"]
        assert span.end_time_unix_nano > span.start_time_unix_nano
    retried = [span for span in spans if len(span.events) == 2]
    assert len(retried) == 1
    assert [event.name for event in retried[0].events] == ["llmplane.attempt", "llmplane.retry"]
    exported = b"".join(receiver.bodies)
    for secret in (ADMIN_KEY, PROVIDER_KEY, "call number", "stream number"):
        assert secret.encode() not in exported
    service_names = {
        attribute.value.string_value
        for body in receiver.bodies
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans
        for attribute in resource_spans.resource.attributes
        if attribute.key == "service.name"
    }
    assert service_names == {"gw"}


def test_without_an_endpoint_the_gateway_never_imports_opentelemetry(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    loaded = tmp_path / "loaded.txt"
    # Runs in the gateway process at start; writes what it imported when it exits.
    (hook / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        "def _report():\n"
        f"    with open({str(loaded)!r}, 'w') as out:\n"
        "        out.write('\\n'.join(sorted(sys.modules)))\n"
        "atexit.register(_report)\n"
    )
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])),
        "LLMPLANE_OTEL_ENDPOINT": "",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    with GatewayProcess(tmp_path, env=env) as gateway:
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
        client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "x"}])
    modules = loaded.read_text().split()
    assert "llmplane.gateway.app" in modules  # the hook saw the gateway
    assert [m for m in modules if m.startswith("opentelemetry")] == []
