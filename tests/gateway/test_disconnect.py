"""A client that leaves mid-stream is billed once, for what was generated."""

from __future__ import annotations

import http.client
import json
import time

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, GatewayProcess


def _ledger_row(gateway: GatewayProcess, request_id: str) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = gateway.sql(
            "SELECT status, stream, error_code, completion_tokens, usage_estimated "
            "FROM usage_ledger WHERE request_id = :id",
            id=request_id,
        )
        if rows:
            return rows
        time.sleep(0.05)
    return []


def test_client_leaving_mid_stream_is_billed_once(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.configure(tokens_per_second=20)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    body = {
        "model": "sim",
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(["word"] * 40)}],
    }
    connection.request(
        "POST",
        "/v1/chat/completions",
        body=json.dumps(body),
        headers={
            "Authorization": f"Bearer {ADMIN_KEY}",
            "Content-Type": "application/json",
            "x-request-id": "leaves-early-1",
        },
    )
    response = connection.getresponse()
    assert response.status == 200
    for _ in range(4):
        assert response.readline().startswith(b"data: ")
        response.readline()
    response.close()
    connection.close()  # the client leaves with the stream half-read

    rows = _ledger_row(gateway, "leaves-early-1")
    assert len(rows) == 1
    status, stream, error_code, completion_tokens, estimated = rows[0]
    assert (status, stream, error_code, estimated) == (499, 1, "client_disconnected", 1)
    assert 0 < completion_tokens < 40
    time.sleep(0.5)
    assert len(_ledger_row(gateway, "leaves-early-1")) == 1


def test_client_leaving_a_native_responses_stream_cancels_it(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.configure(tokens_per_second=20)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    body = {"model": "sim", "stream": True, "input": " ".join(["word"] * 40)}
    connection.request(
        "POST",
        "/v1/responses",
        body=json.dumps(body),
        headers={
            "Authorization": f"Bearer {ADMIN_KEY}",
            "Content-Type": "application/json",
            "x-request-id": "leaves-responses-1",
        },
    )
    response = connection.getresponse()
    assert response.status == 200
    for _ in range(6):  # six events: event and data lines, then a blank one
        assert response.readline().startswith(b"event: ")
        assert response.readline().startswith(b"data: ")
        response.readline()
    response.close()
    connection.close()

    rows = _ledger_row(gateway, "leaves-responses-1")
    assert len(rows) == 1
    status, stream, error_code, completion_tokens, estimated = rows[0]
    assert (status, stream, error_code, estimated) == (499, 1, "client_disconnected", 1)
    assert 0 < completion_tokens < 40  # the deltas relayed before the client left
    deadline = time.monotonic() + 3
    while not any(path == "/v1/responses" for path, _ in sim.disconnects):
        assert time.monotonic() < deadline, "the upstream stream was not cancelled"
        time.sleep(0.05)
