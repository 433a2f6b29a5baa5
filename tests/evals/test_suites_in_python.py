"""The same suite from YAML and as Python objects runs identically; Python pipelines and
model matrices (in-process harness, real gateway)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmplane.evals.client import HarnessClient
from llmplane.evals.harness import EvalOptions, run_eval
from llmplane.evals.report import markdown
from llmplane.evals.suite import Message, ScorerSpec, Suite, Target, load_suite
from tests.helpers import ADMIN_KEY, GatewayProcess

SCORER = "tests.evals.scorers_for_tests:Contains"


def _dataset(tmp: Path, n: int = 6) -> Path:
    path = tmp / "cases.jsonl"
    lines = [{"input": {"topic": f"topic{i}"}, "expected": f"topic{i}"} for i in range(n)]
    lines[0]["expected"] = "never said"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def test_yaml_and_python_suites_give_identical_scores(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    dataset = _dataset(tmp_path)
    in_python = Suite(
        name="same-suite",
        dataset=dataset,
        target=Target(messages=[Message(role="user", content="on {{ topic }}")], model="mock"),
        scorers=[ScorerSpec(name="mentions", scorer=SCORER)],
    )
    yaml_path = tmp_path / "suite.yaml"
    yaml_path.write_text(
        yaml.safe_dump(
            {
                "name": "same-suite",
                "dataset": "cases.jsonl",
                "target": {
                    "messages": [{"role": "user", "content": "on {{ topic }}"}],
                    "model": "mock",
                },
                "scorers": [{"name": "mentions", "scorer": SCORER}],
            }
        )
    )
    from_yaml = load_suite(yaml_path)
    assert from_yaml.fingerprint(dataset.read_bytes()) == in_python.fingerprint(
        dataset.read_bytes()
    )
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        first = await run_eval(in_python, client, EvalOptions(baseline=None, use_cache=False))
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        second = await run_eval(from_yaml, client, EvalOptions(baseline=None, use_cache=False))

    def scores(report: object) -> dict[str, object]:
        return {r.case_id: (r.output, r.scores) for r in report.results}  # type: ignore[attr-defined]

    assert scores(first) == scores(second)
    assert first.summary["metrics"] == second.summary["metrics"]
    assert first.summary["metrics"]["mentions"]["pass_rate"] == 5 / 6
    assert first.run["suite_fingerprint"] == second.run["suite_fingerprint"]


async def test_a_python_pipeline_is_run_scored_and_charged(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    dataset = _dataset(tmp_path, 3)
    suite = Suite(
        name="pipeline",
        dataset=dataset,
        target=Target(python="tests.evals.pipelines_for_tests:answer"),
        scorers=[ScorerSpec(name="mentions", scorer=SCORER)],
    )
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        report = await run_eval(suite, client, EvalOptions(baseline=None))
    outputs = {r.case_id: r for r in report.results}
    assert len(outputs) == 3
    result = next(r for r in report.results if r.scores["mentions"]["passed"])
    assert result.output is not None and result.output.startswith("This is a mock reply to: final")
    assert result.cost_usd > 0 and not result.cached  # two calls, both charged to the case
    assert report.run["cost_usd"] > 0

    broken = suite.model_copy(
        update={"target": Target(python="tests.evals.pipelines_for_tests:broken")}
    )
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        report = await run_eval(broken, client, EvalOptions(baseline=None))
    errors = {r.case_id: r.error for r in report.results if r.error}
    assert list(errors.values()) == ["KeyError: 'no retriever'"]
    assert report.summary["errors"] == 1 and report.run["status"] == "finished"


async def test_a_model_matrix_runs_every_case_on_every_model(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    suite = Suite(
        name="matrix",
        dataset=_dataset(tmp_path, 3),
        target=Target(
            messages=[Message(role="user", content="{{ topic }}")], models=["mock", "sim"]
        ),
        scorers=[ScorerSpec(name="mentions", scorer=SCORER)],
        repetitions=2,
    )
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        report = await run_eval(suite, client, EvalOptions(baseline=None, use_cache=False))
    assert report.run["models"] == ["mock", "sim"]
    assert sorted({(r.model, r.repetition) for r in report.results}) == [
        ("mock", 0),
        ("mock", 1),
        ("sim", 0),
        ("sim", 1),
    ]
    assert len(report.results) == 12


async def test_repetitions_that_disagree_flag_a_flaky_case(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        "".join(
            json.dumps({"topic": f"topic{i}", "expected": f"topic{i}"}) + "\n" for i in range(4)
        )
    )
    suite = Suite(
        name="flaky",
        dataset=path,
        target=Target(python="tests.evals.pipelines_for_tests:alternating"),
        scorers=[ScorerSpec(name="mentions", scorer=SCORER)],
        repetitions=4,
        concurrency=1,
    )
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        report = await run_eval(suite, client, EvalOptions(baseline=None))
    flaky = report.summary["repetitions"]["flaky"]
    assert [f["passes"] for f in flaky] == [[True, False, True, False]]
    assert report.summary["repetitions"]["pass_hat_k"]["mentions"] == pytest.approx(0.75)
    assert "**Flaky** (repetitions disagree, 1)" in markdown(report)
