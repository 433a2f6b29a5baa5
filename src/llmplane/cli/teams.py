"""``llmplane teams``, ``services``, ``budgets`` and ``audit``: admin commands for tenancy."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import click

from llmplane.cli.client import call


def _out(data: Any, as_json: bool, line: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else line)


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

_NONE = "none"


class _Limit(click.ParamType[Any]):
    """A per-minute limit: a positive integer, or ``none`` to remove it."""

    name = "N|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value == _NONE:
            return value
        if isinstance(value, str) and value.isdigit() and int(value) > 0:
            return int(value)
        self.fail(f"{value!r} is not a positive integer or 'none'", param, ctx)


LIMIT = _Limit()


def _limit_value(value: int | str) -> int | None:
    return None if value == _NONE else int(value)


def _limits(rpm: int | str | None, tpm: int | str | None) -> dict[str, int | None]:
    """The ``rpm``/``tpm`` fields the options set (``none`` sends null: remove the limit)."""
    given = {"rpm": rpm, "tpm": tpm}
    return {name: _limit_value(value) for name, value in given.items() if value is not None}


def _parse_model_limit(text: str) -> tuple[str, dict[str, int] | None]:
    """``MODEL:rpm=N,tpm=M`` (either part optional) or ``MODEL:none``."""
    model, sep, terms = text.rpartition(":")
    if not sep or not model:
        raise click.BadParameter(f"{text!r}: write MODEL:rpm=N,tpm=M or MODEL:none")
    if terms.strip() == _NONE:
        return model, None
    limit: dict[str, int] = {}
    for term in terms.split(","):
        name, _, number = term.partition("=")
        if name.strip() not in ("rpm", "tpm") or not number.strip().isdigit():
            raise click.BadParameter(f"{text!r}: write MODEL:rpm=N,tpm=M or MODEL:none")
        limit[name.strip()] = int(number)
    return model, limit


def _model_limits(
    given: tuple[str, ...], current: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The team's model limits after applying ``--model-limit`` options to ``current``."""
    merged = dict(current or {})
    for text in given:
        model, limit = _parse_model_limit(text)
        if limit is None:
            merged.pop(model, None)
        else:
            merged[model] = limit
    return merged or None


log_bodies_option = click.option(
    "--log-bodies",
    type=click.Choice(["none", "metadata", "redacted", "full", "default"]),
    default=None,
    help="What the team's requests leave in the stored request logs ('default': the platform's).",
)
log_retention_option = click.option(
    "--log-retention-days",
    type=LIMIT,
    default=None,
    help="Days the team's request logs are kept ('none': the platform's default).",
)


def _log_policy(bodies: str | None, days: int | str | None) -> dict[str, Any]:
    """The ``log_bodies``/``log_retention_days`` fields the options set."""
    given: dict[str, Any] = {}
    if bodies is not None:
        given["log_bodies"] = None if bodies == "default" else bodies
    if days is not None:
        given["log_retention_days"] = _limit_value(days)
    return given


rpm_option = click.option("--rpm", type=LIMIT, default=None, help="Requests per minute.")
tpm_option = click.option("--tpm", type=LIMIT, default=None, help="Tokens per minute.")
model_limit_option = click.option(
    "--model-limit",
    "model_limit",
    multiple=True,
    metavar="MODEL:rpm=N,tpm=M",
    help="Rate limit of the team's use of one model (repeatable; MODEL:none removes it).",
)


def _limits_line(data: dict[str, Any]) -> str:
    parts = [f"rpm={data.get('rpm') or '-'}", f"tpm={data.get('tpm') or '-'}"]
    for model, limit in sorted((data.get("model_limits") or {}).items()):
        parts.append(f"{model}: rpm={limit.get('rpm') or '-'} tpm={limit.get('tpm') or '-'}")
    return "  ".join(parts)


@click.group()
def teams() -> None:
    """Create, list, show and update teams."""


@teams.command("create")
@click.argument("name")
@click.option("--models", default=None, help="Comma-separated model allowlist.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="max_tokens ceiling.")
@rpm_option
@tpm_option
@model_limit_option
@log_bodies_option
@log_retention_option
@json_option
def create_team(
    name: str,
    models: str | None,
    max_tokens: int | None,
    rpm: int | str | None,
    tpm: int | str | None,
    model_limit: tuple[str, ...],
    log_bodies: str | None,
    log_retention_days: int | str | None,
    as_json: bool,
) -> None:
    """Create team NAME."""
    body: dict[str, Any] = {
        "name": name,
        "models": _csv(models),
        "max_tokens": max_tokens,
        **_limits(rpm, tpm),
        "model_limits": _model_limits(model_limit),
        **_log_policy(log_bodies, log_retention_days),
    }
    team = call("POST", "/admin/teams", {k: v for k, v in body.items() if v is not None})
    _out(team, as_json, f"created team {team['id']} ({team['name']})")


@teams.command("list")
@json_option
def list_teams(as_json: bool) -> None:
    """List teams."""
    found = call("GET", "/admin/teams")["data"]
    lines = [f"{t['id']}  {t['name']}  models={','.join(t['models'] or ['*'])}" for t in found]
    _out(found, as_json, "\n".join(lines) or "(no teams)")


@teams.command("show")
@click.argument("team")
@json_option
def show_team(team: str, as_json: bool) -> None:
    """Show TEAM (id or name) with its services and budget."""
    data = call("GET", f"/admin/teams/{_quoted(team)}")
    budget = data["budget"]
    lines = [
        f"{data['id']}  {data['name']}",
        f"  models: {','.join(data['models'] or ['*'])}  max_tokens: {data['max_tokens']}",
        f"  limits: {_limits_line(data)}",
        f"  request logs: {data.get('log_bodies') or 'platform default'}, kept "
        f"{data.get('log_retention_days') or 'the default number of'} days",
        f"  budget: {budget['limit_usd']} USD per {budget['period']}"
        if budget
        else "  budget: none",
        *(f"  service {s['id']}  {s['name']}  {_limits_line(s)}" for s in data["services"]),
    ]
    _out(data, as_json, "\n".join(lines))


@teams.command("update")
@click.argument("team")
@click.option("--name", default=None, help="New name.")
@click.option("--models", default=None, help="Comma-separated allowlist ('*' for all).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="max_tokens ceiling.")
@rpm_option
@tpm_option
@model_limit_option
@log_bodies_option
@log_retention_option
@json_option
def update_team(
    team: str,
    name: str | None,
    models: str | None,
    max_tokens: int | None,
    rpm: int | str | None,
    tpm: int | str | None,
    model_limit: tuple[str, ...],
    log_bodies: str | None,
    log_retention_days: int | str | None,
    as_json: bool,
) -> None:
    """Update TEAM (id or name); `--rpm none` removes a limit."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name
    if models is not None:
        body["models"] = None if models.strip() == "*" else _csv(models)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body.update(_limits(rpm, tpm))
    body.update(_log_policy(log_bodies, log_retention_days))
    if model_limit:
        current = call("GET", f"/admin/teams/{_quoted(team)}").get("model_limits")
        body["model_limits"] = _model_limits(model_limit, current)
    data = call("PATCH", f"/admin/teams/{_quoted(team)}", body)
    _out(data, as_json, f"updated team {data['id']} ({data['name']})")


@click.group()
def services() -> None:
    """Create, list and update the services of teams."""


@services.command("create")
@click.argument("name")
@click.option("--team", required=True, help="Owning team (id or name).")
@rpm_option
@tpm_option
@json_option
def create_service(
    name: str, team: str, rpm: int | str | None, tpm: int | str | None, as_json: bool
) -> None:
    """Create service NAME in a team."""
    body: dict[str, Any] = {"team": team, "name": name}
    body.update(_limits(rpm, tpm))
    data = call("POST", "/admin/services", body)
    _out(data, as_json, f"created service {data['id']} ({data['name']})")


@services.command("update")
@click.argument("service")
@click.option("--team", required=True, help="Owning team (id or name).")
@click.option("--name", default=None, help="New name.")
@rpm_option
@tpm_option
@json_option
def update_service(
    service: str,
    team: str,
    name: str | None,
    rpm: int | str | None,
    tpm: int | str | None,
    as_json: bool,
) -> None:
    """Update SERVICE (id or name) of a team; `--rpm none` removes a limit."""
    body: dict[str, Any] = {"team": team}
    if name is not None:
        body["name"] = name
    body.update(_limits(rpm, tpm))
    data = call("PATCH", f"/admin/services/{_quoted(service)}", body)
    _out(data, as_json, f"updated service {data['id']} ({data['name']})  {_limits_line(data)}")


@services.command("list")
@click.option("--team", default=None, help="Only this team's services.")
@json_option
def list_services(team: str | None, as_json: bool) -> None:
    """List services."""
    query = f"?team={_quoted(team)}" if team else ""
    found = call("GET", f"/admin/services{query}")["data"]
    _out(
        found,
        as_json,
        "\n".join(f"{s['id']}  {s['team_id']}  {s['name']}  {_limits_line(s)}" for s in found)
        or "(no services)",
    )


@click.group()
def budgets() -> None:
    """Set and list budgets of keys, services and teams."""


@budgets.command("set")
@click.option("--scope", type=click.Choice(["key", "service", "team"]), required=True)
@click.option("--target", required=True, help="The key, service or team (id or name).")
@click.option("--team", default=None, help="For a service: its team.")
@click.option("--limit-usd", type=click.FloatRange(min=0), required=True)
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month", "none"]),
    default="month",
    show_default=True,
)
@click.option("--thresholds", default=None, help="Soft thresholds in percent, e.g. 50,80,100.")
@json_option
def set_budget(
    scope: str,
    target: str,
    team: str | None,
    limit_usd: float,
    period: str,
    thresholds: str | None,
    as_json: bool,
) -> None:
    """Set (or replace) a budget."""
    body: dict[str, Any] = {
        "scope": scope,
        "target": target,
        "limit_usd": limit_usd,
        "period": period,
        "thresholds": [int(t) for t in _csv(thresholds) or []],
    }
    if team is not None:
        body["team"] = team
    data = call("PUT", "/admin/budgets", body)
    _out(data, as_json, f"{scope} {data['scope_id']}: {data['limit_usd']} USD per {period}")


@budgets.command("list")
@json_option
def list_budgets(as_json: bool) -> None:
    """List budgets with their spend this period."""
    found = call("GET", "/admin/budgets")["data"]
    lines = [
        f"{b['scope']:8} {b['scope_id']}  {b['limit_usd']} USD/{b['period']}  "
        f"spent {b['spent_usd'] if b['spent_usd'] is not None else '-'}"
        for b in found
    ]
    _out(found, as_json, "\n".join(lines) or "(no budgets)")


@click.command()
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--type", "object_type", default=None, help="key, team, service or budget.")
@json_option
def audit(limit: int, object_type: str | None, as_json: bool) -> None:
    """Show the audit log of admin actions, newest first."""
    query = {"limit": str(limit), **({"object_type": object_type} if object_type else {})}
    entries = call("GET", f"/admin/audit?{urllib.parse.urlencode(query)}")["data"]
    lines = [
        f"{e['at'][:19]}  {e['actor']:28} {e['action']:14} {e['object_type']} {e['object_id']}"
        for e in entries
    ]
    _out(entries, as_json, "\n".join(lines) or "(no entries)")
