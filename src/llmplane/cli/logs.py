"""``llmplane logs``: query, show, delete and purge the stored request logs."""

from __future__ import annotations

import urllib.parse

import click

from llmplane.cli.admin import print_json, print_table, query_string, time_option
from llmplane.cli.client import call


@click.group(invoke_without_command=True)
@click.option("--request-id", default=None, help="Only this request id.")
@click.option("--key", default=None, help="Only this key (id or unique name).")
@click.option("--model", default=None, help="Only this model (asked for or served).")
@click.option("--team", default=None, help="Only this team (id or name).")
@click.option("--user", default=None, help="Only this end user.")
@click.option("--since", default=None, help="ISO date or time, or a duration ago (24h).")
@click.option("--until", default=None, help="ISO date or time, or a duration ago.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def logs(
    ctx: click.Context,
    request_id: str | None,
    key: str | None,
    model: str | None,
    team: str | None,
    user: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Stored request logs (of teams whose policy keeps them), newest first."""
    if ctx.invoked_subcommand is not None:
        return
    query = query_string(
        {
            "request_id": request_id,
            "key": key,
            "model": model,
            "team": team,
            "user": user,
            "since": time_option(since, "--since"),
            "until": time_option(until, "--until"),
            "limit": limit,
        }
    )
    rows = call("GET", f"/admin/logs{query}")["data"]
    if as_json:
        print_json(rows)
        return
    print_table(
        [
            [
                row["created_at"][:19].replace("T", " "),
                row["request_id"],
                row["operation"] or "-",
                row["model"] or "-",
                str(row["status"]),
                f"{row['prompt_tokens']}+{row['completion_tokens']}",
                f"{row['cost_usd']:.6f}",
                f"{row['duration_ms']:.0f}",
                row["user"] or "-",
                row["policy"],
            ]
            for row in rows
        ],
        [
            "TIME (UTC)",
            "REQUEST",
            "OPERATION",
            "MODEL",
            "STATUS",
            "TOKENS",
            "USD",
            "MS",
            "USER",
            "POLICY",
        ],
    )


@logs.command("show")
@click.argument("request_id")
def show(request_id: str) -> None:
    """One request's log with its bodies (as JSON)."""
    print_json(call("GET", f"/admin/logs/{urllib.parse.quote(request_id, safe='')}"))


@logs.command("delete")
@click.option("--user", required=True, help="The end user whose logs to delete.")
@click.option("--team", default=None, help="Only this team's logs of the user.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def delete(user: str, team: str | None, yes: bool, as_json: bool) -> None:
    """Delete every stored request log of one end user (a deletion request; audited)."""
    if not yes:
        click.confirm(f"Delete every stored request log of user {user!r}?", abort=True)
    result = call("DELETE", f"/admin/logs{query_string({'user': user, 'team': team})}")
    if as_json:
        print_json(result)
    else:
        click.echo(f"deleted {result['deleted']} request logs of user {user}")


@logs.command("purge")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def purge(as_json: bool) -> None:
    """Delete the logs past their retention now (the gateway does it every few minutes)."""
    result = call("POST", "/admin/logs/purge", {})
    if as_json:
        print_json(result)
    else:
        click.echo(f"deleted {result['deleted']} expired request logs")
