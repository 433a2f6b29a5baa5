"""CPU per request of the Prometheus metrics observer, measured in process.

Usage: .venv/bin/python bench/telemetry_metrics.py [--requests 200000]

The gateway bench (run.py, llmplane-no-telemetry beside llmplane) measures the whole
difference but varies ±15 % per cell on a 2-core machine; this isolates what telemetry
adds per request: a trace started, filled in as the routes do, finished and counted by
``GatewayMetrics``, for a plain call and for one with a retry and a fallback. A scrape
of the result is timed too (it runs off the request path, once per scrape interval).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageRecord
from llmplane.telemetry import Telemetry
from llmplane.telemetry.metrics import GatewayMetrics


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
        30,
        16,
        0,
        62_000,
        1.5,
        attempt=attempt,
        key_id="key-bench",
        team_id="team-bench",
    )


def _per_request_us(telemetry: Telemetry, attempts: list[UsageRecord], requests: int) -> float:
    principal = Principal("key-bench", "bench", team_id="team-bench")
    started = time.process_time()
    for _ in range(requests):
        trace = telemetry.start("req-bench", "POST", "/v1/chat/completions", None)
        assert trace is not None
        trace.operation, trace.model, trace.principal = "chat.completions", "sim", principal
        trace.attempts.extend(attempts)
        telemetry.finish(trace, 200)
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    metrics = GatewayMetrics()
    telemetry = Telemetry([metrics])
    plain = [_attempt("sim", "sim/0", 200, 0)]
    retried = [
        _attempt("sim", "sim/0", 502, 0),
        _attempt("sim", "sim/0", 502, 1),
        _attempt("backup", "backup/0", 200, 2),
    ]
    _per_request_us(telemetry, plain + retried, 1_000)  # create the series first
    print("| request | CPU µs per request (trace + metrics) |")
    print("|---|---|")
    print(f"| one attempt | {_per_request_us(telemetry, plain, args.requests):.2f} |")
    retried_us = _per_request_us(telemetry, retried, args.requests // 4)
    print(f"| retry + fallback (3 attempts) | {retried_us:.2f} |")
    started = time.process_time()
    size = len(metrics.exposition())
    print(f"\nscrape: {(time.process_time() - started) * 1e3:.2f} ms CPU, {size:,} bytes")


if __name__ == "__main__":
    main()
