"""Spans end to end: ``llmplane up`` with ``LLMPLANE_OTEL_ENDPOINT`` pointing at an OTLP
receiver in the test (OTLP/HTTP, or OTLP/gRPC with ``LLMPLANE_OTEL_PROTOCOL=grpc``), real
traffic through the openai SDK, and what the receiver gets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, PROVIDER_KEY, GatewayProcess, openai_client, simulator_model
from tests.telemetry.otlp import GrpcReceiver, HttpReceiver, attributes, resource_attributes

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLS = 24


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[str, HttpReceiver | GrpcReceiver]]:
    """A collector of each protocol, with the protocol name the gateway is told."""
    protocol: str = request.param
    with HttpReceiver() if protocol == "http/protobuf" else GrpcReceiver() as receiver:
        yield protocol, receiver


def test_every_request_reaches_the_collector_in_the_callers_trace(
    tmp_path: Path,
    upstream_simulator: UpstreamSimulator,
    receiver: tuple[str, HttpReceiver | GrpcReceiver],
) -> None:
    protocol, collector = receiver
    imports = ImportRecorder(tmp_path)
    routing = {"retries": 1, "backoff": {"base_s": 0.01, "max_s": 0.02}}
    models = [simulator_model("sim", upstream_simulator.url, routing=routing)]
    gateway = GatewayProcess(
        tmp_path,
        models,
        env={
            **imports.env,
            "LLMPLANE_OTEL_ENDPOINT": collector.url,
            "LLMPLANE_OTEL_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "gw",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=platform",
        },
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
    if isinstance(collector, HttpReceiver):
        assert set(collector.paths) == {"/v1/traces"}
        assert {headers["x-tenant"] for headers in collector.headers} == {"platform"}
        assert imports.modules("grpc") == []  # gRPC is imported only when chosen
    else:
        assert {metadata["x-tenant"] for metadata in collector.metadata} == {"platform"}
        assert "grpc" in imports.modules("grpc")
    spans = collector.spans()
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
        values = attributes(span)
        request_id = values["llmplane.request_id"]
        n = int(request_id.removeprefix("otel-"))
        assert span.trace_id.hex() == TRACE_ID
        assert span.parent_span_id.hex() == f"{n + 1:016x}"
        assert span.name == "chat sim"
        assert values["gen_ai.operation.name"] == "chat"
        assert values["gen_ai.request.model"] == "sim"
        assert values["llmplane.stream"] is (n % 4 == 3)
        assert (
            values["gen_ai.usage.input_tokens"],
            values["gen_ai.usage.output_tokens"],
            values["llmplane.attempts"],
        ) == ledger[request_id]
        assert values["gen_ai.usage.output_tokens"] > 0
        assert len(span.events) == values["llmplane.attempts"]
        assert span.end_time_unix_nano > span.start_time_unix_nano
    retried = [span for span in spans if len(span.events) == 2]
    assert len(retried) == 1
    assert [event.name for event in retried[0].events] == ["llmplane.attempt", "llmplane.retry"]
    exported = b"".join(collector.bodies)
    for secret in (ADMIN_KEY, PROVIDER_KEY, "call number", "stream number"):
        assert secret.encode() not in exported
    service_names = {resource["service.name"] for resource in resource_attributes(collector.bodies)}
    assert service_names == {"gw"}


class ImportRecorder:
    """Makes a gateway process write the modules it imported, when it exits."""

    def __init__(self, tmp_path: Path) -> None:
        hook = tmp_path / "hook"
        hook.mkdir()
        self.loaded = tmp_path / "loaded.txt"
        (hook / "sitecustomize.py").write_text(
            "import atexit, sys\n"
            "def _report():\n"
            f"    with open({str(self.loaded)!r}, 'w') as out:\n"
            "        out.write('\\n'.join(sorted(sys.modules)))\n"
            "atexit.register(_report)\n"
        )
        path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
        self.env = {"PYTHONPATH": path}

    def modules(self, prefix: str) -> list[str]:
        """The imported modules whose names start with ``prefix``."""
        modules = self.loaded.read_text().split()
        assert "llmplane.gateway.app" in modules  # the hook saw the gateway
        return [m for m in modules if m.startswith(prefix)]


def test_without_an_endpoint_the_gateway_never_imports_opentelemetry(tmp_path: Path) -> None:
    imports = ImportRecorder(tmp_path)
    env = {**imports.env, "LLMPLANE_OTEL_ENDPOINT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    with GatewayProcess(tmp_path, env=env) as gateway:
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
        client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "x"}])
    assert imports.modules("opentelemetry") == []
