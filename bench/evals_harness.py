"""The eval harness's own cost: ``python bench/evals_harness.py [--cases 1000]``.

Starts the upstream simulator and ``llmplane up`` (SQLite store) in subprocesses and runs
a suite of ``--cases`` cases (an inline template, one contains-style scorer) in this
process, through the gateway, at concurrency 32 with the cache off:

1. the harness's work per case without any I/O (render, cache key, score, result):
   µs per case, measured on its own;
2. the harness process's CPU per case in a whole run (the above plus its HTTP client and
   the posting of results), with the simulator answering at once: model time excluded;
3. the wall time of the whole suite with the simulator answering at once and after
   ``--latency-ms`` (the floor is cases / 32 × latency);
4. the same suite again with the cache on (every output stored: no model call).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from llmplane.evals.client import HarnessClient
from llmplane.evals.harness import EvalOptions, run_eval
from llmplane.evals.runner import CallPlanner, score_output
from llmplane.evals.scoring import Case, CaseOutput, Score, Scorer, ScoringContext
from llmplane.evals.suite import Message, ScorerSpec, Suite, Target

ADMIN_KEY = "sk-lp-admin-bench-evals"
CONCURRENCY = 32


class Mentions:
    """The output contains the expected text."""

    name = "mentions"

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        found = str(case.expected) in output.text
        return Score(1.0 if found else 0.0, found, "found" if found else "missing")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited early")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):  # noqa: S310
            return
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready")


@contextlib.contextmanager
def _servers(work: Path, latency_ms: float) -> Iterator[str]:
    sim_port, gateway_port = _free_port(), _free_port()
    python = sys.executable
    sim = subprocess.Popen(
        [
            python,
            "-m",
            "llmplane",
            "dev",
            "upstream",
            "--port",
            str(sim_port),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    config = work / "llmplane.yaml"
    config.write_text(
        "models:\n  - name: sim\n    deployments:\n      - provider: openai\n"
        f"        api_base: http://127.0.0.1:{sim_port}/v1\n        api_key: sk-sim\n"
        "        model: sim-model\n    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
    )
    env = {**os.environ, "LLMPLANE_ADMIN_KEY": ADMIN_KEY, "LLMPLANE_REQUEST_LOG": "false"}
    data = work / f"data-{latency_ms}"
    gateway = subprocess.Popen(
        [
            python,
            "-m",
            "llmplane",
            "up",
            "--port",
            str(gateway_port),
            "--data-dir",
            str(data),
            "--config",
            str(config),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait(f"http://127.0.0.1:{sim_port}/health", sim)
        _wait(f"http://127.0.0.1:{gateway_port}/health/ready", gateway)
        yield f"http://127.0.0.1:{gateway_port}"
    finally:
        for process in (gateway, sim):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def _suite(work: Path, cases: int) -> Suite:
    dataset = work / "cases.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "input": {"topic": f"topic {i}"}, "expected": f"{i}"}) + "\n"
            for i in range(cases)
        )
    )
    return Suite(
        name="bench-evals",
        dataset=dataset,
        target=Target(
            messages=[
                Message(role="system", content="You answer in one sentence."),
                Message(role="user", content="Tell me about {{ topic }}."),
            ],
            model="sim",
        ),
        scorers=[ScorerSpec(name="mentions", scorer="bench.evals_harness:Mentions")],
        concurrency=CONCURRENCY,
    )


def _scorers() -> dict[str, tuple[Scorer, float | None]]:
    return {"mentions": (Mentions(), None)}


async def _pure_overhead_us(suite: Suite, cases: int) -> float:
    planner = CallPlanner(suite, None)
    scorers = _scorers()
    items = [Case(f"c{i}", {"topic": f"topic {i}"}, f"{i}") for i in range(cases)]
    output = CaseOutput("This is a mock reply to: Tell me about topic 1.")
    started = time.perf_counter()
    for case in items:
        planner.plan(case, "sim", 0)
        await score_output(scorers, case, output, None)  # type: ignore[arg-type]
    return (time.perf_counter() - started) / cases * 1e6


async def _run(url: str, suite: Suite, use_cache: bool) -> tuple[float, float, dict[str, object]]:
    cpu, wall = time.process_time(), time.perf_counter()
    async with HarnessClient(url, ADMIN_KEY) as client:
        report = await run_eval(
            suite, client, EvalOptions(baseline=None, use_cache=use_cache), _scorers()
        )
    assert report.summary["errors"] == 0, report.summary
    return time.perf_counter() - wall, time.process_time() - cpu, report.summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        suite = _suite(work, args.cases)
        pure = asyncio.run(_pure_overhead_us(suite, args.cases))
        print(f"harness work per case, no I/O (render, key, score): {pure:.1f} µs")
        for latency in (0.0, args.latency_ms):
            with _servers(work, latency) as url:
                wall, cpu, _ = asyncio.run(_run(url, suite, use_cache=False))
                print(
                    f"{args.cases} cases, concurrency {CONCURRENCY}, cache off, "
                    f"simulator latency {latency:.0f} ms: wall {wall:.2f} s "
                    f"({args.cases / wall:.0f} cases/s; floor "
                    f"{args.cases / CONCURRENCY * latency / 1000:.2f} s), "
                    f"harness CPU {cpu / args.cases * 1000:.2f} ms/case"
                )
                wall, cpu, summary = asyncio.run(_run(url, suite, use_cache=True))
                print(
                    f"  again with the cache on ({summary['cached']} cached): wall {wall:.2f} s, "
                    f"harness CPU {cpu / args.cases * 1000:.2f} ms/case"
                )


if __name__ == "__main__":
    main()
