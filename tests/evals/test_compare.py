"""Scores that are a scorer's error (it raised, or a judge's answers could not be read) are
stored but kept out of the metrics and the comparison: a judge's trouble is not the
target's regression."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from llmplane.evals.compare import compare, metrics
from llmplane.evals.runner import CaseResult, score_output
from llmplane.evals.scoring import Case, CaseOutput, Score


def _result(case: str, value: float, passed: bool, error: bool = False) -> CaseResult:
    score: dict[str, Any] = {"value": value, "passed": passed, "explanation": "", "details": None}
    if error:
        score["error"] = True
    return CaseResult(case, "m", 0, "out", {"judge": score})


class UnreadableJudge:
    name = "llm_judge"

    async def score(self, case: Case, output: CaseOutput, context: Any) -> Score:
        return Score(0.0, False, "the judge's answers were unreadable", {"unreadable": True})


class BrokenScorer:
    name = "broken"

    async def score(self, case: Case, output: CaseOutput, context: Any) -> Score:
        raise RuntimeError("judge model unreachable")


def test_scorer_errors_are_marked_and_never_pass() -> None:
    scorers: Mapping[str, tuple[Any, float | None]] = {
        "judge": (UnreadableJudge(), None),
        "broken": (BrokenScorer(), 0.0),  # a threshold of 0 would pass a value of 0
    }
    scores = asyncio.run(score_output(scorers, Case("c1", {}), CaseOutput("x"), None))  # type: ignore[arg-type]
    assert scores["judge"]["error"] is True and scores["judge"]["passed"] is False
    assert scores["broken"]["error"] is True and scores["broken"]["passed"] is False
    assert "judge model unreachable" in scores["broken"]["explanation"]


def test_errors_are_left_out_of_metrics_and_comparison() -> None:
    baseline = [_result(f"c{i}", 1.0, True) for i in range(40)]
    # The same answers, but the judge failed to read 15 of them.
    candidate = [_result(f"c{i}", 0.0, False, error=i < 15) for i in range(15)] + [
        _result(f"c{i}", 1.0, True) for i in range(15, 40)
    ]
    table = metrics(candidate, ["judge"])["judge"]
    assert table == {"mean": 1.0, "pass_rate": 1.0, "n": 25, "errors": 15}
    report = compare(candidate, baseline, ["judge"])
    assert report["metrics"]["judge"]["paired"] == 25
    assert report["regressions"] == [] and report["newly_failing"] == []
