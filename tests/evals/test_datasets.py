"""Registered datasets through a real gateway and the CLI: immutable content-addressed
versions per team, suites that name one by version or ``latest``, and runs that record
the ``name@version`` they used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmplane.evals.client import HarnessClient
from llmplane.evals.harness import EvalOptions, run_eval
from llmplane.evals.report import markdown
from llmplane.evals.suite import DatasetRef, Message, ScorerSpec, Suite, SuiteError, Target
from tests.helpers import GatewayProcess, cli, http


class Team:
    def __init__(self, gateway: GatewayProcess, name: str) -> None:
        cli("teams", "create", name, url=gateway.url)
        self.name = name
        created = cli(
            "keys", "create", "--name", f"{name}-member", "--team", name, "--role", "member",
            "--json", url=gateway.url,
        )  # fmt: skip
        self.key = str(json.loads(created.stdout)["key"])


@pytest.fixture(scope="module")
def teams(gateway: GatewayProcess) -> tuple[Team, Team]:
    return Team(gateway, "datasets-a"), Team(gateway, "datasets-b")


def _as(team: Team, gateway: GatewayProcess, *args: str, check: bool = True) -> str:
    done = cli(*args, url=gateway.url, env={"LLMPLANE_API_KEY": team.key}, check=check)
    return done.stdout + (done.stderr if not check else "")


def _files(tmp: Path) -> tuple[Path, Path, Path]:
    rows = [{"id": f"c{i}", "topic": f"topic{i}", "expected": f"topic{i}"} for i in range(4)]
    rows[0]["expected"] = "never said"
    jsonl = tmp / "faq.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    csv = tmp / "faq.csv"  # the same cases as a CSV
    csv.write_text(
        "id,topic,expected\n" + "".join(f"{r['id']},{r['topic']},{r['expected']}\n" for r in rows)
    )
    bigger = tmp / "faq2.jsonl"
    extra = {"id": "c9", "topic": "topic9", "expected": "topic9"}
    bigger.write_text(jsonl.read_text() + json.dumps(extra) + "\n")
    return jsonl, csv, bigger


def test_versions_are_immutable_content_addressed_and_per_team(
    gateway: GatewayProcess, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    a, b = teams
    jsonl, csv, bigger = _files(tmp_path)
    assert "faq@1 (new version; 4 cases)" in _as(
        a, gateway, "eval", "datasets", "push", "faq", str(jsonl)
    )
    # the same cases, as JSONL again or as a CSV: the existing version
    assert "faq@1 (unchanged" in _as(a, gateway, "eval", "datasets", "push", "faq", str(jsonl))
    assert "faq@1 (unchanged" in _as(a, gateway, "eval", "datasets", "push", "faq", str(csv))
    assert "faq@2 (new version; 5 cases)" in _as(
        a, gateway, "eval", "datasets", "push", "faq", str(bigger)
    )

    listed = json.loads(_as(a, gateway, "eval", "datasets", "list", "--json"))
    assert [(d["name"], d["latest_version"], d["cases"]) for d in listed] == [("faq", 2, 5)]
    shown = json.loads(
        _as(a, gateway, "eval", "datasets", "show", "faq", "--version", "1", "--json")
    )
    assert shown["version"] == 1 and shown["cases"] == 4
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    first = json.loads(shown["content"].splitlines()[0])
    assert first == {
        "id": "c0",
        "input": {"topic": "topic0"},
        "expected": "never said",
        "metadata": {},
    }
    table = _as(a, gateway, "eval", "datasets", "show", "faq")
    assert "dataset faq@2  5 cases" in table

    # another team has its own namespace: it does not see team a's, and may not reach it
    assert json.loads(_as(b, gateway, "eval", "datasets", "list", "--json")) == []
    missing = _as(b, gateway, "eval", "datasets", "show", "faq", check=False)
    assert "No dataset 'faq'" in missing
    refused = _as(
        b, gateway, "eval", "datasets", "push", "faq", str(jsonl), "--team", a.name, check=False
    )
    assert "only its own team's datasets" in refused
    assert "faq@1 (new version" in _as(b, gateway, "eval", "datasets", "push", "faq", str(bigger))
    # the admin key sees both teams' and reads one by team
    status, _, every = http("GET", f"{gateway.url}/admin/evals/datasets")
    assert status == 200
    owners = {(d["name"], d["latest_version"]) for d in every["data"] if d["name"] == "faq"}
    assert owners == {("faq", 2), ("faq", 1)}
    status, _, one = http("GET", f"{gateway.url}/admin/evals/datasets/faq?version=2&team={a.name}")
    assert status == 200 and one["cases"] == 5

    status, _, bad = http(
        "POST", f"{gateway.url}/admin/evals/datasets",
        {"name": "broken", "format": "jsonl", "content": '{"q": 1}\nnot json\n'}, key=a.key,
    )  # fmt: skip
    assert status == 400 and "broken.jsonl:2: not JSON" in bad["error"]["message"]


async def test_a_suite_runs_a_registered_dataset_and_the_run_records_its_version(
    gateway: GatewayProcess, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    a, _ = teams
    jsonl, _, bigger = _files(tmp_path)
    _as(a, gateway, "eval", "datasets", "push", "runs-faq", str(jsonl))
    _as(a, gateway, "eval", "datasets", "push", "runs-faq", str(bigger))

    def suite(dataset: DatasetRef | Path) -> Suite:
        return Suite(
            name="registered",
            dataset=dataset,
            target=Target(messages=[Message(role="user", content="on {{ topic }}")], model="mock"),
            scorers=[ScorerSpec(name="mentions", scorer="contains")],
        )

    options = EvalOptions(baseline=None, use_cache=False)
    async with HarnessClient(gateway.url, a.key) as client:
        pinned = await run_eval(suite(DatasetRef(name="runs-faq", version=1)), client, options)
        latest = await run_eval(suite(DatasetRef(name="runs-faq")), client, options)
        from_file = await run_eval(suite(jsonl), client, options)
        with pytest.raises(SuiteError, match="No dataset 'nope'"):
            await run_eval(suite(DatasetRef(name="nope")), client, options)

    assert pinned.run["dataset"] == "runs-faq@1" and len(pinned.results) == 4
    assert latest.run["dataset"] == "runs-faq@2" and len(latest.results) == 5
    assert from_file.run["dataset"] is None
    scores = {r.case_id: (r.output, r.scores) for r in from_file.results}
    assert {r.case_id: (r.output, r.scores) for r in pinned.results} == scores
    assert pinned.summary["metrics"]["mentions"]["pass_rate"] == 3 / 4
    status, _, stored = http("GET", f"{gateway.url}/admin/evals/runs/{latest.run['id']}", key=a.key)
    assert status == 200 and stored["dataset"] == "runs-faq@2"
    assert "dataset `runs-faq@2`" in markdown(latest)

    # a resumed run keeps the version it started with, though 'latest' moved since
    extra = tmp_path / "faq3.jsonl"
    extra.write_text(bigger.read_text() + '{"id": "c10", "topic": "t10", "expected": "t10"}\n')
    _as(a, gateway, "eval", "datasets", "push", "runs-faq", str(extra))
    resume = EvalOptions(baseline=None, resume=latest.run["id"])
    async with HarnessClient(gateway.url, a.key) as client:
        resumed = await run_eval(suite(DatasetRef(name="runs-faq")), client, resume)
        newest = await run_eval(suite(DatasetRef(name="runs-faq")), client, options)
    assert resumed.run["id"] == latest.run["id"] and resumed.run["dataset"] == "runs-faq@2"
    assert len(resumed.results) == 5 and resumed.run["status"] == "finished"
    assert newest.run["dataset"] == "runs-faq@3" and len(newest.results) == 6


def test_a_suite_yaml_names_a_registered_dataset(tmp_path: Path) -> None:
    from llmplane.evals.suite import load_suite

    path = tmp_path / "suite.yaml"
    body = {
        "name": "s",
        "dataset": {"name": "support-faq", "version": 3},
        "target": {"messages": [{"role": "user", "content": "{{ q }}"}], "model": "mock"},
        "scorers": [{"name": "m", "scorer": "contains"}],
    }
    path.write_text(yaml.safe_dump(body))
    assert load_suite(path).dataset == DatasetRef(name="support-faq", version=3)
    path.write_text(yaml.safe_dump({**body, "dataset": {"name": "support-faq"}}))
    assert load_suite(path).dataset == DatasetRef(name="support-faq", version="latest")
    path.write_text(yaml.safe_dump({**body, "dataset": {"name": "x", "version": 0}}))
    with pytest.raises(SuiteError, match="dataset"):
        load_suite(path)
