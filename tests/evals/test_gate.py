"""The promotion gate over stored runs on SQLite and PostgreSQL: whose runs count, the
comparison it requires, --allow-regression and the maximum age of a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from llmplane import prompts
from llmplane.accounting.keys import Principal
from llmplane.evals import runs
from llmplane.evals.gate import SuiteGate
from llmplane.prompts import GateRefusedError, PromptContent
from llmplane.prompts.gates import set_gate
from llmplane.store.tables import eval_runs

ADMIN = Principal("admin", "admin", is_admin=True)
A_ADMIN = Principal("key-a", "a", team_id="team-a", role="team_admin")
B_MEMBER = Principal("key-b", "b", team_id="team-b")
GATES = (SuiteGate(),)


def _finished(engine: Engine, who: Principal, prompt: str, summary: dict[str, Any]) -> str:
    new = runs.NewRun("qa", "f" * 64, "prompt", ["mock"], 1, 1, prompt=prompt)
    run_id = str(runs.create_run(engine, who, new)["id"])
    runs.finish_run(engine, who, run_id, "finished", summary)
    return run_id


def _summary(against: str | None, *, regressed: bool = False, pass_rate: float = 1.0) -> Any:
    summary: dict[str, Any] = {
        "thresholds": [
            {"metric": "m.pass_rate", "min": 0.8, "value": pass_rate, "passed": pass_rate >= 0.8}
        ],
        "verdict": {"passed": pass_rate >= 0.8 and not regressed, "reasons": []},
    }
    if against is not None:
        summary["comparison"] = {
            "baseline_prompt": against,
            "regressions": ["m"] if regressed else [],
            "metrics": {"m": {"delta": -0.3, "regression": regressed}},
        }
    return summary


@pytest.fixture
def gated(engine: Engine) -> str:
    for text in ("one", "two", "three"):
        content = PromptContent.parse({"template": f"{text} {{{{ x }}}}", "variables": {"x": {}}})
        prompts.create_version(engine, A_ADMIN, "p", content)
    prompts.set_label(engine, A_ADMIN, "p", "production", 1)
    set_gate(engine, A_ADMIN, "p", "production", "qa")
    return "p"


def _refusal(engine: Engine, version: int) -> dict[str, Any]:
    with pytest.raises(GateRefusedError) as refused:
        prompts.set_label(engine, A_ADMIN, "p", "production", version, gates=GATES)
    return refused.value.evidence


def test_only_runs_of_the_prompts_team_or_the_admin_key_compared_with_the_label_count(
    engine: Engine, gated: str
) -> None:
    _finished(engine, B_MEMBER, "p@2", _summary("p@1"))  # another team's run
    _finished(engine, A_ADMIN, "p@2", _summary("p@3"))  # compared with the wrong version
    _finished(engine, A_ADMIN, "p@2", _summary(None))  # not compared at all
    evidence = _refusal(engine, 2)
    assert evidence["run_id"] is None and "--baseline prompt:p@1" in evidence["command"]
    bad = _finished(engine, A_ADMIN, "p@2", _summary("p@1", regressed=True))
    evidence = _refusal(engine, 2)
    assert evidence["run_id"] == bad and evidence["regressions"][0]["metric"] == "m"
    _finished(engine, ADMIN, "p@2", _summary("p@1"))  # the newest one counts
    move = prompts.set_label(engine, A_ADMIN, "p", "production", 2, gates=GATES)
    assert move is not None and move.action == "set"


def test_allow_regression_counts_thresholds_only_and_old_runs_expire(
    engine: Engine, gated: str
) -> None:
    set_gate(engine, A_ADMIN, "p", "production", "qa", require_no_regression=False)
    low = _finished(engine, A_ADMIN, "p@3", _summary(None, pass_rate=0.5))
    evidence = _refusal(engine, 3)
    assert evidence["failed_thresholds"][0]["metric"] == "m.pass_rate"
    regressed = _finished(engine, A_ADMIN, "p@3", _summary("p@1", regressed=True))
    set_gate(engine, A_ADMIN, "p", "production", "qa", require_no_regression=False,
             max_age_days=7)  # fmt: skip
    with engine.begin() as connection:
        old = datetime.now(UTC) - timedelta(days=8)
        connection.execute(
            update(eval_runs).where(eval_runs.c.id == regressed).values(finished_at=old)
        )
    assert _refusal(engine, 3)["run_id"] == low  # too old: the older failing one answers
    with engine.begin() as connection:
        connection.execute(
            update(eval_runs)
            .where(eval_runs.c.id == regressed)
            .values(finished_at=datetime.now(UTC))
        )
    move = prompts.set_label(engine, A_ADMIN, "p", "production", 3, gates=GATES)
    assert move is not None and move.to_version == 3
