"""CPU per request of the span observer (tracing), on the event loop and in all, in process.

Usage: .venv/bin/python bench/telemetry_tracing.py [--requests 50000]

Finished traces (one attempt, and a retry plus a fallback) are handed to
``SpanObserver.request_finished`` as the gateway does at the end of each request, then
``close()`` sends what is queued. Two numbers per row: the CPU of the calling thread (what
the event loop pays per request) and the CPU of the whole process until ``close`` returns
(the span thread's encoding and sending included: it is the gateway's CPU too). Spans go
over OTLP/HTTP to ``bench/otlp_sink.py`` in another process (its CPU is not counted), and,
for comparison, to a sender that discards them (encoding alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageRecord
from llmplane.telemetry import RequestTrace, Telemetry
from llmplane.telemetry.tracing import SpanObserver, SpanSender, otlp_sender

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _attempt(model: str, deployment: str, status: int, attempt: int) -> UsageRecord:
    return UsageRecord(
        "req-bench",
        datetime.now(UTC),
        model,
        deployment,
        "openai",
        "chat.completions",
        False,
        status,
        30 + attempt,
        16,
        0,
        62_000,
        1.5,
        attempt=attempt,
        key_id="key-bench",
        team_id="team-bench",
    )


class _Keep:
    """An observer that keeps the traces it is given."""

    def __init__(self) -> None:
        self.traces: list[RequestTrace] = []

    def request_finished(self, trace: RequestTrace) -> None:
        self.traces.append(trace)


def _finished_traces(attempts: list[UsageRecord], count: int) -> list[RequestTrace]:
    """``count`` finished traces as the routes fill them in (every other one with the
    caller's traceparent)."""
    kept = _Keep()
    telemetry = Telemetry([kept])
    principal = Principal("key-bench", "bench", team_id="team-bench")
    for n in range(count):
        trace = telemetry.start(f"req-{n}", "POST", "/v1/chat/completions", None)
        assert trace is not None
        trace.traceparent = TRACEPARENT if n % 2 else None
        trace.operation, trace.model, trace.principal = "chat.completions", "sim", principal
        trace.attempts.extend(attempts)
        telemetry.finish(trace, 200)
    return kept.traces


class Discard:
    """A sender that takes every body and sends nothing (encoding cost alone)."""

    def send(self, payload: bytes, spans: int) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def _per_request_us(sender: SpanSender, traces: list[RequestTrace]) -> tuple[float, float]:
    """(event loop, whole process) CPU µs per request."""
    observer = SpanObserver(sender, max_queue_size=len(traces))
    started, loop_started = time.process_time(), time.thread_time()
    for trace in traces:
        observer.request_finished(trace)
    loop = time.thread_time() - loop_started
    observer.close()
    total = time.process_time() - started
    assert observer.dropped == 0 and observer.failed == 0
    return loop / len(traces) * 1e6, total / len(traces) * 1e6


@contextlib.contextmanager
def _sink() -> Iterator[str]:
    """bench/otlp_sink.py on a free port, in its own process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = Path(__file__).with_name("otlp_sink.py")
    proc = subprocess.Popen([sys.executable, str(script), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/health", timeout=1).close()  # noqa: S310
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    args = parser.parse_args()
    plain = [_attempt("sim", "sim/0", 200, 0)]
    retried = [
        _attempt("sim", "sim/0", 502, 0),
        _attempt("sim", "sim/0", 502, 1),
        _attempt("backup", "backup/0", 200, 2),
    ]
    rows = [
        ("one attempt", plain, args.requests),
        ("retry + fallback", retried, args.requests // 4),
    ]
    print("| request | sent to | loop CPU µs/request | total CPU µs/request |")
    print("|---|---|---|---|")
    with _sink() as url:
        for name, attempts, count in rows:
            _per_request_us(Discard(), _finished_traces(attempts, 2_000))  # warm the caches
            for target, sender in (
                ("OTLP/HTTP sink", otlp_sender(url)),
                ("discarded", Discard()),
            ):
                loop, total = _per_request_us(sender, _finished_traces(attempts, count))
                print(f"| {name} | {target} | {loop:.2f} | {total:.2f} |")
        with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:  # noqa: S310
            stats = json.load(response)
    print(f"\nthe sink received {stats['spans']:,} spans in {stats['requests']:,} requests")


if __name__ == "__main__":
    main()
