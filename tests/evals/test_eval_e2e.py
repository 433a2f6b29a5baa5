"""``llmplane eval run`` end to end: a real gateway (the ``mock`` model echoes the prompt;
``sim`` is the upstream simulator), a real store, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, GatewayProcess, cli, http

SCORER = "contains"  # the built-in scorer: the output contains the case's expected text
TOPICS = [f"topic{i}" for i in range(30)]


def _suite(
    tmp: Path, name: str, target: dict[str, Any], cases: list[dict[str, Any]], **more: Any
) -> Path:
    (tmp / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    suite = {
        "name": name,
        "dataset": "cases.jsonl",
        "target": target,
        "scorers": [{"name": "mentions", "scorer": SCORER}],
        **more,
    }
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _cases(n: int = 10) -> list[dict[str, Any]]:
    return [
        {"id": f"case-{i}", "input": {"topic": TOPICS[i]}, "expected": TOPICS[i]} for i in range(n)
    ]


def _eval(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("eval", "run", *args, "--json", url=gateway.url, check=False)


def _ledger_rows(gateway: GatewayProcess, run_id: str, expect: int | None = None) -> int:
    deadline = time.monotonic() + 10
    while True:  # ledger rows are written in the background
        rows = gateway.sql(
            "SELECT tags FROM usage_ledger WHERE CAST(tags AS TEXT) LIKE :run", run=f"%{run_id}%"
        )
        if expect is None or len(rows) >= expect or time.monotonic() > deadline:
            return len(rows)
        time.sleep(0.1)


def test_a_yaml_suite_runs_stores_scores_and_a_rerun_hits_the_cache(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    target = {
        "messages": [{"role": "user", "content": "Tell me about {{ topic }}"}],
        "model": "mock",
    }
    suite = _suite(
        tmp_path, "e2e-basic", target, _cases(), thresholds={"mentions": {"pass_rate": 0.9}}
    )
    junit, summary = tmp_path / "out.xml", tmp_path / "out.md"
    done = _eval(gateway, str(suite), "--junit", str(junit), "--markdown", str(summary))
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "finished" and run["summary"]["metrics"]["mentions"]["pass_rate"] == 1.0
    assert run["cost_usd"] > 0 and run["summary"]["cached"] == 0
    # Every call went through the gateway, tagged as eval spend of this suite and run.
    assert _ledger_rows(gateway, run["id"], expect=10) == 10
    tags = gateway.sql(
        "SELECT tags FROM usage_ledger WHERE CAST(tags AS TEXT) LIKE :r", r=f"%{run['id']}%"
    )[0][0]
    tags = json.loads(tags) if isinstance(tags, str) else tags  # SQLite gives text
    assert tags == {"purpose": "eval", "eval_suite": "e2e-basic", "eval_run": run["id"]}
    stored = http("GET", f"{gateway.url}/admin/evals/runs/{run['id']}")[2]
    assert len(stored["cases"]) == 10
    first = stored["cases"][0]
    assert first["output"] == "This is a mock reply to: Tell me about topic0"
    assert first["scores"]["mentions"]["passed"] and first["latency_ms"] > 0

    tree = ET.fromstring(junit.read_text())  # noqa: S314 - our own file

    names = [c.get("name") for c in tree.iter("testcase")]
    assert "case-0 [mentions] mock" in names and "mentions.pass_rate" in names
    assert not list(tree.iter("failure"))
    assert "| mentions pass_rate | 100.0% |" in summary.read_text()

    again = _eval(gateway, str(suite), "--baseline", run["id"])
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["summary"]["cached"] == 10 and rerun["cost_usd"] == 0
    time.sleep(0.5)
    assert _ledger_rows(gateway, rerun["id"]) == 0  # the gateway was not called at all

    fresh = json.loads(_eval(gateway, str(suite), "--no-cache", "--baseline", "none").stdout)
    assert fresh["summary"]["cached"] == 0
    assert _ledger_rows(gateway, fresh["id"], expect=10) == 10


def test_a_threshold_miss_exits_1_and_bad_config_exits_2(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    cases = [{**c, "expected": "absent"} if i < 5 else c for i, c in enumerate(_cases())]
    target = {"messages": [{"role": "user", "content": "{{ topic }}"}], "model": "mock"}
    suite = _suite(
        tmp_path, "e2e-threshold", target, cases, thresholds={"mentions": {"pass_rate": 0.9}}
    )
    junit = tmp_path / "out.xml"
    done = _eval(gateway, str(suite), "--junit", str(junit))
    assert done.returncode == 1
    run = json.loads(done.stdout)
    assert run["summary"]["verdict"]["reasons"] == ["mentions.pass_rate 0.500 < 0.9"]
    failures = [
        f.get("message")
        for f in ET.fromstring(junit.read_text()).iter("failure")  # noqa: S314 - our own file
    ]
    assert (
        "output lacks 1 of 1 expected strings: 'absent'" in failures
        and "mentions.pass_rate = 0.5000 < 0.9" in failures
    )

    raw = yaml.safe_load(suite.read_text())
    raw["target"]["model"], raw["target"]["models"] = "mock", ["mock"]
    suite.write_text(yaml.safe_dump(raw))
    bad = _eval(gateway, str(suite))
    assert (
        bad.returncode == 2
        and "suite.yaml: target: Value error, give 'model' or 'models'" in bad.stderr
    )
    raw["target"].pop("models")
    raw["dataset"] = "missing.jsonl"
    suite.write_text(yaml.safe_dump(raw))
    bad = _eval(gateway, str(suite))
    assert bad.returncode == 2 and "missing.jsonl: cannot read the dataset" in bad.stderr


def test_the_cost_cap_stops_the_run(gateway: GatewayProcess, tmp_path: Path) -> None:
    target = {"messages": [{"role": "user", "content": "{{ topic }}"}], "model": "mock"}
    suite = _suite(tmp_path, "e2e-cap", target, _cases(20))
    done = _eval(gateway, str(suite), "--concurrency", "1", "--max-cost", "0.00005", "--no-cache")
    assert done.returncode == 1
    run = json.loads(done.stdout)
    assert run["status"] == "capped"
    assert 0 < run["summary"]["cases"] < 20
    assert run["cost_usd"] >= 0.00005
    assert "cost cap" in run["summary"]["verdict"]["reasons"][-1]


def test_a_killed_run_resumes_without_recalling_finished_cases(
    gateway: GatewayProcess, sim: UpstreamSimulator, tmp_path: Path
) -> None:
    sim.configure(latency_ms=150)
    target = {"messages": [{"role": "user", "content": "{{ topic }}"}], "model": "sim"}
    suite = _suite(tmp_path, "e2e-resume", target, _cases(20))
    env = {**os.environ, "LLMPLANE_URL": gateway.url, "LLMPLANE_ADMIN_KEY": ADMIN_KEY}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmplane",
            "eval",
            "run",
            str(suite),
            "--concurrency",
            "2",
            "--no-cache",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    stored: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and len(stored) < 4:
        stored = gateway.sql(
            "SELECT r.id FROM eval_cases c JOIN eval_runs r ON r.id = c.run_id "
            "WHERE r.suite = 'e2e-resume'"
        )
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    run_id = stored[0][0]
    time.sleep(0.5)  # calls in flight when it died reach the simulator or are cancelled
    finished = gateway.sql("SELECT count(*) FROM eval_cases WHERE run_id = :r", r=run_id)[0][0]
    assert 4 <= finished < 20
    sim.clear_requests()
    done = _eval(gateway, str(suite), "--resume", run_id, "--no-cache")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["id"] == run_id and run["status"] == "finished" and run["summary"]["cases"] == 20
    assert len(sim.requests) == 20 - finished  # only the missing ones were called


def test_a_prompt_version_that_breaks_some_cases_is_a_significant_regression(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    name = "e2e-regress"
    variables = {"topic": {}, "preamble": {"required": False}}
    for template in ("About {{ topic }}", "{{ preamble }} About {{ topic }}"):
        body = {"name": name, "template": template, "variables": variables}
        assert http("POST", f"{gateway.url}/admin/prompts", body)[0] == 201
    filler = " ".join(["filler"] * 60)  # pushes the topic out of the mock's echo
    cases = [
        {
            "id": f"case-{i}",
            "input": {"topic": t, "preamble": filler if i < 12 else ""},
            "expected": t,
        }
        for i, t in enumerate(TOPICS)
    ]
    suite = _suite(
        tmp_path, "e2e-regress", {"prompt": {"name": name, "version": 1}, "model": "mock"}, cases
    )
    base = json.loads(_eval(gateway, str(suite), "--baseline", "none").stdout)
    assert base["prompt"] == f"{name}@1" and base["summary"]["verdict"]["passed"]
    cli("eval", "bless", base["id"], url=gateway.url)

    raw = yaml.safe_load(suite.read_text())
    raw["target"]["prompt"]["version"] = 2
    suite.write_text(yaml.safe_dump(raw))
    summary = tmp_path / "pr.md"
    done = _eval(gateway, str(suite), "--markdown", str(summary))
    assert done.returncode == 1
    run = json.loads(done.stdout)
    comparison = run["summary"]["comparison"]
    assert comparison["baseline_run_id"] == base["id"] and comparison["regressions"] == ["mentions"]
    assert comparison["metrics"]["mentions"]["newly_failing"] == 12
    assert {c["case_id"] for c in comparison["newly_failing"]} == {f"case-{i}" for i in range(12)}
    text = summary.read_text()
    assert "❌ regression" in text and "**Newly failing** (12)" in text

    # What a promotion gate runs: the suite at the proposed version, against the run of
    # the version the label holds now.
    gate = _eval(gateway, str(suite), "--prompt-version", "2", "--baseline", f"prompt:{name}@1")
    assert gate.returncode == 1
    assert json.loads(gate.stdout)["summary"]["comparison"]["baseline_prompt"] == f"{name}@1"


def _team_key(gateway: GatewayProcess, team: str) -> str:
    cli("teams", "create", team, url=gateway.url)
    created = cli(
        "keys", "create", "--name", f"{team}-ci", "--team", team, "--json", url=gateway.url
    )
    return str(json.loads(created.stdout)["key"])


def test_a_teams_key_runs_its_suite_as_its_teams_eval_spend(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    mine, theirs = _team_key(gateway, "evals-a"), _team_key(gateway, "evals-b")
    target = {"messages": [{"role": "user", "content": "{{ topic }}"}], "model": "mock"}
    suite = _suite(tmp_path, "e2e-team", target, _cases(3))
    done = cli("eval", "run", str(suite), "--json", url=gateway.url, env={"LLMPLANE_API_KEY": mine})
    run = json.loads(done.stdout)
    team_id = gateway.sql("SELECT id FROM teams WHERE name = 'evals-a'")[0][0]
    assert run["team_id"] == team_id
    assert _ledger_rows(gateway, run["id"], expect=3) == 3
    teams = gateway.sql(
        "SELECT DISTINCT team_id FROM usage_ledger WHERE CAST(tags AS TEXT) LIKE :r",
        r=f"%{run['id']}%",
    )
    assert teams == [(team_id,)]
    shown = cli("eval", "show", run["id"], url=gateway.url, env={"LLMPLANE_API_KEY": mine})
    assert "mentions" in shown.stdout
    refused = cli(
        "eval", "show", run["id"], url=gateway.url, env={"LLMPLANE_API_KEY": theirs}, check=False
    )
    assert refused.returncode == 1 and "No eval run" in refused.stderr  # as if missing
    listed = cli("eval", "runs", "--json", url=gateway.url, env={"LLMPLANE_API_KEY": theirs})
    assert run["id"] not in listed.stdout
    # A plain key may not bless; the admin (or a team admin) may.
    assert (
        cli(
            "eval", "bless", run["id"], url=gateway.url, env={"LLMPLANE_API_KEY": mine}, check=False
        ).returncode
        == 1
    )
    assert "is now the baseline" in cli("eval", "bless", run["id"], url=gateway.url).stdout
