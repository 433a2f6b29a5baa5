"""``llmplane incidents`` and ``llmplane changes``: the incident log and the changes that
cause incidents, against the running gateway."""

from __future__ import annotations

import urllib.parse
from typing import Any

import click

from llmplane.cli.admin import print_json, print_table, query_string, time_option
from llmplane.cli.client import call

_SEVERITIES = ["sev1", "sev2", "sev3", "sev4"]
_KINDS = ["model", "deployment", "prompt", "config", "other"]


def _cause(incident: dict[str, Any]) -> str:
    cause = incident["cause"]
    if cause is None:
        return "unknown"
    text = f"{cause['kind']}:{cause['subject']}"
    return text + (f" (change {cause['change_id']})" if cause["change_id"] is not None else "")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@click.group()
def incidents() -> None:
    """Open, close and list incidents, each linked to the change that caused it."""


@incidents.command("open")
@click.argument("title")
@click.option("--severity", type=click.Choice(_SEVERITIES), default="sev3", show_default=True)
@click.option(
    "--cause",
    default=None,
    help="change:ID, or KIND:SUBJECT such as model:gpt-4o, prompt:support-bot@7, "
    "deployment:openai-east (default: unknown).",
)
@click.option("--team", default=None, help="The team affected (id or name).")
@click.option("--started", default=None, help="When impact began (ISO time; default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def open_incident(
    title: str,
    severity: str,
    cause: str | None,
    team: str | None,
    started: str | None,
    as_json: bool,
) -> None:
    """Open an incident."""
    body: dict[str, Any] = {"title": title, "severity": severity}
    optional = {"cause": cause, "team": team, "started_at": started}
    body.update({k: v for k, v in optional.items() if v is not None})
    incident = call("POST", "/admin/incidents", body)
    if as_json:
        print_json(incident)
        return
    click.echo(
        f"opened incident {incident['id']} ({incident['severity']}, cause "
        f"{_cause(incident)}): {incident['title']}"
    )


@incidents.command("close")
@click.argument("incident")
@click.option("--resolution", default=None, help="What resolved it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def close_incident(incident: str, resolution: str | None, as_json: bool) -> None:
    """Close an open incident by its number."""
    body = {"resolution": resolution} if resolution is not None else {}
    number = urllib.parse.quote(incident.removeprefix("#"), safe="")
    closed = call("POST", f"/admin/incidents/{number}/close", body)
    if as_json:
        print_json(closed)
        return
    click.echo(
        f"closed incident {closed['id']} after {_duration(closed['time_to_resolve_s'])}: "
        f"{closed['title']}"
    )


@incidents.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only open incidents.")
@click.option("--team", default=None, help="Only this team's (id or name).")
@click.option("--since", default=None, help="Opened since: ISO time, or 7d, 12h, 30m.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_incidents(only_open: bool, team: str | None, since: str | None, as_json: bool) -> None:
    """The newest incidents first."""
    query = {
        "status": "open" if only_open else None,
        "team": team,
        "since": time_option(since, "--since"),
    }
    found = call("GET", f"/admin/incidents{query_string(query)}")["data"]
    if as_json:
        print_json(found)
        return
    print_table(
        [
            [
                str(i["id"]),
                i["severity"],
                i["status"],
                i["opened_at"][:16].replace("T", " "),
                _duration(i["time_to_resolve_s"]),
                _cause(i),
                i["title"],
            ]
            for i in found
        ],
        ["ID", "SEV", "STATUS", "OPENED (UTC)", "RESOLVED IN", "CAUSE", "TITLE"],
    )


@click.group()
def changes() -> None:
    """Record and list the changes that can cause incidents (the gateway records its own
    model and deployment changes when it starts)."""


@changes.command("record")
@click.argument("kind", type=click.Choice(_KINDS))
@click.argument("subject")
@click.option("--summary", default="", help="What changed, in a line.")
@click.option(
    "--action",
    type=click.Choice(["added", "changed", "removed"]),
    default="changed",
    show_default=True,
)
@click.option("--actor", default=None, help="Who made it (default: the admin key).")
@click.option("--team", default=None, help="The team whose change it is (id or name).")
@click.option("--at", default=None, help="When it happened (ISO time; default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def record_change(
    kind: str,
    subject: str,
    summary: str,
    action: str,
    actor: str | None,
    team: str | None,
    at: str | None,
    as_json: bool,
) -> None:
    """Record a change, e.g. from a deploy script: ``changes record deployment openai-east
    --summary "moved to the new region"``."""
    body: dict[str, Any] = {"kind": kind, "subject": subject, "summary": summary, "action": action}
    body.update({k: v for k, v in {"actor": actor, "team": team, "at": at}.items() if v})
    change = call("POST", "/admin/changes", body)
    if as_json:
        print_json(change)
        return
    click.echo(f"recorded change {change['id']}: {change['kind']} {change['subject']}")


@changes.command("list")
@click.option("--since", default=None, help="ISO time, or 7d, 12h, 30m back from now.")
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_changes(since: str | None, kind: str | None, as_json: bool) -> None:
    """The newest changes first."""
    query = {"since": time_option(since, "--since"), "kind": kind}
    found = call("GET", f"/admin/changes{query_string(query)}")["data"]
    if as_json:
        print_json(found)
        return
    print_table(
        [
            [
                str(c["id"]),
                c["at"][:16].replace("T", " "),
                c["kind"],
                c["subject"],
                c["action"],
                c["actor"],
                c["summary"],
            ]
            for c in found
        ],
        ["ID", "AT (UTC)", "KIND", "SUBJECT", "ACTION", "BY", "SUMMARY"],
    )
