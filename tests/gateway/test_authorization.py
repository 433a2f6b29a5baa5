"""The authorization matrix: every route × every kind of caller gets the declared answer.

Each route declares a policy (``llmplane.gateway.http.requires``). This test holds
every route to its policy with five callers — the admin key, a team admin of the
object's team, a team admin of another team, a plain key of the object's team and
no key — and fails when a route has no policy or no entry here.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from llmplane.config.platform import load_platform_config
from llmplane.config.settings import Settings
from llmplane.gateway.app import build_services, create_app
from llmplane.gateway.http import Policy
from llmplane.store import create_engine, migrate
from tests.helpers import ADMIN_KEY, GatewayProcess, cli, http

_names = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


class World:
    """Two teams with a team admin each, and a plain key in the first (whose team keeps
    request logs)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.team = _unique("authz-a")
        self.other = _unique("authz-b")
        cli("teams", "create", self.team, "--log-bodies", "metadata", url=gateway.url)
        cli("teams", "create", self.other, url=gateway.url)
        cli("services", "create", "svc", "--team", self.team, url=gateway.url)
        self.keys = {
            "admin": ADMIN_KEY,
            "team_admin": self._key(self.team, "team_admin"),
            "other_team_admin": self._key(self.other, "team_admin"),
            "member": self._key(self.team, "member"),
            "none": None,
        }

    def _key(self, team: str, role: str) -> str:
        created = cli(
            "keys",
            "create",
            "--name",
            _unique(role),
            "--team",
            team,
            "--role",
            role,
            "--json",
            url=self.gateway.url,
        )
        return str(json.loads(created.stdout)["key"])

    def open_incident(self) -> int:
        """A fresh open incident of the first team (an object to close)."""
        status, _, incident = http(
            "POST", f"{self.gateway.url}/admin/incidents", {"title": "authz", "team": self.team}
        )
        assert status == 201, incident
        return int(incident["id"])

    def logged_request(self) -> str:
        """The id of a request of the first team, with its stored request log."""
        request_id = _unique("authz-req")
        status, _, answer = http(
            "POST",
            f"{self.gateway.base_url}/chat/completions",
            {"model": "mock", "messages": [{"role": "user", "content": "x"}]},
            key=self.keys["member"],
            headers={"x-request-id": request_id},
        )
        assert status == 200, answer
        return request_id

    def prompt(self) -> str:
        """A fresh prompt of the first team: two versions, production moved to v1 then v2
        (so that it can be rolled back)."""
        name = _unique("authz-prompt")
        for text in ("one {{ who }}", "two {{ who }}"):
            body = {"name": name, "team": self.team, "template": text, "variables": {"who": {}}}
            status, _, answer = http("POST", f"{self.gateway.url}/admin/prompts", body)
            assert status == 201, answer
        for version in (1, 2):
            path = f"/admin/prompts/{name}/labels/production"
            status, _, answer = http("PUT", f"{self.gateway.url}{path}", {"version": version})
            assert status == 200, answer
        return name

    def gated_prompt(self) -> str:
        """A fresh prompt of the first team whose 'staging' label has a promotion gate."""
        name = self.prompt()
        path = f"{self.gateway.url}/admin/prompts/{name}/gates/staging"
        status, _, answer = http("PUT", path, {"suite": "authz-suite"})
        assert status == 200, answer
        return name

    def shared_prompt(self) -> str:
        """One prompt of the first team, for the routes that only read."""
        if not hasattr(self, "_shared_prompt"):
            self._shared_prompt = self.prompt()
        return self._shared_prompt

    def eval_run(self, status: str | None = None) -> str:
        """A fresh eval run of the first team (closed with ``status`` when given)."""
        body = {
            "suite": "authz-suite",
            "suite_fingerprint": "0" * 64,
            "target": "messages",
            "models": ["mock"],
            "repetitions": 1,
            "cases_total": 1,
            "git_branch": "main",
        }
        member = self.keys["member"]
        status_code, _, run = http("POST", f"{self.gateway.url}/admin/evals/runs", body, key=member)
        assert status_code == 201, run
        if status is not None:
            path = f"{self.gateway.url}/admin/evals/runs/{run['id']}/finish"
            assert http("POST", path, {"status": status}, key=member)[0] == 200
        return str(run["id"])

    def dataset(self) -> str:
        """A dataset of the first team, pushed by its member, once."""
        if not hasattr(self, "_dataset"):
            body = {"name": "authz-set", "format": "jsonl", "content": '{"q": "a"}\n'}
            url = f"{self.gateway.url}/admin/evals/datasets"
            status, _, answer = http("POST", url, body, key=self.keys["member"])
            assert status in (200, 201), answer
            self._dataset = "authz-set"
        return self._dataset

    def team_key_name(self) -> str:
        """A fresh plain key of the first team (an object to revoke, rotate or budget)."""
        name = _unique("object")
        cli("keys", "create", "--name", name, "--team", self.team, url=self.gateway.url)
        return name


# method, path template → (expected policy, request builder: world -> (path, body))
Request = Callable[[World], tuple[str, dict[str, Any] | None]]
MATRIX: dict[tuple[str, str], tuple[Policy, Request]] = {
    ("GET", "/health/live"): (Policy.PUBLIC, lambda w: ("/health/live", None)),
    ("GET", "/health/ready"): (Policy.PUBLIC, lambda w: ("/health/ready", None)),
    ("GET", "/openapi.json"): (Policy.PUBLIC, lambda w: ("/openapi.json", None)),
    ("GET", "/metrics"): (Policy.ADMIN, lambda w: ("/metrics", None)),
    ("GET", "/v1/models"): (Policy.KEY, lambda w: ("/v1/models", None)),
    ("GET", "/models"): (Policy.KEY, lambda w: ("/models", None)),
    ("POST", "/v1/chat/completions"): (
        Policy.KEY,
        lambda w: (
            "/v1/chat/completions",
            {"model": "mock", "messages": [{"role": "user", "content": "x"}]},
        ),
    ),
    ("POST", "/chat/completions"): (
        Policy.KEY,
        lambda w: (
            "/chat/completions",
            {"model": "mock", "messages": [{"role": "user", "content": "x"}]},
        ),
    ),
    ("POST", "/v1/messages"): (
        Policy.KEY,
        lambda w: (
            "/v1/messages",
            {"model": "mock", "max_tokens": 16, "messages": [{"role": "user", "content": "x"}]},
        ),
    ),
    ("POST", "/v1/responses"): (
        Policy.KEY,
        lambda w: ("/v1/responses", {"model": "mock", "input": "x"}),
    ),
    ("POST", "/v1/moderations"): (
        Policy.KEY,
        lambda w: ("/v1/moderations", {"model": "mock", "input": "x"}),
    ),
    ("POST", "/moderations"): (
        Policy.KEY,
        lambda w: ("/moderations", {"model": "mock", "input": "x"}),
    ),
    ("POST", "/v1/rerank"): (
        Policy.KEY,
        lambda w: ("/v1/rerank", {"model": "mock", "query": "a", "documents": ["a", "b"]}),
    ),
    ("POST", "/rerank"): (
        Policy.KEY,
        lambda w: ("/rerank", {"model": "mock", "query": "a", "documents": ["a", "b"]}),
    ),
    ("POST", "/v1/embeddings"): (
        Policy.KEY,
        lambda w: ("/v1/embeddings", {"model": "mock-embed", "input": "x"}),
    ),
    ("POST", "/embeddings"): (
        Policy.KEY,
        lambda w: ("/embeddings", {"model": "mock-embed", "input": "x"}),
    ),
    ("POST", "/admin/keys"): (
        Policy.TEAM,
        lambda w: ("/admin/keys", {"name": _unique("new"), "team": w.team}),
    ),
    ("GET", "/admin/keys"): (Policy.TEAM, lambda w: (f"/admin/keys?team={w.team}", None)),
    ("DELETE", "/admin/keys/{key}"): (
        Policy.TEAM,
        lambda w: (f"/admin/keys/{w.team_key_name()}", None),
    ),
    ("POST", "/admin/keys/{key}/rotate"): (
        Policy.TEAM,
        lambda w: (f"/admin/keys/{w.team_key_name()}/rotate", {}),
    ),
    ("GET", "/admin/spend"): (Policy.TEAM, lambda w: (f"/admin/spend?team={w.team}", None)),
    ("GET", "/admin/spend/report"): (
        Policy.TEAM,
        lambda w: (f"/admin/spend/report?month=2026-11&team={w.team}", None),
    ),
    ("GET", "/admin/report"): (
        Policy.TEAM,
        lambda w: (f"/admin/report?weeks=2&team={w.team}", None),
    ),
    ("POST", "/admin/teams"): (Policy.ADMIN, lambda w: ("/admin/teams", {"name": _unique("t")})),
    ("GET", "/admin/teams"): (Policy.ADMIN, lambda w: ("/admin/teams", None)),
    ("GET", "/admin/teams/{team}"): (Policy.TEAM, lambda w: (f"/admin/teams/{w.team}", None)),
    ("PATCH", "/admin/teams/{team}"): (
        Policy.ADMIN,
        lambda w: (f"/admin/teams/{w.team}", {"max_tokens": 1000}),
    ),
    ("POST", "/admin/services"): (
        Policy.TEAM,
        lambda w: ("/admin/services", {"team": w.team, "name": _unique("svc")}),
    ),
    ("GET", "/admin/services"): (Policy.TEAM, lambda w: (f"/admin/services?team={w.team}", None)),
    ("PATCH", "/admin/services/{service}"): (
        Policy.TEAM,
        lambda w: ("/admin/services/svc", {"team": w.team, "rpm": 1000}),
    ),
    ("PUT", "/admin/budgets"): (
        Policy.TEAM,
        lambda w: ("/admin/budgets", {"scope": "key", "target": w.team_key_name(), "limit_usd": 1}),
    ),
    ("GET", "/admin/budgets"): (Policy.ADMIN, lambda w: ("/admin/budgets", None)),
    ("GET", "/admin/audit"): (Policy.ADMIN, lambda w: ("/admin/audit", None)),
    ("POST", "/admin/incidents"): (
        Policy.ADMIN,
        lambda w: (
            "/admin/incidents",
            {
                "title": _unique("incident"),
                "severity": "sev2",
                "cause": "model:mock",
                "team": w.team,
            },
        ),
    ),
    ("GET", "/admin/incidents"): (Policy.TEAM, lambda w: (f"/admin/incidents?team={w.team}", None)),
    ("POST", "/admin/incidents/{incident}/close"): (
        Policy.ADMIN,
        lambda w: (f"/admin/incidents/{w.open_incident()}/close", {"resolution": "fixed"}),
    ),
    ("POST", "/admin/changes"): (
        Policy.ADMIN,
        lambda w: (
            "/admin/changes",
            {"kind": "deployment", "subject": "mock[0]", "summary": "authz", "action": "changed"},
        ),
    ),
    ("GET", "/admin/changes"): (Policy.ADMIN, lambda w: ("/admin/changes?kind=deployment", None)),
    ("GET", "/admin/logs"): (Policy.TEAM, lambda w: (f"/admin/logs?team={w.team}", None)),
    ("GET", "/admin/logs/{request_id}"): (
        Policy.TEAM,
        lambda w: (f"/admin/logs/{w.logged_request()}", None),
    ),
    ("DELETE", "/admin/logs"): (Policy.ADMIN, lambda w: ("/admin/logs?user=nobody", None)),
    ("POST", "/admin/logs/purge"): (Policy.ADMIN, lambda w: ("/admin/logs/purge", {})),
    ("GET", "/v1/prompts/{name}"): (
        Policy.TEAM_READ,
        lambda w: (f"/v1/prompts/{w.shared_prompt()}?label=production", None),
    ),
    ("POST", "/admin/prompts"): (
        Policy.TEAM,
        lambda w: (
            "/admin/prompts",
            {
                "name": _unique("authz-new-prompt"),
                "team": w.team,
                "template": [{"role": "system", "content": "Be {{ tone }}."}],
                "variables": {"tone": {"type": "string", "default": "brief"}},
                "model": "mock",
                "params": {"temperature": 0.2},
            },
        ),
    ),
    ("GET", "/admin/prompts"): (Policy.TEAM, lambda w: (f"/admin/prompts?team={w.team}", None)),
    ("GET", "/admin/prompts/{name}"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.shared_prompt()}?label=production", None),
    ),
    ("GET", "/admin/prompts/{name}/versions"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.shared_prompt()}/versions", None),
    ),
    ("PUT", "/admin/prompts/{name}/labels/{label}"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.prompt()}/labels/staging", {"version": 1, "reason": "x"}),
    ),
    ("POST", "/admin/prompts/{name}/labels/{label}/rollback"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.prompt()}/labels/production/rollback", {"reason": "x"}),
    ),
    ("GET", "/admin/prompts/{name}/history"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.shared_prompt()}/history?label=production", None),
    ),
    ("GET", "/admin/prompts/{name}/gates"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.shared_prompt()}/gates", None),
    ),
    ("PUT", "/admin/prompts/{name}/gates/{label}"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.prompt()}/gates/production", {"suite": "authz-suite"}),
    ),
    ("GET", "/admin/prompts/{name}/gates/{label}"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.gated_prompt()}/gates/staging", None),
    ),
    ("DELETE", "/admin/prompts/{name}/gates/{label}"): (
        Policy.TEAM,
        lambda w: (f"/admin/prompts/{w.gated_prompt()}/gates/staging", None),
    ),
    ("POST", "/admin/evals/runs"): (
        Policy.KEY,
        lambda w: (
            "/admin/evals/runs",
            {
                "suite": "authz-suite",
                "suite_fingerprint": "0" * 64,
                "target": "messages",
                "models": ["mock"],
                "repetitions": 1,
                "cases_total": 1,
            },
        ),
    ),
    ("GET", "/admin/evals/runs"): (Policy.KEY, lambda w: ("/admin/evals/runs?suite=x", None)),
    ("GET", "/admin/evals/runs/{run}"): (
        Policy.TEAM_READ,
        lambda w: (f"/admin/evals/runs/{w.eval_run()}", None),
    ),
    ("POST", "/admin/evals/runs/{run}/cases"): (
        Policy.TEAM_READ,
        lambda w: (
            f"/admin/evals/runs/{w.eval_run()}/cases",
            {"cases": [{"case_id": "c1", "model": "mock", "repetition": 0, "scores": {}}]},
        ),
    ),
    ("POST", "/admin/evals/runs/{run}/finish"): (
        Policy.TEAM_READ,
        lambda w: (f"/admin/evals/runs/{w.eval_run()}/finish", {"status": "finished"}),
    ),
    ("POST", "/admin/evals/runs/{run}/resume"): (
        Policy.TEAM_READ,
        lambda w: (f"/admin/evals/runs/{w.eval_run('failed')}/resume", {}),
    ),
    ("POST", "/admin/evals/runs/{run}/bless"): (
        Policy.TEAM,
        lambda w: (f"/admin/evals/runs/{w.eval_run('finished')}/bless", None),
    ),
    ("GET", "/admin/evals/baseline"): (
        Policy.KEY,
        lambda w: ("/admin/evals/baseline?suite=authz-suite", None),
    ),
    ("POST", "/admin/evals/cache"): (Policy.KEY, lambda w: ("/admin/evals/cache", {"keys": ["k"]})),
    ("POST", "/admin/evals/datasets"): (
        Policy.KEY,
        lambda w: (
            "/admin/evals/datasets",
            {"name": "authz-push", "format": "csv", "content": f"q,expected\n{_unique('q')},b\n"},
        ),
    ),
    ("GET", "/admin/evals/datasets"): (Policy.KEY, lambda w: ("/admin/evals/datasets", None)),
    ("GET", "/admin/evals/datasets/{name}"): (
        Policy.TEAM_READ,
        lambda w: (f"/admin/evals/datasets/{w.dataset()}?team={w.team}", None),
    ),
}

# Routes of one team's object that a key of another team may not read: they answer 404, as
# for an object that does not exist, so that its name does not leak.
# Routes that answer another team as if the thing did not exist (its name or id is not
# confirmed), with the code they answer.
HIDDEN = {
    route: "prompt_not_found"
    for route in MATRIX
    if route[1].startswith(("/v1/prompts/", "/admin/prompts/"))
} | {route: "eval_run_not_found" for route in MATRIX if route[1].startswith("/admin/evals/runs/")}

ALLOWED = {
    Policy.PUBLIC: {"admin", "team_admin", "other_team_admin", "member", "none"},
    Policy.KEY: {"admin", "team_admin", "other_team_admin", "member"},
    Policy.ADMIN: {"admin"},
    Policy.TEAM: {"admin", "team_admin"},
    Policy.TEAM_READ: {"admin", "team_admin", "member"},
}


def _declared_routes(tmp_path: Path) -> dict[tuple[str, str], Any]:
    engine = create_engine(f"sqlite:///{tmp_path / 'routes.db'}")
    migrate(engine)
    services = build_services(
        Settings(data_dir=tmp_path), load_platform_config(None, {}), engine, ADMIN_KEY
    )
    routes = {}
    for route in create_app(services).app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                routes[(method, route.path)] = getattr(route.endpoint, "policy", None)
    engine.dispose()
    return routes


def test_every_route_declares_a_policy_and_is_in_the_matrix(tmp_path: Path) -> None:
    declared = _declared_routes(tmp_path)
    undeclared = sorted(route for route, policy in declared.items() if policy is None)
    assert not undeclared, f"routes without a declared policy: {undeclared}"
    assert set(declared) == set(MATRIX), "every route needs an entry in MATRIX"
    for route, (policy, _) in MATRIX.items():
        assert declared[route] == policy, route


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> World:
    return World(gateway)


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("caller", ["admin", "team_admin", "other_team_admin", "member", "none"])
def test_authorization_matrix(world: World, route: tuple[str, str], caller: str) -> None:
    policy, build = MATRIX[route]
    path, body = build(world)
    status, _, answer = http(
        route[0],
        f"{world.gateway.url}{path}",
        json.dumps(body).encode() if body is not None else None,
        key=world.keys[caller],
    )
    if caller in ALLOWED[policy]:
        assert 200 <= status < 300, (status, answer)
    elif caller == "none":
        assert status == 401, (status, answer)
    elif caller == "other_team_admin" and route in HIDDEN:
        assert status == 404, (status, answer)
        assert answer["error"]["code"] == HIDDEN[route]
    else:
        assert status == 403, (status, answer)
        assert answer["error"]["type"] == "permission_error"


def test_team_admin_cannot_mint_more_than_its_own(world: World) -> None:
    gateway = world.gateway
    limited = json.loads(
        cli(
            "keys",
            "create",
            "--name",
            _unique("limited"),
            "--team",
            world.team,
            "--role",
            "team_admin",
            "--rpm",
            "100",
            "--tpm",
            "10000",
            "--budget-usd",
            "5",
            "--models",
            "mock",
            "--json",
            url=gateway.url,
        ).stdout
    )["key"]
    base = {
        "name": _unique("minted"),
        "rpm": 50,
        "tpm": 5000,
        "budget_usd": 5,
        "models": ["mock"],
    }

    def mint(**changes: Any) -> tuple[int, Any]:
        status, _, answer = http(
            "POST", f"{gateway.url}/admin/keys", {**base, **changes}, key=limited
        )
        return status, answer

    assert mint()[0] == 201
    for changes, code in [
        ({"rpm": 101}, "exceeds_own_rights"),
        ({"tpm": 10001}, "exceeds_own_rights"),
        ({"tpm": None}, "exceeds_own_rights"),
        ({"budget_usd": 6}, "exceeds_own_budget"),
        ({"models": ["mock", "mock-embed"]}, "exceeds_own_rights"),
        ({"team": world.other}, "not_team_admin"),
    ]:
        status, answer = mint(name=_unique("minted"), **changes)
        assert status == 403 and answer["error"]["code"] == code, (changes, answer)


def test_a_team_admin_lists_only_its_own_teams_keys(world: World) -> None:
    status, _, answer = http(
        "GET", f"{world.gateway.url}/admin/keys", key=world.keys["other_team_admin"]
    )
    assert status == 200
    teams = {key["team_id"] for key in answer["data"]}
    assert len(teams) == 1
    status, _, everything = http("GET", f"{world.gateway.url}/admin/keys")
    assert len(everything["data"]) > len(answer["data"])


def test_openapi_documents_every_route_with_its_policy(world: World) -> None:
    status, _, document = http("GET", f"{world.gateway.url}/openapi.json", key=None)
    assert status == 200 and document["openapi"].startswith("3.1")
    for (method, path), (policy, _) in MATRIX.items():
        operation = document["paths"][path][method.lower()]
        assert operation["x-llmplane-policy"] == policy.value
        assert operation["summary"], (method, path)
        assert ("security" in operation) == (policy is not Policy.PUBLIC)
    assert document["paths"]["/admin/keys/{key}"]["delete"]["parameters"][0]["name"] == "key"


def test_a_team_admin_sees_only_its_teams_spend(world: World) -> None:
    member = world.keys["member"]
    assert (
        http(
            "POST",
            f"{world.gateway.base_url}/chat/completions",
            {"model": "mock", "messages": [{"role": "user", "content": "spend"}]},
            key=member,
        )[0]
        == 200
    )
    status, _, mine = http(
        "GET", f"{world.gateway.url}/admin/spend?by=team", key=world.keys["team_admin"]
    )
    assert status == 200
    assert {row["name"] for row in mine["rows"]} == {world.team}
    _, _, theirs = http(
        "GET", f"{world.gateway.url}/admin/spend?by=team", key=world.keys["other_team_admin"]
    )
    assert {row["name"] for row in theirs["rows"]} <= {world.other}
    # A call outside the team (the admin key's), so that everyone's spend is more.
    chat = {"model": "mock", "messages": [{"role": "user", "content": "spend too"}]}
    assert http("POST", f"{world.gateway.base_url}/chat/completions", chat)[0] == 200
    _, _, everyone = http("GET", f"{world.gateway.url}/admin/spend")
    assert everyone["total"]["requests"] > mine["total"]["requests"]


def test_team_admin_cannot_budget_above_its_team(world: World) -> None:
    gateway = world.gateway
    team = _unique("capped")
    cli("teams", "create", team, url=gateway.url)
    cli("budgets", "set", "--scope", "team", "--target", team, "--limit-usd", "10", url=gateway.url)
    admin_key = json.loads(
        cli(
            "keys",
            "create",
            "--name",
            _unique("ta"),
            "--team",
            team,
            "--role",
            "team_admin",
            "--json",
            url=gateway.url,
        ).stdout
    )["key"]
    cli("keys", "create", "--name", f"{team}-member", "--team", team, url=gateway.url)
    body = {"scope": "key", "target": f"{team}-member", "limit_usd": 11}
    status, _, answer = http("PUT", f"{gateway.url}/admin/budgets", body, key=admin_key)
    assert status == 403 and answer["error"]["code"] == "exceeds_team_budget"
    status, _, _ = http(
        "PUT", f"{gateway.url}/admin/budgets", {**body, "limit_usd": 10}, key=admin_key
    )
    assert status == 200
    # The team's $10 is per month: $1 a day could spend $31 in a month, $0.30 a day cannot.
    daily = {**body, "limit_usd": 1, "period": "day"}
    status, _, answer = http("PUT", f"{gateway.url}/admin/budgets", daily, key=admin_key)
    assert status == 403 and "per month" in answer["error"]["message"]
    status, _, _ = http(
        "PUT", f"{gateway.url}/admin/budgets", {**daily, "limit_usd": 0.3}, key=admin_key
    )
    assert status == 200


def test_a_team_admin_gets_its_own_teams_finance_report(world: World) -> None:
    for caller in ("member", "other_team_admin"):
        http(
            "POST",
            f"{world.gateway.base_url}/chat/completions",
            {"model": "mock", "messages": [{"role": "user", "content": "report"}]},
            key=world.keys[caller],
        )
    month = time.strftime("%Y-%m", time.gmtime())
    status, _, mine = http(
        "GET", f"{world.gateway.url}/admin/spend/report?month={month}", key=world.keys["team_admin"]
    )
    assert status == 200
    assert {row["team"] for row in mine["by_team_service"]} == {world.team}
    _, _, everyone = http("GET", f"{world.gateway.url}/admin/spend/report?month={month}")
    assert len({row["team"] for row in everyone["by_team_service"]}) > 1
    refused = http(
        "GET",
        f"{world.gateway.url}/admin/spend/report?month={month}&team={world.team}",
        key=world.keys["other_team_admin"],
    )
    assert refused[0] == 403


def test_a_team_admin_reads_only_its_own_teams_incidents(world: World) -> None:
    world.open_incident()
    status, _, mine = http(
        "GET", f"{world.gateway.url}/admin/incidents", key=world.keys["team_admin"]
    )
    assert status == 200 and mine["data"]
    team_id = http("GET", f"{world.gateway.url}/admin/teams/{world.team}")[2]["id"]
    assert {incident["team_id"] for incident in mine["data"]} == {team_id}
    _, _, theirs = http(
        "GET", f"{world.gateway.url}/admin/incidents", key=world.keys["other_team_admin"]
    )
    assert theirs["data"] == []
    refused = http(
        "GET",
        f"{world.gateway.url}/admin/incidents?team={world.team}",
        key=world.keys["other_team_admin"],
    )
    assert refused[0] == 403
