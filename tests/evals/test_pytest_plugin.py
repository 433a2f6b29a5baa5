"""The pytest plugin: a suite YAML collected as a test, and the ``llmplane_eval`` fixture,
run by a real ``pytest`` subprocess against a real gateway, score exactly as the same
suite run from YAML and from Python objects; a failing suite says what it missed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from llmplane.evals.client import HarnessClient
from llmplane.evals.harness import EvalOptions, run_eval
from llmplane.evals.pytest_plugin import is_suite_file
from llmplane.evals.suite import Message, ScorerSpec, Suite, Target, load_suite
from tests.helpers import ADMIN_KEY, GatewayProcess, http

ROOT = Path(__file__).resolve().parents[2]

_SUITE = {
    "name": "plugin-suite",
    "dataset": "cases.jsonl",
    "target": {"messages": [{"role": "user", "content": "on {{ topic }}"}], "model": "mock"},
    "scorers": [{"name": "mentions", "scorer": "contains"}],
}

_PYTHON_TEST = """
from pathlib import Path

from llmplane.evals import Message, ScorerSpec, Suite, Target


def test_in_python(llmplane_eval):
    suite = Suite(
        name="plugin-suite",
        dataset=Path(__file__).parent / "cases.jsonl",
        target=Target(messages=[Message(role="user", content="on {{ topic }}")], model="mock"),
        scorers=[ScorerSpec(name="mentions", scorer="contains")],
    )
    report = llmplane_eval(suite)
    assert report.summary["metrics"]["mentions"]["pass_rate"] == 5 / 6
"""


def _write_project(tmp: Path) -> None:
    lines = [{"input": {"topic": f"topic{i}"}, "expected": f"topic{i}"} for i in range(6)]
    lines[0]["expected"] = "never said"
    (tmp / "cases.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (tmp / "eval_support.yaml").write_text(yaml.safe_dump(_SUITE))
    strict = {**_SUITE, "name": "plugin-strict", "thresholds": {"mentions": {"pass_rate": 0.9}}}
    (tmp / "strict.eval.yaml").write_text(yaml.safe_dump(strict))
    (tmp / "not_a_suite.yaml").write_text("just: data\n")
    (tmp / "test_python_suite.py").write_text(_PYTHON_TEST)


def _pytest_args() -> list[str]:
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:phoenix"]
    if "llmplane-evals" not in {e.name for e in entry_points(group="pytest11")}:
        args += ["-p", "llmplane.evals.pytest_plugin"]  # this tree's plugin, not installed yet
    return args


def _pytest(tmp: Path, url: str) -> subprocess.CompletedProcess[str]:
    args = _pytest_args()
    args += ["--junitxml", str(tmp / "junit.xml"), "--llmplane-url", url]
    args += ["--llmplane-baseline", "none", "--llmplane-no-cache", "-o", "asyncio_mode=strict"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "LLMPLANE_API_KEY": ADMIN_KEY,  # from the environment, as in CI
    }
    env.pop("LLMPLANE_URL", None)
    return subprocess.run(
        args, cwd=tmp, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _run_ids(junit: Path) -> dict[str, str]:
    found = {}
    for case in ET.parse(junit).iter("testcase"):  # noqa: S314 - our own pytest's file
        for prop in case.iter("property"):
            if prop.get("name") == "llmplane_run":
                found[case.get("name", "")] = prop.get("value", "")
    return found


def _stored_scores(gateway: GatewayProcess, run_id: str) -> dict[str, Any]:
    status, _, run = http("GET", f"{gateway.url}/admin/evals/runs/{run_id}")
    assert status == 200
    return {c["case_id"]: (c["output"], c["scores"]) for c in run["cases"]}


async def test_yaml_python_and_the_pytest_plugin_give_identical_scores(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    _write_project(tmp_path)
    in_python = Suite(
        name="plugin-suite",
        dataset=tmp_path / "cases.jsonl",
        target=Target(messages=[Message(role="user", content="on {{ topic }}")], model="mock"),
        scorers=[ScorerSpec(name="mentions", scorer="contains")],
    )
    from_yaml = load_suite(tmp_path / "eval_support.yaml")
    options = EvalOptions(baseline=None, use_cache=False)
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        python_report = await run_eval(in_python, client, options)
    async with HarnessClient(gateway.url, ADMIN_KEY) as client:
        yaml_report = await run_eval(from_yaml, client, options)

    done = await asyncio.to_thread(_pytest, tmp_path, gateway.url)

    assert done.returncode == 1, done.stdout + done.stderr  # the strict suite fails
    assert "1 failed, 2 passed" in done.stdout, done.stdout
    # the failure names the missed threshold with its value, not a traceback
    assert "eval suite 'plugin-strict' failed" in done.stdout
    assert "mentions.pass_rate 0.833 < 0.9" in done.stdout
    assert "Traceback" not in done.stdout
    ids = _run_ids(tmp_path / "junit.xml")
    assert set(ids) == {"plugin-suite", "plugin-strict", "test_in_python"}

    expected = {r.case_id: (r.output, r.scores) for r in python_report.results}
    assert len(expected) == 6
    assert {r.case_id: (r.output, r.scores) for r in yaml_report.results} == expected
    for name in ("plugin-suite", "test_in_python", "plugin-strict"):
        assert _stored_scores(gateway, ids[name]) == expected, name
    _, _, run = http("GET", f"{gateway.url}/admin/evals/runs/{ids['plugin-suite']}")
    assert run["summary"]["metrics"] == python_report.summary["metrics"]
    assert run["suite_fingerprint"] == python_report.run["suite_fingerprint"]


def test_suite_files_are_recognised_by_name() -> None:
    for name in ("eval_support.yaml", "eval_x.yml", "support.eval.yaml", "a.b.eval.yml"):
        assert is_suite_file(Path(name)), name
    for name in ("support.yaml", "evaluation.yaml", "eval_support.json", "myeval.yaml"):
        assert not is_suite_file(Path(name)), name


def test_without_a_gateway_the_run_is_refused_with_what_to_set(tmp_path: Path) -> None:
    _write_project(tmp_path)
    (tmp_path / "test_python_suite.py").unlink()
    args = _pytest_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("LLMPLANE_URL", None)
    env.pop("LLMPLANE_API_KEY", None)
    done = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "--llmplane-url and --llmplane-key" in done.stdout + done.stderr


def test_a_regression_failure_names_the_metric_its_interval_and_the_cases() -> None:
    from llmplane.evals.harness import EvalReport
    from llmplane.evals.pytest_plugin import failure_text

    suite = Suite(
        name="support",
        dataset=Path("cases.jsonl"),
        target=Target(messages=[Message(role="user", content="x")], model="mock"),
        scorers=[ScorerSpec(name="mentions", scorer="contains")],
    )
    summary = {
        "metrics": {"mentions": {"mean": 0.7, "pass_rate": 0.7, "n": 10}},
        "comparison": {
            "baseline_run_id": "evr_base",
            "metrics": {
                "mentions": {
                    "mean_baseline": 0.95,
                    "mean": 0.7,
                    "ci": [-0.4, -0.1],
                    "mcnemar_p": 0.0123,
                }
            },
            "regressions": ["mentions"],
            "newly_failing": [{"case_id": "c3", "model": "mock", "scorer": "mentions"}],
        },
        "verdict": {"passed": False, "reasons": ["mentions regressed significantly"]},
    }
    report = EvalReport(suite, {"id": "evr_new"}, [], summary, None)
    text = failure_text(report)
    assert "eval suite 'support' failed (run evr_new)" in text
    assert "  - mentions regressed significantly" in text
    assert "mentions against evr_base: mean 0.950 -> 0.700" in text
    assert "-0.400 to -0.100), McNemar p=0.0123" in text
    assert "newly failing: c3 (mentions)" in text


def test_a_broken_suite_file_is_a_collection_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "eval_broken.yaml").write_text(yaml.safe_dump({**_SUITE, "target": {}}))
    args = _pytest_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stdout
    assert "eval_broken.yaml: target: " in done.stdout
    assert "Traceback" not in done.stdout
