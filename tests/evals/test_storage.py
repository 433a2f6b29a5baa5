"""Stored runs on SQLite and PostgreSQL: idempotent case results, visibility by team,
blessing, baselines and the output cache."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from llmplane.evals import runs

ADMIN = Principal("admin", "admin", is_admin=True)
TEAM_A = Principal("key-a", "a", team_id="team-a")
TEAM_A_ADMIN = Principal("key-a2", "a2", team_id="team-a", role="team_admin")
TEAM_B = Principal("key-b", "b", team_id="team-b")


def _run(engine: Engine, who: Principal, branch: str = "main") -> str:
    new = runs.NewRun("qa", "f" * 64, "messages", ["mock"], 1, 2, git_branch=branch)
    return str(runs.create_run(engine, who, new)["id"])


def _case(case_id: str, output: str, key: str, error: str | None = None) -> dict[str, object]:
    score = {"value": 1.0, "passed": True, "explanation": "ok", "details": None}
    return {
        "case_id": case_id,
        "model": "mock",
        "repetition": 0,
        "output": output,
        "scores": {"contains": score},
        "cost_usd": 0.5,
        "latency_ms": 3.0,
        "error": error,
        "cached": False,
        "cache_key": key,
    }


def test_results_are_stored_once_and_counted_in_the_cost(engine: Engine) -> None:
    run_id = _run(engine, TEAM_A)
    assert runs.add_cases(engine, TEAM_A, run_id, [_case("c1", "x", "k1")]) == 1
    # A resumed run re-sending a stored result does not duplicate it nor its cost.
    assert (
        runs.add_cases(engine, TEAM_A, run_id, [_case("c1", "y", "k1"), _case("c2", "z", "k2")])
        == 1
    )
    run = runs.get_run(engine, TEAM_A, run_id)
    assert [c["output"] for c in run["cases"]] == ["x", "z"]
    assert run["cost_usd"] == pytest.approx(1.0)
    runs.finish_run(engine, TEAM_A, run_id, "finished", {"verdict": {"passed": True}})
    with pytest.raises(InvalidRequestError):  # closed: resume it first
        runs.add_cases(engine, TEAM_A, run_id, [_case("c3", "z", "k3")])
    runs.reopen_run(engine, TEAM_A, run_id)
    assert runs.add_cases(engine, TEAM_A, run_id, [_case("c3", "z", "k3")]) == 1


def test_a_team_sees_only_its_runs(engine: Engine) -> None:
    mine, theirs = _run(engine, TEAM_A), _run(engine, TEAM_B)
    assert {r["id"] for r in runs.list_runs(engine, TEAM_A)} == {mine}
    assert {r["id"] for r in runs.list_runs(engine, ADMIN)} >= {mine, theirs}
    # Another team's run is answered as missing: its id is not confirmed.
    with pytest.raises(NotFoundError):
        runs.get_run(engine, TEAM_A, theirs)
    with pytest.raises(NotFoundError):
        runs.add_cases(engine, TEAM_A, theirs, [_case("c1", "x", "k")])


def test_the_cache_serves_only_the_teams_own_outputs_without_errors(engine: Engine) -> None:
    run_a, run_b = _run(engine, TEAM_A), _run(engine, TEAM_B)
    runs.add_cases(
        engine, TEAM_A, run_a, [_case("c1", "from a", "k1"), _case("c2", "", "k2", "boom")]
    )
    runs.add_cases(engine, TEAM_B, run_b, [_case("c1", "from b", "k3")])
    hits = runs.cached_outputs(engine, TEAM_A, ["k1", "k2", "k3"])
    assert set(hits) == {"k1"}
    assert hits["k1"]["output"] == "from a" and hits["k1"]["cost_usd"] == pytest.approx(0.5)


def test_the_baseline_is_the_blessed_run_else_the_last_finished_on_main(engine: Engine) -> None:
    assert runs.baseline_run(engine, TEAM_A, "qa") is None
    first, second, branch = (
        _run(engine, TEAM_A),
        _run(engine, TEAM_A),
        _run(engine, TEAM_A, "feature"),
    )
    for run_id in (first, second, branch):
        runs.finish_run(engine, TEAM_A, run_id, "finished", None)
    found = runs.baseline_run(engine, TEAM_A, "qa")
    assert found is not None and found["id"] == second
    with pytest.raises(PermissionDeniedError):  # a plain key may not bless
        runs.bless_run(engine, TEAM_A, first)
    runs.bless_run(engine, TEAM_A_ADMIN, first)
    found = runs.baseline_run(engine, TEAM_A, "qa")
    assert found is not None and found["id"] == first and found["blessed"]
    runs.bless_run(engine, TEAM_A_ADMIN, branch)  # one blessed run per suite
    assert [r["id"] for r in runs.list_runs(engine, TEAM_A) if r["blessed"]] == [branch]
    assert runs.baseline_run(engine, TEAM_B, "qa") is None


def test_a_gate_finds_the_run_of_a_prompt_version_compared_with_the_labels(engine: Engine) -> None:
    def finished(prompt: str, baseline_prompt: str | None, passed: bool) -> str:
        new = runs.NewRun("qa", "f" * 64, "prompt:p@2", ["mock"], 1, 2, prompt=prompt)
        run_id = str(runs.create_run(engine, TEAM_A, new)["id"])
        summary = {
            "verdict": {"passed": passed},
            "comparison": {"baseline_prompt": baseline_prompt},
        }
        runs.finish_run(engine, TEAM_A, run_id, "finished", summary)
        return run_id

    assert runs.gate_run(engine, TEAM_A, "qa", "p@2", "p@1") is None
    on_v1 = finished("p@1", None, True)
    against_v1 = finished("p@2", "p@1", False)
    finished("p@2", None, True)  # newer, but not compared with the label's version
    found = runs.gate_run(engine, TEAM_A, "qa", "p@2", "p@1")
    assert found is not None and found["id"] == against_v1
    assert not found["summary"]["verdict"]["passed"]
    baseline = runs.baseline_run(engine, TEAM_A, "qa", prompt="p@1")
    assert baseline is not None and baseline["id"] == on_v1
    assert runs.gate_run(engine, TEAM_B, "qa", "p@2", "p@1") is None
