"""``llmplane teams|services|budgets|audit`` against a running gateway."""

from __future__ import annotations

import json

from tests.helpers import GatewayProcess, cli


def _json(gateway: GatewayProcess, *args: str) -> object:
    return json.loads(cli(*args, "--json", url=gateway.url).stdout)


def test_teams_services_budgets_and_their_audit_trail(gateway: GatewayProcess) -> None:
    team = _json(
        gateway, "teams", "create", "search", "--models", "mock,sim", "--max-tokens", "512"
    )
    assert isinstance(team, dict) and team["models"] == ["mock", "sim"]
    teams = _json(gateway, "teams", "list")
    assert isinstance(teams, list) and any(t["name"] == "search" for t in teams)

    service = _json(gateway, "services", "create", "ranker", "--team", "search")
    assert isinstance(service, dict) and service["team_id"] == team["id"]
    assert _json(gateway, "services", "list", "--team", "search") == [service]

    updated = _json(gateway, "teams", "update", "search", "--max-tokens", "1024")
    assert isinstance(updated, dict) and updated["max_tokens"] == 1024

    budget = _json(
        gateway,
        "budgets",
        "set",
        "--scope",
        "service",
        "--target",
        "ranker",
        "--team",
        "search",
        "--limit-usd",
        "25",
        "--period",
        "week",
        "--thresholds",
        "50,80,100",
    )
    assert isinstance(budget, dict) and budget["scope_id"] == service["id"]
    assert budget["thresholds"] == [50, 80, 100]

    key = _json(
        gateway,
        "keys",
        "create",
        "--name",
        "ranker-prod",
        "--team",
        "search",
        "--service",
        "ranker",
        "--user",
        "svc-account",
        "--rpm",
        "100",
        "--expires",
        "30d",
        "--budget-usd",
        "5",
    )
    assert isinstance(key, dict)
    assert (key["team_id"], key["service_id"], key["user_id"], key["rpm"]) == (
        team["id"],
        service["id"],
        "svc-account",
        100,
    )
    assert key["budget"]["limit_usd"] == 5 and key["expires_at"]

    shown = _json(gateway, "teams", "show", "search")
    assert isinstance(shown, dict) and shown["services"] == [service]
    text = cli("teams", "show", "search", url=gateway.url).stdout
    assert "ranker" in text and "max_tokens: 1024" in text

    entries = _json(gateway, "audit", "--limit", "200")
    assert isinstance(entries, list)
    actions = [(e["action"], e["object_id"]) for e in entries]
    assert ("team.create", team["id"]) in actions
    assert ("team.update", team["id"]) in actions
    assert ("service.create", service["id"]) in actions
    assert ("budget.set", budget["id"]) in actions
    assert ("key.create", key["id"]) in actions
    update = next(e for e in entries if e["action"] == "team.update")
    assert update["before"]["max_tokens"] == 512 and update["after"]["max_tokens"] == 1024
    assert update["actor"] == "admin"
    assert key["key"] not in json.dumps(entries)  # the audit log never holds a key
    budgets = _json(gateway, "budgets", "list")
    assert isinstance(budgets, list) and any(b["id"] == budget["id"] for b in budgets)


def test_duplicate_team_and_unknown_team_are_refused(gateway: GatewayProcess) -> None:
    cli("teams", "create", "dup-team", url=gateway.url)
    again = cli("teams", "create", "dup-team", url=gateway.url, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = cli("services", "create", "x", "--team", "nope", url=gateway.url, check=False)
    assert missing.returncode == 1 and "No team" in missing.stderr


def test_monthly_report_as_table_json_and_csv(gateway: GatewayProcess, tmp_path: object) -> None:
    from datetime import UTC, datetime
    from pathlib import Path

    month = datetime.now(UTC).strftime("%Y-%m")
    cli("keys", "create", "--name", "report-key", url=gateway.url)
    out = Path(str(tmp_path)) / "spend.csv"
    table = cli("spend", "--report", month, "--csv", str(out), url=gateway.url).stdout
    assert month in table and "USD/1M TOKENS" in table
    assert out.read_text().startswith("section,team,service,model")
    report = _json(gateway, "spend", "--report", month)
    assert isinstance(report, dict) and report["month"] == month
    bad = cli("spend", "--report", "November", url=gateway.url, check=False)
    assert bad.returncode == 1 and "2026-11" in bad.stderr
