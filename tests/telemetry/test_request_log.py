"""Request logs: one JSON line per request from ``llmplane up``, and no secret or content
anywhere in what the gateway process writes."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageRecord
from llmplane.secret_scrub import SecretScrubber
from llmplane.telemetry import RequestTrace
from llmplane.telemetry.log_output import GatewayFormatter
from llmplane.telemetry.request_log import request_line, trace_id_of
from llmplane.testing.upstream import UpstreamSimulator
from tests.canary import canary
from tests.helpers import PROVIDER_KEY, WRONG_KEY, GatewayProcess, openai_client, simulator_model

CANARY_ADMIN_KEY = canary("admin key", "sk-lp-admin-")
CANARY_PROMPT = "CANARY-PROMPT-a41b7e: the launch code is 0000"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _record(status: int, **extra: Any) -> UsageRecord:
    return UsageRecord(
        "r-1", datetime.now(UTC), "sim", "sim/0", "openai", "chat.completions", False,
        status, 10, 20, 4, 1_500_000, 30.0, **extra,
    )  # fmt: skip


def test_a_line_holds_the_request_its_attempts_and_its_caller() -> None:
    trace = RequestTrace("r-1", "POST", "/v1/chat/completions", 1_700_000_000.0, 0.0, TRACEPARENT)
    trace.operation, trace.model, trace.status, trace.duration_s = (
        "chat.completions",
        "sim",
        200,
        0.25,
    )
    trace.principal = Principal("key_abc", "ci", team_id="team_1", service_id="svc_1")
    trace.attempts = [
        _record(502, error_code="upstream_error"),
        _record(200, user_id="end-user-7", ttft_ms=12.5),
    ]
    line = json.loads(request_line(trace))
    assert line["ts"] == "2023-11-14T22:13:20.250Z"
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (line["served_model"], line["deployment"], line["provider"]) == (
        "sim",
        "sim/0",
        "openai",
    )
    assert (line["attempts"], line["failed"]) == (
        2,
        [{"deployment": "sim/0", "status": 502, "error_code": "upstream_error"}],
    )
    assert (line["prompt_tokens"], line["completion_tokens"], line["cached_tokens"]) == (20, 40, 8)
    assert line["cost_usd"] == pytest.approx(0.003)
    assert (line["duration_ms"], line["ttft_ms"]) == (250.0, 12.5)
    assert (line["team_id"], line["service_id"], line["key_id"], line["user"]) == (
        "team_1", "svc_1", "key_abc", "end-user-7",
    )  # fmt: skip


@pytest.mark.parametrize(
    "traceparent",
    [
        None,
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-" + "g" * 32 + "-00f067aa0ba902b7-01",
    ],
)
def test_a_malformed_traceparent_gives_no_trace_id(traceparent: str | None) -> None:
    assert trace_id_of(traceparent) is None


def test_other_records_are_scrubbed_of_secrets() -> None:
    formatter = GatewayFormatter("json", SecretScrubber([PROVIDER_KEY]))
    try:
        raise RuntimeError(f"upstream said no to {PROVIDER_KEY} (Authorization: Bearer abc.def)")
    except RuntimeError:
        record = logging.LogRecord(
            "llmplane.gateway", logging.ERROR, __file__, 1, "failed with key %s and ?key=AIza9&x=1",
            (CANARY_ADMIN_KEY,), sys.exc_info(),
        )  # fmt: skip
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "llmplane.gateway"
    for secret in (PROVIDER_KEY, CANARY_ADMIN_KEY, "abc.def", "AIza9"):
        assert secret not in line
    assert "[redacted]" in entry["message"] and "[redacted]" in entry["exc"]


@pytest.fixture
def gateway(tmp_path: Path, upstream_simulator: UpstreamSimulator) -> Any:
    routing = {"retries": 1, "backoff": {"base_s": 0.01, "max_s": 0.02}}
    process = GatewayProcess(
        tmp_path,
        [simulator_model("sim", upstream_simulator.url, routing=routing)],
        env={"LLMPLANE_ADMIN_KEY": CANARY_ADMIN_KEY, "LLMPLANE_LOG_LEVEL": "debug"},
    )
    process.start()
    yield process
    process.stop()


def test_each_request_is_one_json_line_and_no_secret_is_written(
    gateway: GatewayProcess, upstream_simulator: UpstreamSimulator
) -> None:
    client = openai_client(base_url=gateway.base_url, api_key=CANARY_ADMIN_KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": CANARY_PROMPT}]
    client.chat.completions.create(
        model="sim", messages=messages, user="end-user-7",
        extra_headers={"x-request-id": "log-ok", "traceparent": TRACEPARENT},
    )  # fmt: skip
    stream = client.chat.completions.create(
        model="sim", messages=messages, stream=True, extra_headers={"x-request-id": "log-stream"}
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    upstream_simulator.add_faults({"kind": "status", "status": 500, "count": 1})
    client.chat.completions.create(
        model="sim", messages=messages, extra_headers={"x-request-id": "log-retry"}
    )
    wrong = openai_client(base_url=gateway.base_url, api_key=WRONG_KEY, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(
            model="sim", messages=messages, extra_headers={"x-request-id": "log-401"}
        )
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="nope", messages=messages, extra_headers={"x-request-id": "log-404"}
        )
    assert gateway.stop() == 0  # flushes the log queue
    output = gateway.log.read_text()

    for secret in (
        CANARY_ADMIN_KEY,
        WRONG_KEY,
        PROVIDER_KEY,
        "CANARY-PROMPT",
        "launch code",
    ):
        assert secret not in output, f"{secret!r} was written by the gateway"

    lines: dict[str, list[dict[str, Any]]] = {}
    for raw in output.splitlines():
        if raw.startswith("{"):
            entry = json.loads(raw)  # every log line is JSON
            if "request_id" in entry:
                lines.setdefault(entry["request_id"], []).append(entry)
    ours = {k: v for k, v in lines.items() if k.startswith("log-")}
    assert sorted(ours) == ["log-401", "log-404", "log-ok", "log-retry", "log-stream"]
    assert all(len(v) == 1 for v in ours.values())
    ok, stream_line, retry = ours["log-ok"][0], ours["log-stream"][0], ours["log-retry"][0]
    assert (ok["status"], ok["operation"], ok["model"], ok["provider"], ok["stream"]) == (
        200, "chat.completions", "sim", "openai", False,
    )  # fmt: skip
    assert ok["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and ok["user"] == "end-user-7"
    assert ok["key_id"] and ok["completion_tokens"] > 0 and ok["cost_usd"] > 0
    assert stream_line["stream"] and stream_line["ttft_ms"] is not None
    assert retry["attempts"] == 2 and [f["status"] for f in retry["failed"]] == [502]
    assert (ours["log-401"][0]["status"], ours["log-401"][0]["key_id"]) == (401, None)
    assert (ours["log-404"][0]["status"], ours["log-404"][0]["attempts"]) == (404, 0)


def test_the_log_writer_batches_in_order_and_drops_beyond_its_limit() -> None:
    import io
    import logging

    from llmplane.telemetry.log_output import GatewayFormatter, LogWriter

    secret = canary("provider key", "sk-")
    stream = io.StringIO()
    writer = LogWriter(
        GatewayFormatter("json", SecretScrubber([secret])),
        stream,
        limit=3,
        interval_s=10,  # nothing is written before stop(): one batch
    ).start()
    record = logging.LogRecord(
        "llmplane.x", logging.WARNING, __file__, 1, f"key {secret}", (), None
    )
    writer.submit(b'{"n":1}')
    writer.submit(record)
    writer.submit(b'{"n":2}')
    writer.submit(b'{"n":3}')  # over the limit: dropped and counted
    writer.stop()
    lines = stream.getvalue().splitlines()
    assert lines[0] == '{"n":1}' and lines[2] == '{"n":2}' and len(lines) == 3
    assert secret not in lines[1] and '"level":"WARNING"' in lines[1]
    assert writer.dropped == 1


def test_health_probes_write_no_line(caplog: pytest.LogCaptureFixture) -> None:
    """A kubelet polling /health/live every few seconds would drown the request lines."""
    from llmplane.telemetry.request_log import REQUEST_LOGGER, RequestLogObserver

    observer = RequestLogObserver()
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER):
        for path in ("/health/live", "/v1/models"):
            observer.request_finished(RequestTrace("r", "GET", path, 0.0, 0.0, status=200))
    assert [json.loads(r.getMessage())["path"] for r in caplog.records] == ["/v1/models"]
