"""CPU per upstream call of each provider adapter: native against LiteLLM, in one run.

Each adapter is the gateway's own provider object (what a deployment of that kind uses),
calling the same upstream simulator (``llmplane dev upstream``, started here in its own
process on another core). This process's CPU time is measured over N calls per cell, so
the simulator's work is not counted; what is counted is the adapter's: building the
request, the HTTP client, reading and translating the answer (and for streams, every
event). LiteLLM is imported before measuring (its ~4 s import is not a per-call cost).

    .venv/bin/python bench/providers.py [--calls 1000] [--concurrency 1,16]

Adapters: ``openai`` (the native fast path), ``litellm openai/`` (LiteLLM's OpenAI adapter
on the same upstream), and — the issue's question — ``anthropic`` (native) against
``litellm anthropic/``, both speaking Anthropic's Messages API to the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import BenchError, start_server, stop_server, wait_ready

from llmplane.config.platform import DeploymentConfig
from llmplane.gateway.providers.base import Endpoint, Provider
from llmplane.gateway.providers.openai_compat import OpenAICompatibleProvider
from llmplane.gateway.providers.via_litellm import LiteLLMProvider, load_litellm

PORT = 9107
BODY = {
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the benchmark, briefly please."},
    ],
    "max_tokens": 16,
}


def _adapters(base: str) -> dict[str, Callable[[], Provider]]:
    def deployment(**fields: Any) -> DeploymentConfig:
        return DeploymentConfig.model_validate({"api_key": "sk-bench", **fields})

    adapters: dict[str, Callable[[], Provider]] = {
        "openai (native)": lambda: OpenAICompatibleProvider(
            "openai", deployment(provider="openai", api_base=f"{base}/v1", model="sim")
        ),
        "litellm openai/": lambda: LiteLLMProvider(
            "litellm-openai",
            deployment(provider="litellm", api_base=f"{base}/v1", model="openai/sim"),
        ),
        "litellm anthropic/": lambda: LiteLLMProvider(
            "litellm-anthropic",
            deployment(provider="litellm", api_base=base, model="anthropic/claude-sonnet-4-5"),
        ),
    }
    with contextlib.suppress(ImportError):
        from llmplane.gateway.providers.anthropic import AnthropicProvider

        adapters["anthropic (native)"] = lambda: AnthropicProvider(
            "anthropic",
            deployment(provider="anthropic", api_base=base, model="claude-sonnet-4-5"),
        )
    return adapters


async def _one(provider: Provider, stream: bool, number: int) -> None:
    body = {**BODY, "model": "sim"}
    if not stream:
        reply = await provider.complete(Endpoint.CHAT, body, f"bench-{number}")
        if b"choices" not in reply.body:
            raise BenchError(f"unexpected reply: {reply.body[:300]!r}")
        return
    # As the gateway sends a stream: usage asked for, so that it can be billed.
    body.update(stream=True, stream_options={"include_usage": True})
    events = await provider.open_stream(Endpoint.CHAT, body, f"bench-{number}")
    seen = 0
    async for batch in events:
        seen += len(batch)
    await events.aclose()
    if seen < 3:
        raise BenchError("a stream ended after fewer than 3 events")


async def _cell(provider: Provider, stream: bool, calls: int, concurrency: int) -> float:
    """CPU microseconds per call."""
    counter = iter(range(10**9))

    async def worker() -> None:
        for _ in range(calls // concurrency):
            await _one(provider, stream, next(counter))

    await asyncio.gather(*(_one(provider, stream, -1) for _ in range(concurrency)))  # warm
    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / calls * 1e6


async def measure(base: str, calls: int, concurrencies: list[int]) -> list[list[str]]:
    """One row per adapter: CPU µs per call for each (stream, concurrency) cell."""
    await load_litellm()
    rows = []
    for name, make in _adapters(base).items():
        provider = make()
        try:
            try:
                await _one(provider, False, -1)
            except Exception as exc:  # noqa: BLE001 - reported, the other adapters still run
                print(f"{name}: skipped, its first call failed: {exc}", flush=True)
                continue
            row = [name]
            for stream in (False, True):
                for concurrency in concurrencies:
                    row.append(f"{await _cell(provider, stream, calls, concurrency):,.0f}")
            rows.append(row)
            print(" | ".join(row), flush=True)
        finally:
            await provider.aclose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("taskset") is None:
        raise BenchError("taskset (util-linux) is needed to pin the simulator to its own core")
    with tempfile.TemporaryDirectory() as logs, contextlib.ExitStack() as stack:
        argv = [str(Path(sys.executable).parent / "llmplane"), "dev", "upstream"]
        server = start_server(
            "upstream",
            [*argv, "--port", str(PORT)],
            core=1,
            env=os.environ,
            log_dir=Path(logs),
        )
        stack.callback(stop_server, server)
        base = f"http://127.0.0.1:{PORT}"
        wait_ready(server, f"{base}/health", timeout_s=30)
        os.sched_setaffinity(0, {0})
        rows = asyncio.run(measure(base, args.calls, concurrencies))
    cells = [f"{kind} c={c}" for kind in ("json", "stream") for c in concurrencies]
    lines = [
        f"# Provider adapters: CPU µs per call ({args.calls} calls per cell)",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {sys.version.split()[0]}, "
        f"simulator on core 1, adapters on core 0.",
        "",
        "| adapter | " + " | ".join(cells) + " |",
        "|---|" + "---:|" * len(cells),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"providers-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M%SZ}.md"
    path.write_text(report)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
