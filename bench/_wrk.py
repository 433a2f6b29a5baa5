"""Drive ``wrk`` with a Lua script that POSTs one JSON body and prints exact percentiles."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _procs import BenchError

_MARKER = "BENCH_JSON "

# wrk's own text output rounds percentiles to two digits; done() prints them in microseconds.
_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,'
    .. '"max_us":%.1f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    "MARKER", summary.requests, summary.duration, latency:percentile(50.0),
    latency:percentile(90.0), latency:percentile(99.0), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests, wall time, latency percentiles and error counts."""

    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def require_wrk() -> str:
    """Path of ``wrk``, or an actionable error saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(
            "wrk is not installed; install it with: apt-get update && apt-get install -y wrk"
        )
    return path


def wrk_version(wrk: str) -> str:
    """Name and version from ``wrk -v`` (which exits 1 after printing them)."""
    completed = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first_line = (completed.stdout or completed.stderr).splitlines()[0]
    return first_line.split(" Copyright")[0].strip()


def write_script(path: Path, body: Mapping[str, Any], headers: Mapping[str, str]) -> Path:
    """Write a wrk Lua script that POSTs ``body`` as JSON with ``headers`` on every request."""
    payload = json.dumps(body, separators=(",", ":"))
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{payload}]==]"]
    all_headers = {"Content-Type": "application/json", **headers}
    lines += [f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in all_headers.items()]
    path.write_text("\n".join(lines) + "\n" + _DONE.replace("MARKER", _MARKER))
    return path


def run_wrk(
    wrk: str, url: str, script: Path, *, connections: int, duration_s: int, core: int
) -> WrkResult:
    """Run one thread of wrk pinned to ``core`` for ``duration_s`` seconds and parse its result."""
    argv = [
        "taskset",
        "-c",
        str(core),
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(_MARKER):
            raw = json.loads(line[len(_MARKER) :])
            break
    else:
        raise BenchError(
            f"wrk printed no result (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    errors = sum(raw[kind] for kind in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        non_2xx=raw["status"],
    )
