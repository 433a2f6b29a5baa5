"""Benchmark the llmplane gateway against the bare upstream simulator and LiteLLM's proxy.

Usage: .venv/bin/python bench/run.py [--duration 8] [--targets direct,llmplane,...]
See bench/README.md for what is measured and how the processes are pinned.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from _procs import BenchError, Server, core_busy_percent, core_times, cpu_seconds, peak_rss_mb
from _report import (
    Cell,
    cpu_summary,
    noise_warning,
    table,
    telemetry_overhead,
    verdict_table,
    verdicts,
)
from _targets import (
    BENCH_DIR,
    GATEWAY_CORE,
    LOAD_CORE,
    UPSTREAM_CORE,
    Target,
    chat_body,
    ledger_note,
    litellm_missing_reason,
    litellm_version,
    preflight,
    start_litellm,
    start_llmplane,
    start_llmplane_limits,
    start_llmplane_logs_full,
    start_llmplane_logs_redacted,
    start_llmplane_metrics_only,
    start_llmplane_no_telemetry,
    start_llmplane_redis,
    start_llmplane_tracing,
    start_upstream,
    tracing_note,
)
from _wrk import require_wrk, run_wrk, write_script, wrk_version

ALL_TARGETS = (
    "direct",
    "llmplane-no-telemetry",
    "llmplane-metrics-only",
    "llmplane",
    "llmplane+tracing",
    "llmplane+limits",
    "llmplane+redis",
    "llmplane-logs-full",
    "llmplane-logs-redacted",
    "litellm",
)
STREAM_CONCURRENCY = 16


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per cell")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before a cell")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma-separated")
    parser.add_argument(
        "--concurrency", default="1,16,64", help="comma-separated wrk connection counts"
    )
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming cells")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a gateway target is missed"
    )
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(ALL_TARGETS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.duration < 1 or args.warmup < 0:
        parser.error("--duration must be ≥ 1 and --warmup ≥ 0")
    return args


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure_cell(
    target: Target,
    upstream: Server,
    wrk: str,
    script: Path,
    concurrency: int,
    stream: bool,
    args: argparse.Namespace,
) -> Cell:
    common = {"connections": concurrency, "core": LOAD_CORE}
    warmup_requests = 0
    if args.warmup:
        warmup = run_wrk(wrk, target.chat_url, script, duration_s=args.warmup, **common)
        warmup_requests = warmup.requests
    pids = {target.server.pid, upstream.pid}
    before = {pid: cpu_seconds(pid) for pid in pids}
    wrk_before, cores_before = _children_cpu_s(), core_times((GATEWAY_CORE, UPSTREAM_CORE))
    result = run_wrk(wrk, target.chat_url, script, duration_s=args.duration, **common)
    after = {pid: cpu_seconds(pid) for pid in pids}
    wrk_after, cores_after = _children_cpu_s(), core_times((GATEWAY_CORE, UPSTREAM_CORE))
    busy = core_busy_percent(cores_before, cores_after)
    # What our own processes used on each core; the rest of a core's busy time is someone else.
    ours = {GATEWAY_CORE: 0.0, UPSTREAM_CORE: after[upstream.pid] - before[upstream.pid]}
    ours[LOAD_CORE] += wrk_after - wrk_before
    if target.server is not upstream:
        ours[GATEWAY_CORE] += after[target.server.pid] - before[target.server.pid]
    wall = result.duration_s or 1.0
    cell = Cell(
        target=target.name,
        concurrency=concurrency,
        stream=stream,
        wrk=result,
        server_cpu_s=after[target.server.pid] - before[target.server.pid],
        core_busy=busy,
        other_load={core: max(0.0, busy[core] - 100 * ours[core] / wall) for core in busy},
        warmup_requests=warmup_requests,
    )
    print(
        f"  {target.name:9} {cell.mode:6} c={concurrency:<3} {result.requests_per_s:9,.0f} req/s  "
        f"p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms  "
        f"CPU {cell.cpu_ms_per_request or 0:.3f} ms/req  errors {result.errors}  "
        f"other load {max(cell.other_load.values()):.0f}%",
        file=sys.stderr,
        flush=True,
    )
    return cell


def _measure_target(
    target: Target, upstream: Server, wrk: str, work_dir: Path, args: argparse.Namespace
) -> tuple[list[Cell], float]:
    """All cells of one target, then the peak RSS of its server process tree."""
    print(f"{target.name}: {target.chat_url} (pid {target.server.pid})", file=sys.stderr)
    preflight(target, stream=False)
    headers = target.headers
    script = write_script(work_dir / f"{target.name}.lua", chat_body(stream=False), headers)
    cells = [_measure_cell(target, upstream, wrk, script, c, False, args) for c in args.concurrency]
    if not args.no_stream:
        preflight(target, stream=True)
        stream = write_script(
            work_dir / f"{target.name}-stream.lua", chat_body(stream=True), headers
        )
        cells.append(_measure_cell(target, upstream, wrk, stream, STREAM_CONCURRENCY, True, args))
    rss = peak_rss_mb(target.server.pid)
    preflights = 1 if args.no_stream else 2
    sent = preflights + sum(c.wrk.requests + c.warmup_requests for c in cells)
    for note in (ledger_note(target, sent), tracing_note(target, sent)):
        if note:
            target.notes.append(note)
    return cells, rss


def _git_revision() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(
            ["git", *argv], capture_output=True, text=True, cwd=BENCH_DIR.parent, check=True
        ).stdout.strip()

    try:
        dirty = "+uncommitted changes" if git("status", "--porcelain") else ""
        return f"git {git('rev-parse', '--short', 'HEAD')}{dirty}"
    except (OSError, subprocess.CalledProcessError):
        return "git revision unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _render(
    stamp: str,
    cells: list[Cell],
    peak_rss: dict[str, float],
    notes: list[str],
    wrk: str,
    args: argparse.Namespace,
) -> str:
    versions = [f"llmplane {importlib.metadata.version('llmplane')} ({_git_revision()})"]
    if "litellm" in peak_rss:
        versions.append(f"LiteLLM {litellm_version()}")
    versions.append(wrk_version(wrk))
    parts = [
        f"# llmplane gateway benchmark, {stamp}",
        "",
        f"- machine: {_cpu_model()}, {len(_online_cores())} cores online, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        f"- software: {'; '.join(versions)}",
        f"- each cell: {args.warmup} s warmup + {args.duration} s measured, `wrk -t1 -cN`; "
        f"simulator latency {args.upstream_latency_ms:g} ms; body: 2 messages, max_tokens 16",
        f"- pinning: llmplane / LiteLLM on core {GATEWAY_CORE}; simulator on core "
        f"{UPSTREAM_CORE}; wrk on core {LOAD_CORE}. In the direct rows core {GATEWAY_CORE} "
        "is idle, so added latency is the cost of the extra hop and process.",
        "- server CPU and peak RSS are the simulator's in the direct rows and the proxy's "
        "elsewhere; stream rows time the whole stream, not the first token; other load is "
        "the busy share of a pinned core not used by the bench's own processes (max of both).",
        "",
        table(cells, peak_rss),
        "",
        "## Targets (llmplane)",
        "",
        verdict_table(verdicts(cells, peak_rss)),
        "",
        *cpu_summary(cells),
        *telemetry_overhead(cells),
    ]
    if notes:
        parts += ["", "## Notes", "", *(f"- {note}" for note in notes)]
    return "\n".join(parts) + "\n"


def _online_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _raise_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    """Start the servers one after another, measure every cell, write and print the report."""
    wrk = require_wrk()
    if len(_online_cores()) < 2:
        raise BenchError("the bench pins processes to cores 0 and 1 and needs both")
    notes: list[str] = []
    if "litellm" in args.targets and (reason := litellm_missing_reason()):
        print(reason, file=sys.stderr)
        notes.append(reason.splitlines()[0])
        args.targets = [t for t in args.targets if t != "litellm"]
    if not args.targets:
        raise BenchError("no target left to measure")
    work_dir = Path(tempfile.mkdtemp(prefix="llmplane-bench-"))
    cells: list[Cell] = []
    peak_rss: dict[str, float] = {}
    finished = False
    try:
        with contextlib.ExitStack() as stack:
            upstream = start_upstream(stack, work_dir, args.upstream_latency_ms)
            starters = {
                "llmplane-no-telemetry": start_llmplane_no_telemetry,
                "llmplane-metrics-only": start_llmplane_metrics_only,
                "llmplane": start_llmplane,
                "llmplane+tracing": start_llmplane_tracing,
                "llmplane+limits": start_llmplane_limits,
                "llmplane+redis": start_llmplane_redis,
                "llmplane-logs-full": start_llmplane_logs_full,
                "llmplane-logs-redacted": start_llmplane_logs_redacted,
                "litellm": start_litellm,
            }
            for name in [t for t in ALL_TARGETS if t in args.targets]:
                with contextlib.ExitStack() as server_stack:
                    target = (
                        upstream if name == "direct" else starters[name](server_stack, work_dir)
                    )
                    target_cells, peak_rss[name] = _measure_target(
                        target, upstream.server, wrk, work_dir, args
                    )
                    cells += target_cells
                    notes += [f"{name}: {note}" for note in target.notes]
        finished = True
    finally:
        if finished or not any(work_dir.glob("*.log")):
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"server logs kept in {work_dir}", file=sys.stderr)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    report = _render(stamp, cells, peak_rss, notes + noise_warning(cells), wrk, args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stamp}.md"
    path.write_text(report)
    print(report)
    print(f"written to {path}", file=sys.stderr)
    missed = [v for v in verdicts(cells, peak_rss) if v.passed is False]
    return 1 if args.check and missed else 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run; known problems end with a message, not a traceback."""
    args = _parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_on_signal)
    try:
        return run(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
