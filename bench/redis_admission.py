"""Client CPU per admission + settlement in Redis mode: redis-py's scripts vs RespConnection.

Both sides run the gateway's own admission and settlement scripts, in one run, against one
redis-server this script starts (Debian's ``redis-server``): N admit+settle pairs at
concurrency 1 and 16, measuring this process's CPU time only (the server's is not ours).

    .venv/bin/python bench/redis_admission.py [--calls 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import time
from typing import Any

from redis.asyncio import Redis

from llmplane.accounting import redis_counters
from llmplane.accounting.resp import RespConnection, Script


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_KEYS = [f"bench:rate:key:k:{part}" for part in ("rpm", "tpm:times", "tpm:tokens", "tpm:total")]
_BUDGET = ["bench:budget:spent", "bench:budget:holds", "bench:budget:expiry"]


async def _pairs(admit: Any, settle: Any, calls: int, concurrency: int) -> float:
    """CPU microseconds per admit+settle pair."""
    counter = iter(range(10**9))

    async def worker() -> None:
        for _ in range(calls // concurrency):
            rid = f"r{next(counter)}"
            args = [1000, rid, 900_000, 100, 1, 10**9, 10**12, 10**15, 86_400]
            await admit(_KEYS + _BUDGET, args)
            await settle(_KEYS[2:] + _BUDGET, [rid, 500, 50, 1])

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / calls * 1e6


async def measure(url: str, calls: int) -> None:
    """Print the table for the Redis at ``url``."""
    client = Redis.from_url(url)
    await client.set(_BUDGET[0], 0)
    admit_py = client.register_script(redis_counters._ADMIT)
    settle_py = client.register_script(redis_counters._SETTLE)
    lean = RespConnection(url)
    admit_lean, settle_lean = Script(redis_counters._ADMIT), Script(redis_counters._SETTLE)
    sides = {
        "redis-py": (
            lambda k, a: admit_py(keys=k, args=a),
            lambda k, a: settle_py(keys=k, args=a),
        ),
        "RespConnection": (
            lambda k, a: lean.run(admit_lean, k, a),
            lambda k, a: lean.run(settle_lean, k, a),
        ),
    }
    print("| client | concurrency | client CPU µs per admit+settle |")
    print("|---|---|---|")
    for concurrency in (1, 16):
        for name, (admit, settle) in sides.items():
            await _pairs(admit, settle, 200, concurrency)  # warm up, load the scripts
            cpu = await _pairs(admit, settle, calls, concurrency)
            print(f"| {name} | {concurrency} | {cpu:.0f} |")
    await client.aclose()
    await lean.aclose()


def main(calls: int) -> None:
    """Start a throwaway redis-server and measure both clients against it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is missing: apt-get install -y redis-server")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        asyncio.run(measure(f"redis://127.0.0.1:{port}/0", calls))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    main(parser.parse_args().calls)
