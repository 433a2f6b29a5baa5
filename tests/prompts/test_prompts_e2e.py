"""The registry through a real gateway: the CLI manages a prompt, the openai SDK calls the
gateway with ``prompt: {name, label, variables}``, the simulator sees the rendered
messages, and the ledger names the version that served each call."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import GatewayProcess, cli, http, openai_client

_names = itertools.count()

_V1 = """\
description: Answers a customer's question
template:
  - role: system
    content: "You are the support bot of {{ shop }}. Answer in {{ sentences }} sentences."
  - role: user
    content: "{{ question }}"
variables:
  shop: {type: string, default: Acme}
  sentences: {type: integer, default: 2}
  question: {type: string, description: The customer's question}
model: sim
params: {temperature: 0.1, max_tokens: 60}
"""
_V2 = _V1.replace("You are the support bot", "You are the friendly support bot")


class Team:
    """A team with a team admin's key and a member's key."""

    def __init__(self, gateway: GatewayProcess, name: str) -> None:
        cli("teams", "create", name, url=gateway.url)
        self.name = name
        self.admin = self._key(gateway, "team_admin")
        self.member = self._key(gateway, "member")

    def _key(self, gateway: GatewayProcess, role: str) -> str:
        created = cli(
            "keys", "create", "--name", f"{self.name}-{role}", "--team", self.name,
            "--role", role, "--json", url=gateway.url,
        )  # fmt: skip
        return str(json.loads(created.stdout)["key"])


@pytest.fixture(scope="module")
def teams(gateway: GatewayProcess) -> tuple[Team, Team]:
    return Team(gateway, "prompts-a"), Team(gateway, "prompts-b")


def _prompt(gateway: GatewayProcess, tmp_path: Path, team: Team, text: str = _V1) -> str:
    name = f"support-reply-{next(_names)}"
    path = tmp_path / "prompt.yaml"
    path.write_text(text)
    created = cli("prompts", "create", name, "--file", str(path), "--team", team.name,
                  url=gateway.url)  # fmt: skip
    assert f"created {name} version 1" in created.stdout
    return name


def _ledger_prompt(gateway: GatewayProcess, request_id: str) -> str | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = gateway.sql("SELECT prompt FROM usage_ledger WHERE request_id = :id", id=request_id)
        if rows:
            return str(rows[0][0]) if rows[0][0] is not None else None
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id}")


def _ask(gateway: GatewayProcess, key: str, name: str, question: str) -> tuple[str, Any]:
    """One call through the openai SDK; the request id and the reply."""
    client = openai_client(base_url=gateway.base_url, api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="sim",
        messages=[],
        extra_body={
            "prompt": {"name": name, "label": "production", "variables": {"question": question}}
        },
    )
    return raw.headers["x-request-id"], raw.parse()


def test_labels_pick_the_version_the_gateway_renders(
    gateway: GatewayProcess, sim: UpstreamSimulator, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    team_a, _ = teams
    name = _prompt(gateway, tmp_path, team_a)
    cli("prompts", "label", name, "1", "--label", "production", "--reason", "launch",
        url=gateway.url)  # fmt: skip

    request_id, reply = _ask(gateway, team_a.member, name, "Where is my order?")
    assert reply.choices[0].message.content
    upstream = sim.requests[-1]["body"]
    assert upstream["messages"] == [
        {"role": "system", "content": "You are the support bot of Acme. Answer in 2 sentences."},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert upstream["temperature"] == 0.1 and upstream["max_tokens"] == 60
    assert "prompt" not in upstream
    assert _ledger_prompt(gateway, request_id) == f"{name}@1"

    # A second version, promoted: the next call renders it (this process's cache is
    # dropped on the move; other replicas within the cache TTL).
    path = tmp_path / "v2.yaml"
    path.write_text(_V2)
    created = cli("prompts", "create", name, "--file", str(path), url=gateway.url)
    assert f"created {name} version 2" in created.stdout
    again = cli("prompts", "create", name, "--file", str(path), url=gateway.url)
    assert f"unchanged: {name} version 2" in again.stdout
    cli("prompts", "label", name, "2", "--label", "production", url=gateway.url)
    request_id, _ = _ask(gateway, team_a.member, name, "Refund?")
    assert sim.requests[-1]["body"]["messages"][0]["content"].startswith("You are the friendly")
    assert _ledger_prompt(gateway, request_id) == f"{name}@2"

    # One command rolls back; the history shows every move and who made it.
    rolled = cli("prompts", "rollback", name, "--label", "production", "--reason", "tone",
                 url=gateway.url)  # fmt: skip
    assert "version 2 -> version 1" in rolled.stdout
    request_id, _ = _ask(gateway, team_a.member, name, "Refund?")
    assert sim.requests[-1]["body"]["messages"][0]["content"].startswith("You are the support")
    assert _ledger_prompt(gateway, request_id) == f"{name}@1"
    history = json.loads(
        cli("prompts", "history", name, "--label", "production", "--json", url=gateway.url).stdout
    )
    assert [(m["action"], m["from_version"], m["to_version"], m["actor"]) for m in history] == [
        ("rollback", 2, 1, "admin"),
        ("set", 1, 2, "admin"),
        ("set", None, 1, "admin"),
    ]
    assert history[0]["reason"] == "tone" and history[2]["reason"] == "launch"
    _, _, audit = http("GET", f"{gateway.url}/admin/audit?object_type=prompt&limit=1000")
    actions = [e["action"] for e in audit["data"] if e["after"].get("name") == name]
    assert sorted(actions) == sorted(
        ["prompt.version.create"] * 2 + ["prompt.label.set"] * 2 + ["prompt.label.rollback"]
    )
    _, _, changes = http("GET", f"{gateway.url}/admin/changes?kind=prompt&limit=1000")
    subjects = [c["subject"] for c in changes["data"] if c["subject"].startswith(f"{name}@")]
    assert subjects == [f"{name}@1", f"{name}@2", f"{name}@1"]


def test_a_team_admin_manages_its_prompt_and_other_teams_cannot_see_it(
    gateway: GatewayProcess, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    team_a, team_b = teams
    name = f"team-owned-{next(_names)}"
    body = {"name": name, "template": "Summarise: {{ text }}", "variables": {"text": {}}}
    status, _, created = http("POST", f"{gateway.url}/admin/prompts", body, key=team_a.admin)
    assert status == 201 and created["team_id"] is not None  # its own team
    label = f"{gateway.url}/admin/prompts/{name}/labels/production"
    assert http("PUT", label, {"version": 1}, key=team_a.admin)[0] == 200
    assert http("PUT", label, {"version": 1}, key=team_a.member)[0] == 403

    status, headers, served = http("GET", f"{gateway.url}/v1/prompts/{name}", key=team_a.member)
    assert status == 200 and served["version"] == 1 and served["label"] == "production"
    assert served["template"] == "Summarise: {{ text }}"
    assert headers["cache-control"].startswith("private, max-age=")
    status, _, _ = http(
        "GET", f"{gateway.url}/v1/prompts/{name}", key=team_a.member,
        headers={"If-None-Match": headers["etag"]},
    )  # fmt: skip
    assert status == 304
    _, pinned, _ = http("GET", f"{gateway.url}/v1/prompts/{name}?version=1", key=team_a.member)
    assert "immutable" in pinned["cache-control"]

    # Team B learns nothing: the same 404 as a prompt that does not exist.
    for url in (f"/v1/prompts/{name}", f"/admin/prompts/{name}/history"):
        status, _, answer = http("GET", f"{gateway.url}{url}", key=team_b.admin)
        assert status == 404 and answer["error"]["code"] == "prompt_not_found", url
    status, _, answer = http(
        "POST",
        f"{gateway.base_url}/chat/completions",
        {"model": "mock", "prompt": {"name": name, "variables": {"text": "x"}}},
        key=team_b.member,
    )
    assert status == 404 and answer["error"]["code"] == "prompt_not_found"
    assert answer["error"]["message"] == f"No prompt named '{name}'."
    status, _, missing = http("GET", f"{gateway.url}/v1/prompts/no-such-prompt", key=team_b.admin)
    assert status == 404 and missing["error"]["message"] == "No prompt named 'no-such-prompt'."


@pytest.mark.parametrize(
    ("prompt", "status", "param"),
    [
        ({"variables": {}}, 400, "prompt.variables.question"),
        ({"variables": {"question": 42}}, 400, "prompt.variables.question"),
        ({"variables": {"question": "q", "qestion": "q"}}, 400, "prompt.variables.qestion"),
        ({"label": "staging", "variables": {"question": "q"}}, 404, "label"),
        ({"version": 7, "variables": {"question": "q"}}, 404, "version"),
        ({"label": "production", "version": 1}, 400, "prompt.version"),
    ],
)
def test_bad_prompt_references_are_refused_naming_the_part(
    gateway: GatewayProcess,
    teams: tuple[Team, Team],
    tmp_path: Path,
    prompt: dict[str, Any],
    status: int,
    param: str,
) -> None:
    team_a, _ = teams
    name = _prompt(gateway, tmp_path, team_a)
    cli("prompts", "label", name, "1", "--label", "production", url=gateway.url)
    got, _, answer = http(
        "POST",
        f"{gateway.base_url}/chat/completions",
        {"prompt": {"name": name, **prompt}},
        key=team_a.member,
    )
    assert got == status, answer
    assert answer["error"]["param"] == param
    assert answer["error"]["type"] == "invalid_request_error"


def test_the_versions_model_serves_and_responses_render_too(
    gateway: GatewayProcess, sim: UpstreamSimulator, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    team_a, _ = teams
    name = _prompt(gateway, tmp_path, team_a)
    cli("prompts", "label", name, "1", "--label", "production", url=gateway.url)
    reference = {"name": name, "variables": {"question": "Is it raining?"}}
    # No model in the request: the version's (sim) serves it.
    status, headers, _ = http(
        "POST", f"{gateway.base_url}/chat/completions", {"prompt": reference}, key=team_a.member
    )
    assert status == 200 and sim.requests[-1]["body"]["model"] == "sim-model"
    assert _ledger_prompt(gateway, headers["x-request-id"]) == f"{name}@1"
    # The Responses API renders it as its input (mock echoes the last user message).
    status, headers, reply = http(
        "POST", f"{gateway.base_url}/responses", {"model": "mock", "prompt": reference},
        key=team_a.member,
    )  # fmt: skip
    assert status == 200, reply
    assert "mock reply to: Is it raining" in json.dumps(reply["output"])
    assert _ledger_prompt(gateway, headers["x-request-id"]) == f"{name}@1"


def test_render_previews_a_version_locally(
    gateway: GatewayProcess, teams: tuple[Team, Team], tmp_path: Path
) -> None:
    team_a, _ = teams
    name = _prompt(gateway, tmp_path, team_a)
    cli("prompts", "label", name, "1", "--label", "production", url=gateway.url)
    shown = cli("prompts", "render", name, "--var", "question=Hi?", "--var", "sentences=3",
                url=gateway.url)  # fmt: skip
    assert json.loads(shown.stdout) == [
        {"role": "system", "content": "You are the support bot of Acme. Answer in 3 sentences."},
        {"role": "user", "content": "Hi?"},
    ]
    bad = cli("prompts", "render", name, "--var", "sentences=three", url=gateway.url, check=False)
    assert bad.returncode == 1 and "'sentences' must be of type integer" in bad.stderr
    listed = cli("prompts", "list", "--team", team_a.name, url=gateway.url).stdout
    assert name in listed and "production=v1" in listed
