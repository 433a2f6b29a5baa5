"""The README's recipe for a hosted OTLP backend (Langfuse's shape: a base path and a
Basic auth header from ``OTEL_EXPORTER_OTLP_HEADERS``) against a real gateway process."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ADMIN_KEY, GatewayProcess, openai_client

CREDENTIAL = base64.b64encode(b"pk-lf-test:sk-lf-test-secret").decode()


class HeaderRecorder:
    """An OTLP/HTTP endpoint that answers 200 and keeps each POST's path and headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def recorder() -> Iterator[HeaderRecorder]:
    recorder = HeaderRecorder()
    recorder.thread.start()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


def test_spans_go_to_a_base_path_with_the_auth_header_of_the_environment(
    tmp_path: Path, recorder: HeaderRecorder
) -> None:
    env = {
        "LLMPLANE_OTEL_ENDPOINT": f"{recorder.url}/api/public/otel",
        "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Basic%20{CREDENTIAL}",
    }
    with GatewayProcess(tmp_path, env=env) as gateway:
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
        client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "x"}])
    # Stopped: the gateway exported what it had on the way out.
    assert recorder.requests
    for path, headers in recorder.requests:
        assert path == "/api/public/otel/v1/traces"
        assert headers["authorization"] == f"Basic {CREDENTIAL}"
    assert CREDENTIAL not in gateway.log.read_text()
