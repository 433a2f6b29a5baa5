"""CPU per request of the stored request logs, measured in process.

Usage: .venv/bin/python bench/request_logs.py [--requests 100000] [--rows 2000]

Two costs, apart:

- on the event loop (the request path): a trace started, filled in as the routes do and
  finished, with the metrics observer, with and without the stored-log writer observing,
  for a team whose policy is ``none`` (the default: the writer only checks an attribute),
  ``metadata`` and ``full`` (a RequestContent holding references, a deque append);
- in the writer thread (off the request path, but CPU all the same): building one row of
  a JSON chat call and of a 60-chunk stream, per policy, ``redacted`` included (Presidio,
  in the redactor's child process: this process pays the round trip, the child the rest).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageRecord
from llmplane.gateway.app import _redactor
from llmplane.store import create_engine, migrate
from llmplane.telemetry import RequestTrace, Telemetry
from llmplane.telemetry.content import LogPolicy, RequestContent
from llmplane.telemetry.metrics import GatewayMetrics
from llmplane.telemetry.stored_logs import StoredLogWriter

_BODY = {
    "model": "sim",
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {
            "role": "user",
            "content": "Write to jane.doe@example.com about order 1234 and card "
            "4111 1111 1111 1111; say hello to the benchmark in a few words.",
        },
    ],
    "max_tokens": 64,
    "temperature": 0.2,
}
_REPLY = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "sim-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, benchmark! " * 8},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 64, "total_tokens": 104},
    }
)
_STREAM = [
    b"data: "
    + orjson.dumps(
        {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    )
    + b"\n\n"
    for delta in [{"role": "assistant", "content": ""}, *({"content": " word"} for _ in range(60))]
]


def _attempt() -> UsageRecord:
    return UsageRecord(
        "req-bench",
        datetime.now(UTC),
        "sim",
        "sim[0]",
        "openai",
        "chat.completions",
        False,
        200,
        40,
        64,
        0,
        62_000,
        1.5,
        key_id="key-bench",
        team_id="team-bench",
    )


def _request_path_us(telemetry: Telemetry, policy: LogPolicy | None, requests: int) -> float:
    principal = Principal("key-bench", "bench", team_id="team-bench", log_policy=policy)
    attempt = _attempt()
    started = time.process_time()
    for _ in range(requests):
        trace = telemetry.start("req-bench", "POST", "/v1/chat/completions", None)
        assert trace is not None
        trace.operation, trace.model, trace.principal = "chat.completions", "sim", principal
        log_policy = principal.log_policy
        if log_policy is not None:
            trace.content = RequestContent(log_policy, _BODY, None)
            if log_policy.wants_content:
                trace.content.reply = _REPLY
        trace.attempts.append(attempt)
        telemetry.finish(trace, 200)
    return (time.process_time() - started) / requests * 1e6


def _trace(policy: LogPolicy, stream: bool) -> RequestTrace:
    trace = RequestTrace("req-bench", "POST", "/v1/chat/completions", time.time(), 0.0)
    trace.operation, trace.model, trace.status, trace.duration_s = (
        "chat.completions",
        "sim",
        200,
        0.01,
    )
    trace.principal = Principal("key-bench", "bench", team_id="team-bench")
    trace.attempts.append(_attempt())
    trace.content = RequestContent(policy, _BODY, None)
    if stream:
        trace.content.start_stream()
        for event in _STREAM:
            trace.content.add_events(event)
    else:
        trace.content.reply = _REPLY
    return trace


def _row_ms(
    writer: StoredLogWriter, policy: LogPolicy, stream: bool, rows: int
) -> tuple[float, float]:
    """CPU ms per row built in this process, and wall ms (a redacted row's text is
    redacted in the redactor's child process: wall time is mostly its CPU)."""
    trace = _trace(policy, stream)
    writer.build_row(trace)  # the redactor is built on first use (a second or two)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rows):
        writer.build_row(trace)
    return (time.process_time() - cpu) / rows * 1e3, (time.perf_counter() - wall) / rows * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        # Not started: requests are queued (then, past the limit, counted as dropped: the
        # same attribute checks and one comparison), as on the event loop.
        writer = StoredLogWriter(engine, limit=1000)
        builder = StoredLogWriter(engine, _redactor)  # only builds rows (and redacts)
        metrics = GatewayMetrics(models=["sim"])
        print("On the event loop, CPU µs per request (trace + metrics [+ stored-log writer]);")
        print("the least of 5 interleaved runs (the machine is shared):")
        variants: dict[str, tuple[Telemetry, LogPolicy | None]] = {
            "without the writer": (Telemetry([metrics]), None),
            "with the writer, none": (Telemetry([metrics, writer]), None),
            "with the writer, metadata": (
                Telemetry([metrics, writer]),
                LogPolicy("metadata", 30),
            ),
            "with the writer, full": (Telemetry([metrics, writer]), LogPolicy("full", 30)),
        }
        best = {name: float("inf") for name in variants}
        for _ in range(5):
            for name, (telemetry, policy) in variants.items():
                best[name] = min(best[name], _request_path_us(telemetry, policy, args.requests))
        baseline = best["without the writer"]
        for name, cost in best.items():
            print(f"  {name:27} {cost:6.2f} ({cost - baseline:+.2f})")
        print("In the writer thread, ms per row built: CPU of this process / wall")
        for name in ("metadata", "full", "redacted"):
            policy = LogPolicy(name, 30)
            rows = args.rows if name != "redacted" else max(args.rows // 20, 20)
            json_cpu, json_wall = _row_ms(builder, policy, False, rows)
            stream_cpu, stream_wall = _row_ms(builder, policy, True, rows)
            print(
                f"  {name:9} JSON {json_cpu:6.3f} / {json_wall:6.3f}   "
                f"stream (61 chunks) {stream_cpu:6.3f} / {stream_wall:6.3f}"
            )
        builder.close()
        engine.dispose()


if __name__ == "__main__":
    main()
