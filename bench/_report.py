"""Turn measured cells into the Markdown report: one table, the targets, the notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from _wrk import WrkResult

MIN_REQUESTS_PER_S = 2500.0
MAX_ADDED_P50_MS = 1.0
MAX_PEAK_RSS_MB = 150.0
MAX_TELEMETRY_OVERHEAD = 0.15


@dataclass(frozen=True)
class Cell:
    """One measured (target, mode, concurrency) combination."""

    target: str
    concurrency: int
    stream: bool
    wrk: WrkResult
    server_cpu_s: float
    core_busy: Mapping[int, float]
    other_load: Mapping[int, float]  # busy % of each core not spent by the bench's processes
    warmup_requests: int = 0

    @property
    def mode(self) -> str:
        return "stream" if self.stream else "json"

    @property
    def cpu_ms_per_request(self) -> float | None:
        return 1000 * self.server_cpu_s / self.wrk.requests if self.wrk.requests else None

    @property
    def server_cpu_percent(self) -> float:
        return 100 * self.server_cpu_s / self.wrk.duration_s if self.wrk.duration_s else 0.0


@dataclass(frozen=True)
class Verdict:
    """One target of the issue: what was asked, what was measured, whether it passed."""

    name: str
    measured: str
    passed: bool | None  # None: not measured


def _baseline(cells: Sequence[Cell], cell: Cell) -> Cell | None:
    for other in cells:
        if (other.target, other.concurrency, other.stream) == (
            "direct",
            cell.concurrency,
            cell.stream,
        ):
            return other
    return None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(cells: Sequence[Cell], peak_rss: Mapping[str, float]) -> str:
    """The results table; added latency is against the ``direct`` cell of the same shape."""
    header = (
        "| target | mode | conc | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| server CPU ms/req | server CPU % | core0 % | core1 % | other load % "
        "| peak RSS MB | errors |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for cell in cells:
        base = None if cell.target == "direct" else _baseline(cells, cell)
        added_p50 = cell.wrk.p50_ms - base.wrk.p50_ms if base else None
        added_p99 = cell.wrk.p99_ms - base.wrk.p99_ms if base else None
        row = [
            cell.target,
            cell.mode,
            str(cell.concurrency),
            _fmt(cell.wrk.requests_per_s, 0),
            _fmt(cell.wrk.p50_ms, 3),
            _fmt(cell.wrk.p99_ms, 3),
            _fmt(added_p50, 3),
            _fmt(added_p99, 3),
            _fmt(cell.cpu_ms_per_request, 3),
            _fmt(cell.server_cpu_percent, 0),
            _fmt(cell.core_busy.get(0), 0),
            _fmt(cell.core_busy.get(1), 0),
            _fmt(max(cell.other_load.values(), default=None), 0),
            _fmt(peak_rss.get(cell.target), 1),
            str(cell.wrk.errors),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def verdicts(cells: Sequence[Cell], peak_rss: Mapping[str, float]) -> list[Verdict]:
    """The issue's three gateway targets, judged on the ``llmplane`` cells."""
    gateway = [c for c in cells if c.target == "llmplane" and not c.stream and not c.wrk.errors]
    result: list[Verdict] = []
    if gateway:
        best = max(gateway, key=lambda c: c.wrk.requests_per_s)
        rps = best.wrk.requests_per_s
        result.append(
            Verdict(
                f"≥ {MIN_REQUESTS_PER_S:,.0f} non-streaming req/s",
                f"{rps:,.0f} req/s (concurrency {best.concurrency})",
                rps >= MIN_REQUESTS_PER_S,
            )
        )
    else:
        result.append(Verdict(f"≥ {MIN_REQUESTS_PER_S:,.0f} non-streaming req/s", "–", None))
    one = next((c for c in gateway if c.concurrency == 1), None)
    base = _baseline(cells, one) if one else None
    if one and base:
        added = one.wrk.p50_ms - base.wrk.p50_ms
        result.append(
            Verdict(
                f"added p50 at concurrency 1 < {MAX_ADDED_P50_MS:g} ms",
                f"{added:.3f} ms ({one.wrk.p50_ms:.3f} − {base.wrk.p50_ms:.3f})",
                added < MAX_ADDED_P50_MS,
            )
        )
    else:
        result.append(Verdict(f"added p50 at concurrency 1 < {MAX_ADDED_P50_MS:g} ms", "–", None))
    rss = peak_rss.get("llmplane")
    result.append(
        Verdict(
            f"gateway peak RSS < {MAX_PEAK_RSS_MB:g} MB",
            "–" if rss is None else f"{rss:.1f} MB",
            None if rss is None else rss < MAX_PEAK_RSS_MB,
        )
    )
    return result


def verdict_table(items: Sequence[Verdict]) -> str:
    """The targets as a small Markdown table with PASS / FAIL / not measured."""
    lines = ["| target | measured | result |", "|---|---|---|"]
    for item in items:
        mark = {True: "PASS", False: "FAIL", None: "not measured"}[item.passed]
        lines.append(f"| {item.name} | {item.measured} | {mark} |")
    return "\n".join(lines)


def cpu_summary(cells: Sequence[Cell]) -> list[str]:
    """Median CPU per request of each proxy over its non-streaming cells."""
    lines: list[str] = []
    for name in (
        "llmplane-no-telemetry",
        "llmplane-metrics-only",
        "llmplane",
        "llmplane+tracing",
        "llmplane+limits",
        "llmplane+redis",
        "litellm",
    ):
        values = sorted(
            v
            for c in cells
            if c.target == name and not c.stream and (v := c.cpu_ms_per_request) is not None
        )
        if values:
            median = values[len(values) // 2]
            lines.append(
                f"- {name}: {median:.3f} ms CPU per non-streaming request (median of cells)"
            )
    return lines


def telemetry_overhead(cells: Sequence[Cell]) -> list[str]:
    """What telemetry adds to llmplane's CPU per request, cell by cell, next to the same
    gateway with telemetry off: metrics alone, the default (metrics and request log
    lines), the default with spans exported over OTLP, and the default with a team storing
    full or redacted request logs. The issue's target (metrics and traces): under 15 %."""
    by_target = {
        (c.target, c.concurrency, c.stream): c.cpu_ms_per_request
        for c in cells
        if c.cpu_ms_per_request
    }
    variants = [
        t
        for t in (
            "llmplane-metrics-only",
            "llmplane",
            "llmplane+tracing",
            "llmplane-logs-full",
            "llmplane-logs-redacted",
        )
        if any(c.target == t for c in cells)
    ]
    rows: list[str] = []
    ratios: dict[str, list[float]] = {t: [] for t in variants}
    for cell in cells:
        if cell.target != "llmplane-no-telemetry" or not cell.cpu_ms_per_request:
            continue
        base = cell.cpu_ms_per_request
        columns = [f"{base:.3f}"]
        for variant in variants:
            on = by_target.get((variant, cell.concurrency, cell.stream))
            if on is None:
                columns.append("–")
                continue
            ratios[variant].append(on / base - 1)
            columns.append(f"{on:.3f} ({ratios[variant][-1]:+.1%})")
        rows.append(f"| {cell.mode} c={cell.concurrency} | {' | '.join(columns)} |")
    if not rows or not any(ratios.values()):
        return []
    lines = [
        "",
        "## Telemetry overhead (server CPU ms per request)",
        "",
        f"| cell | telemetry off | {' | '.join(variants)} |",
        f"|---|---|{'---|' * len(variants)}",
        *rows,
        "",
    ]
    for variant, values in ratios.items():
        if values:
            median = sorted(values)[len(values) // 2]
            if "-logs-" in variant:  # a team's opt-in, not the default telemetry
                lines.append(f"- {variant}: median overhead {median:+.1%}")
                continue
            mark = "PASS" if median < MAX_TELEMETRY_OVERHEAD else "FAIL"
            lines.append(
                f"- {variant}: median overhead {median:+.1%} "
                f"(target < {MAX_TELEMETRY_OVERHEAD:.0%}): {mark}"
            )
    return lines


def noise_warning(cells: Sequence[Cell], threshold: float = 10.0) -> list[str]:
    """A warning naming the cells during which other processes used a pinned core."""
    noisy = [c for c in cells if max(c.other_load.values(), default=0.0) > threshold]
    if not noisy:
        return []
    names = ", ".join(
        f"{c.target}/{c.mode}/c={c.concurrency} ({max(c.other_load.values()):.0f}%)" for c in noisy
    )
    return [
        f"other processes used more than {threshold:g}% of a pinned core during: {names}; "
        "latency and req/s of those cells are noisy (CPU ms/req much less so)"
    ]
