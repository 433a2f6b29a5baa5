"""A run's metrics, its thresholds and its comparison with a baseline run.

Each scorer gives two metrics: ``mean`` (of its values) and ``pass_rate``. Comparison
pairs the results of both runs by (case, model): a unit's value is the mean over its
repetitions and it passes when most of its repetitions pass. The numeric delta gets a
paired bootstrap confidence interval; pass/fail gets McNemar's test. A significant
regression is a CI entirely below 0, or McNemar significant with more newly failing
than newly passing units. ``pass^k`` and flaky units (repetitions that disagree) come
from the repetitions of the run itself.

The statistics are :mod:`llmplane.evals.stats`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from llmplane.evals import stats
from llmplane.evals.runner import CaseResult
from llmplane.evals.suite import Suite

Unit = tuple[str, str]  # (case id, model)


def _units(results: Sequence[CaseResult], scorer: str) -> dict[Unit, list[tuple[float, bool]]]:
    units: dict[Unit, list[tuple[float, bool]]] = defaultdict(list)
    for result in sorted(results, key=lambda r: r.repetition):
        score = result.scores.get(scorer)
        if score is not None and not score.get("error"):
            units[(result.case_id, result.model)].append((score["value"], score["passed"]))
    return units


def metrics(results: Sequence[CaseResult], scorer_names: Sequence[str]) -> dict[str, Any]:
    """``{scorer: {mean, pass_rate, n, errors}}`` over every result whose score is not a
    scorer error (those are counted in ``errors``)."""
    table: dict[str, Any] = {}
    for name in scorer_names:
        every = [r.scores[name] for r in results if name in r.scores]
        scores = [s for s in every if not s.get("error")]
        n = len(scores)
        table[name] = {
            "mean": sum(s["value"] for s in scores) / n if n else 0.0,
            "pass_rate": sum(1 for s in scores if s["passed"]) / n if n else 0.0,
            "n": n,
            "errors": len(every) - n,
        }
    return table


def check_thresholds(suite: Suite, table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each threshold of the suite with the run's value and whether it holds."""
    checks = []
    for scorer, limits in suite.thresholds.items():
        for metric, minimum in limits.items():
            value = table[scorer][metric]
            checks.append(
                {
                    "metric": f"{scorer}.{metric}",
                    "min": minimum,
                    "value": value,
                    "passed": value >= minimum,
                }
            )
    return checks


def repetition_report(
    results: Sequence[CaseResult], scorer_names: Sequence[str], repetitions: int
) -> dict[str, Any]:
    """``pass^k`` per scorer (k = repetitions) and the flaky units."""
    pass_k: dict[str, float] = {}
    flaky: list[dict[str, Any]] = []
    for name in scorer_names:
        units = _units(results, name)
        runs = [[passed for _, passed in reps] for reps in units.values()]
        if repetitions > 1 and runs:
            pass_k[name] = float(stats.pass_hat_k(runs, repetitions))
        for (case_id, model), reps in units.items():
            passes = [passed for _, passed in reps]
            if len(passes) > 1 and stats.flaky(passes):
                flaky.append({"case_id": case_id, "model": model, "scorer": name, "passes": passes})
    return {"pass_hat_k": pass_k, "flaky": flaky}


def compare(
    results: Sequence[CaseResult],
    baseline: Sequence[CaseResult],
    scorer_names: Sequence[str],
) -> dict[str, Any]:
    """Per-metric deltas with paired statistics and per-case diffs against ``baseline``."""
    report: dict[str, Any] = {"metrics": {}, "newly_failing": [], "newly_passing": []}
    for name in scorer_names:
        now, before = _units(results, name), _units(baseline, name)
        if not any(unit in before for unit in now):  # e.g. the models changed: by case alone
            now = {(c, ""): v for (c, _), v in now.items()}
            before = {(c, ""): v for (c, _), v in before.items()}
        shared = sorted(unit for unit in now if unit in before)
        if not shared:
            report["metrics"][name] = {"paired": 0}
            continue

        def value(reps: list[tuple[float, bool]]) -> float:
            return sum(v for v, _ in reps) / len(reps)

        def passed(reps: list[tuple[float, bool]]) -> bool:
            return sum(1 for _, p in reps if p) * 2 > len(reps)

        delta = stats.paired_bootstrap(
            [value(before[u]) for u in shared], [value(now[u]) for u in shared]
        )
        test = stats.mcnemar([passed(before[u]) for u in shared], [passed(now[u]) for u in shared])
        failing = [u for u in shared if passed(before[u]) and not passed(now[u])]
        passing = [u for u in shared if not passed(before[u]) and passed(now[u])]
        numeric_regression = bool(delta.significant) and delta.high < 0
        pass_regression = bool(test.significant) and len(failing) > len(passing)
        report["metrics"][name] = {
            "paired": len(shared),
            "mean_baseline": delta.mean_baseline,
            "mean": delta.mean_candidate,
            "delta": delta.delta,
            "ci": [delta.low, delta.high],
            "pass_rate_baseline": sum(passed(before[u]) for u in shared) / len(shared),
            "pass_rate": sum(passed(now[u]) for u in shared) / len(shared),
            "mcnemar_p": test.p_value,
            "newly_failing": len(failing),
            "newly_passing": len(passing),
            "regression": numeric_regression or pass_regression,
        }
        report["newly_failing"] += [{"case_id": c, "model": m, "scorer": name} for c, m in failing]
        report["newly_passing"] += [{"case_id": c, "model": m, "scorer": name} for c, m in passing]
    report["regressions"] = [n for n, m in report["metrics"].items() if m.get("regression")]
    return report
