"""Promotion gates end to end: a real gateway (the ``mock`` model echoes the prompt), a
real store, the CLI in subprocesses. Version 2 of the prompt pushes the topic out of the
mock's echo for 12 of 30 cases (a significant regression); version 3 keeps every case."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import GatewayProcess, cli, http

_names = itertools.count()
TOPICS = [f"topic{i}" for i in range(30)]
FILLER = " ".join(["filler"] * 60)
TEMPLATES = ("About {{ topic }}", "{{ preamble }} About {{ topic }}", "Tell me about {{ topic }}")


class Team:
    """A team with a team admin's and a member's key (and their key ids)."""

    def __init__(self, gateway: GatewayProcess, name: str) -> None:
        cli("teams", "create", name, url=gateway.url)
        self.name = name
        self.admin, self.admin_id = self._key(gateway, "team_admin")
        self.member, _ = self._key(gateway, "member")

    def _key(self, gateway: GatewayProcess, role: str) -> tuple[str, str]:
        created = cli(
            "keys", "create", "--name", f"{self.name}-{role}", "--team", self.name,
            "--role", role, "--json", url=gateway.url,
        )  # fmt: skip
        found = json.loads(created.stdout)
        return str(found["key"]), str(found["id"])


@pytest.fixture(scope="module")
def team(gateway: GatewayProcess) -> Team:
    return Team(gateway, "gates-a")


def _prompt(gateway: GatewayProcess, team: Team) -> str:
    """A team prompt with the three versions; production points at version 1."""
    name = f"gated-{next(_names)}"
    variables = {"topic": {}, "preamble": {"required": False}}
    for template in TEMPLATES:
        body = {"name": name, "team": team.name, "template": template, "variables": variables}
        status, _, answer = http("POST", f"{gateway.url}/admin/prompts", body, key=team.admin)
        assert status == 201, answer
    path = f"{gateway.url}/admin/prompts/{name}/labels/production"
    assert http("PUT", path, {"version": 1}, key=team.admin)[0] == 200
    return name


def _suite(tmp: Path, name: str, suite: str) -> Path:
    cases = [
        {"id": f"case-{i}", "input": {"topic": t, "preamble": FILLER if i < 12 else ""},
         "expected": t}
        for i, t in enumerate(TOPICS)
    ]  # fmt: skip
    (tmp / "cases.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    path = tmp / "suite.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": suite,
                "dataset": "cases.jsonl",
                "target": {"prompt": {"name": name, "label": "production"}, "model": "mock"},
                "scorers": [{"name": "mentions", "scorer": "contains"}],
                "thresholds": {"mentions": {"pass_rate": 0.5}},
            }
        )
    )
    return path


def _as(gateway: GatewayProcess, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with ``key`` as its admin key (a team admin manages its team's prompts)."""
    return cli(*args, url=gateway.url, env={"LLMPLANE_ADMIN_KEY": key}, check=False)


def _history(gateway: GatewayProcess, name: str) -> list[dict[str, Any]]:
    found = cli("prompts", "history", name, "--label", "production", "--json", url=gateway.url)
    return list(reversed(json.loads(found.stdout)))  # oldest first


def _label(gateway: GatewayProcess, name: str) -> int:
    shown = cli("prompts", "show", name, "--json", url=gateway.url)
    return int(json.loads(shown.stdout)["labels"]["production"])


def test_a_gated_label_moves_only_after_its_suite_passed_without_regressing(
    gateway: GatewayProcess, team: Team, tmp_path: Path
) -> None:
    name = _prompt(gateway, team)
    suite = _suite(tmp_path, name, f"{name}-qa")

    # A member of the team cannot configure gates; its team admin can.
    path = f"{gateway.url}/admin/prompts/{name}/gates/production"
    status, _, refused = http("PUT", path, {"suite": f"{name}-qa"}, key=team.member)
    assert status == 403 and refused["error"]["type"] == "permission_error"
    denied = _as(gateway, team.member, "prompts", "gate", name, "--label", "production",
                 "--suite", f"{name}-qa")  # fmt: skip
    assert denied.returncode == 1 and "HTTP 403" in denied.stderr
    done = _as(gateway, team.admin, "prompts", "gate", name, "--label", "production",
               "--suite", f"{name}-qa")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"gated by suite {name}-qa (passed, no regression)" in done.stdout
    listed = _as(gateway, team.admin, "prompts", "gates", name, "--json")
    assert [(g["label"], g["suite"], g["created_by"]) for g in json.loads(listed.stdout)] == [
        ("production", f"{name}-qa", team.admin_id)
    ]

    # No run yet: refused, and the evidence says what to run.
    no_run = _as(gateway, team.admin, "prompts", "promote", name, "3", "--label", "production")
    assert no_run.returncode == 1
    assert "no finished run found" in no_run.stderr
    assert f"--prompt-version 3 --baseline prompt:{name}@1" in no_run.stderr
    assert _label(gateway, name) == 1

    # The suite against v1 (the label's version), then against v2 compared with it: v2
    # regresses on 12 cases (its pass rate, 60%, still clears the 50% threshold).
    env = {"LLMPLANE_API_KEY": team.admin}
    base = cli("eval", "run", str(suite), "--prompt-version", "1", "--baseline", "none",
               "--json", url=gateway.url, env=env, check=False)  # fmt: skip
    assert base.returncode == 0, base.stderr
    bad = cli("eval", "run", str(suite), "--prompt-version", "2", "--baseline",
              f"prompt:{name}@1", "--json", url=gateway.url, env=env, check=False)  # fmt: skip
    assert bad.returncode == 1
    bad_run = json.loads(bad.stdout)
    regressed = _as(gateway, team.admin, "prompts", "promote", name, "2")
    assert regressed.returncode == 1
    assert f"run {bad_run['id']}: FAILED" in regressed.stderr
    assert "regression: mentions: pass rate 100.0% -> 60.0%" in regressed.stderr
    assert "12 newly failing" in regressed.stderr
    as_json = _as(gateway, team.admin, "prompts", "promote", name, "2", "--json")
    evidence = json.loads(as_json.stdout)["evidence"]
    assert as_json.returncode == 1 and evidence["run_id"] == bad_run["id"]
    assert [r["metric"] for r in evidence["regressions"]] == ["mentions"]
    assert evidence["against"] == f"{name}@1" and evidence["failed_thresholds"] == []
    assert _label(gateway, name) == 1

    # v3 passes against v1: allowed.
    good = cli("eval", "run", str(suite), "--prompt-version", "3", "--baseline",
               f"prompt:{name}@1", url=gateway.url, env=env, check=False)  # fmt: skip
    assert good.returncode == 0, good.stdout
    moved = _as(gateway, team.admin, "prompts", "promote", name, "3", "--reason", "better")
    assert moved.returncode == 0, moved.stderr
    assert f"{name} production: version 1 -> version 3" in moved.stdout
    assert _label(gateway, name) == 3

    # The history shows the refused attempts (with their evidence) and the allowed one.
    moves = [
        (m["action"], m["from_version"], m["to_version"], m["actor"])
        for m in _history(gateway, name)
    ]
    assert moves == [
        ("set", None, 1, team.admin_id),
        ("refused", 1, 3, team.admin_id),
        ("refused", 1, 2, team.admin_id),
        ("refused", 1, 2, team.admin_id),
        ("set", 1, 3, team.admin_id),
    ]
    refusals = [m for m in _history(gateway, name) if m["action"] == "refused"]
    assert refusals[0]["evidence"]["run_id"] is None
    assert refusals[1]["evidence"]["run_id"] == bad_run["id"]
    shown = cli("prompts", "history", name, "--label", "production", url=gateway.url).stdout
    assert "refused" in shown and "set" in shown

    # A rollback never asks the gate (no run of v1 was compared with v3).
    back = _as(gateway, team.admin, "prompts", "rollback", name, "--label", "production")
    assert back.returncode == 0, back.stderr
    assert _label(gateway, name) == 1


def test_only_the_admin_key_forces_a_move_past_a_gate_with_a_reason_and_it_is_audited(
    gateway: GatewayProcess, team: Team
) -> None:
    name = _prompt(gateway, team)
    _as(gateway, team.admin, "prompts", "gate", name, "--label", "production", "--suite", "nope")
    by_team_admin = _as(gateway, team.admin, "prompts", "promote", name, "2", "--force",
                        "--reason", "hotfix")  # fmt: skip
    assert by_team_admin.returncode == 1 and "Only the admin key can force" in by_team_admin.stderr
    no_reason = cli("prompts", "promote", name, "2", "--force", url=gateway.url, check=False)
    assert no_reason.returncode == 1 and "needs a 'reason'" in no_reason.stderr
    assert _label(gateway, name) == 1

    forced = cli("prompts", "promote", name, "2", "--force", "--reason", "incident 42 hotfix",
                 url=gateway.url)  # fmt: skip
    assert "version 1 -> version 2 (FORCED past the gate)" in forced.stdout
    assert _label(gateway, name) == 2
    last = _history(gateway, name)[-1]
    assert (last["action"], last["actor"]) == ("forced", "admin")
    assert last["reason"] == "incident 42 hotfix"
    assert last["evidence"]["suite"] == "nope" and last["evidence"]["run_id"] is None
    audit = gateway.sql(
        "SELECT actor FROM audit_log WHERE action = 'prompt.label.forced' AND object_id = "
        "(SELECT id FROM prompts WHERE name = :name)",
        name=name,
    )
    assert audit == [("admin",)]
    back = _as(gateway, team.admin, "prompts", "rollback", name, "--label", "production")
    assert back.returncode == 0 and _label(gateway, name) == 1  # a forced move rolls back

    # Without the gate the label moves freely again; removing it is audited too.
    removed = _as(gateway, team.admin, "prompts", "ungate", name, "--label", "production")
    assert removed.returncode == 0 and "gate by suite nope removed" in removed.stdout
    assert _as(gateway, team.admin, "prompts", "promote", name, "3").returncode == 0
    actions = gateway.sql(
        "SELECT action FROM audit_log WHERE action LIKE 'prompt.gate.%' AND object_id = "
        "(SELECT id FROM prompts WHERE name = :name) ORDER BY id",
        name=name,
    )
    assert actions == [("prompt.gate.set",), ("prompt.gate.delete",)]


def test_promote_with_a_suite_runs_it_then_asks_the_gateway(
    gateway: GatewayProcess, team: Team, tmp_path: Path
) -> None:
    name = _prompt(gateway, team)
    suite = _suite(tmp_path, name, f"{name}-qa")
    _as(gateway, team.admin, "prompts", "gate", name, "--label", "production",
        "--suite", f"{name}-qa")  # fmt: skip
    env = {"LLMPLANE_ADMIN_KEY": team.admin}

    # No run against v1 exists: it runs first, then v2 against it; the gateway refuses.
    refused = cli("prompts", "promote", name, "2", "--suite", str(suite), url=gateway.url,
                  env=env, check=False)  # fmt: skip
    assert refused.returncode == 1
    assert f"no run of {name}-qa against {name}@1 yet: running it first" in refused.stderr
    assert "regression: mentions" in refused.stderr
    assert "promotion refused" in refused.stderr and _label(gateway, name) == 1

    # v3: the stored run of v1 is the baseline; the move is allowed.
    allowed = cli("prompts", "promote", name, "3", "--suite", str(suite), "--json",
                  url=gateway.url, env=env, check=False)  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    assert "running it first" not in allowed.stderr
    answer = json.loads(allowed.stdout)
    assert answer["promoted"] and (answer["from"], answer["to"]) == (1, 3)
    assert answer["run"]["prompt"] == f"{name}@3"
    assert answer["run"]["summary"]["comparison"]["baseline_prompt"] == f"{name}@1"
    assert [m["action"] for m in _history(gateway, name)] == ["set", "refused", "set"]

    # A suite of another prompt is refused before anything runs.
    other = _suite(tmp_path, "someone-else", "x-qa")
    wrong = cli("prompts", "promote", name, "2", "--suite", str(other), url=gateway.url,
                env=env, check=False)  # fmt: skip
    assert wrong.returncode == 2 and "is not the prompt" in wrong.stderr
