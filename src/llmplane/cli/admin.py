"""``llmplane keys`` and ``llmplane spend``: admin commands against the running gateway."""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from llmplane.accounting.spend import SPEND_DIMENSIONS
from llmplane.cli.client import call

_DURATION = re.compile(r"(\d+)([dhm])")
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


@click.group()
def keys() -> None:
    """Create, list and revoke virtual keys."""


def duration(value: str) -> timedelta | None:
    """A duration such as ``30d``, ``12h`` or ``90m``; ``None`` if ``value`` is not one."""
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        return None
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def time_option(value: str | None, option: str) -> str | None:
    """A time option: an ISO date or time as given, or a duration ago (``24h``, ``7d``,
    ``90m``) as an ISO time."""
    if value is None:
        return None
    ago = duration(value)
    if ago is not None:
        return (datetime.now(UTC) - ago).isoformat()
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "use an ISO date or time (2026-11-01) or a duration ago (24h, 7d, 90m)",
            param_hint=option,
        ) from None
    return value


def query_string(params: dict[str, Any]) -> str:
    """``?name=value&…`` of the parameters that are not ``None`` (empty if none is)."""
    given = {name: value for name, value in params.items() if value is not None}
    return f"?{urllib.parse.urlencode(given)}" if given else ""


def _expires_at(value: str) -> str:
    lifetime = duration(value)
    if lifetime is None:
        raise click.BadParameter("use a duration such as 30d, 12h or 90m", param_hint="--expires")
    return (datetime.now(UTC) + lifetime).isoformat()


@keys.command("create")
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--team", default=None, help="Owning team (id or name).")
@click.option("--service", default=None, help="Service of the team (id or name).")
@click.option("--user", default=None, help="End user the key acts for.")
@click.option("--models", default=None, help="Comma-separated allowlist (default: all models).")
@click.option("--rpm", type=click.IntRange(min=1), default=None, help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1), default=None, help="Tokens per minute.")
@click.option("--budget-usd", type=click.FloatRange(min=0), default=None, help="Key budget.")
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month", "none"]),
    default="month",
    show_default=True,
    help="Budget period.",
)
@click.option("--expires", default=None, help="Lifetime such as 30d, 12h or 90m.")
@click.option(
    "--role",
    type=click.Choice(["member", "team_admin"]),
    default=None,
    help="team_admin keys manage their own team's services and keys.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_key(
    name: str,
    team: str | None,
    service: str | None,
    user: str | None,
    models: str | None,
    rpm: int | None,
    tpm: int | None,
    budget_usd: float | None,
    period: str,
    expires: str | None,
    role: str | None,
    as_json: bool,
) -> None:
    """Create a key; it is printed once and stored only as a hash."""
    body: dict[str, Any] = {"name": name}
    if models is not None:
        body["models"] = [m.strip() for m in models.split(",") if m.strip()]
    optional = {
        "team": team,
        "service": service,
        "user": user,
        "rpm": rpm,
        "tpm": tpm,
        "budget_usd": budget_usd,
        "role": role,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if budget_usd is not None:
        body["period"] = period
    if expires is not None:
        body["expires_at"] = _expires_at(expires)
    record = call("POST", "/admin/keys", body)
    if as_json:
        print_json(record)
        return
    click.echo(f"created key {record['id']} ({record['name']}); it will not be shown again:")
    click.echo(record["key"])


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(include_revoked: bool, as_json: bool) -> None:
    """List keys (never the keys themselves)."""
    query = "?include_revoked=true" if include_revoked else ""
    records = call("GET", f"/admin/keys{query}")["data"]
    if as_json:
        print_json(records)
        return
    print_table(
        [
            [
                r["id"],
                r["name"],
                r["key_hint"],
                ",".join(r["models"] or ["*"]),
                r["status"],
                r["created_at"][:19],
            ]
            for r in records
        ],
        ["ID", "NAME", "KEY", "MODELS", "STATUS", "CREATED"],
    )


@keys.command("revoke")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def revoke_key(key: str, as_json: bool) -> None:
    """Revoke KEY (its id, or its name when unique); it stops working at once."""
    record = call("DELETE", f"/admin/keys/{urllib.parse.quote(key, safe='')}")
    if as_json:
        print_json(record)
    else:
        click.echo(f"revoked key {record['id']} ({record['name']})")


def _monthly_report(month: str, team: str | None, csv_path: str | None, as_json: bool) -> None:
    query = urllib.parse.urlencode({"month": month, **({"team": team} if team else {})})
    report = call("GET", f"/admin/spend/report?{query}")
    if csv_path is not None:
        from llmplane.accounting.spend import report_csv

        Path(csv_path).write_text(report_csv(report), encoding="utf-8")
        click.echo(f"wrote {csv_path}", err=True)
    if as_json:
        print_json(report)
        return
    change = report["change_pct"]
    click.echo(
        f"{report['month']}: ${report['total_cost_usd']:.2f} "
        f"(previous month ${report['previous_total_cost_usd']:.2f}"
        f"{f', {change:+.1f}%' if change is not None else ''})\n"
    )
    print_table(
        [
            [
                r["team"] or "-",
                r["service"] or "-",
                str(r["requests"]),
                f"{r['cost_usd']:.4f}",
                f"{r['previous_cost_usd']:.4f}",
                "-" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%",
            ]
            for r in report["by_team_service"]
        ],
        ["TEAM", "SERVICE", "REQUESTS", "USD", "PREVIOUS", "CHANGE"],
    )
    click.echo("")
    print_table(
        [
            [
                r["model"],
                str(r["tokens"]),
                f"{r['cost_usd']:.4f}",
                "-" if r["cost_per_mtok_usd"] is None else f"{r['cost_per_mtok_usd']:.4f}",
                "-" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%",
            ]
            for r in report["by_model"]
        ],
        ["MODEL", "TOKENS", "USD", "USD/1M TOKENS", "CHANGE"],
    )


@keys.command("rotate")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rotate_key(key: str, as_json: bool) -> None:
    """Give KEY (id or unique name) a new secret; the old one stops working."""
    record = call("POST", f"/admin/keys/{urllib.parse.quote(key, safe='')}/rotate", {})
    if as_json:
        print_json(record)
        return
    click.echo(f"rotated key {record['id']} ({record['name']}); it will not be shown again:")
    click.echo(record["key"])


@click.command()
@click.option("--since", default=None, help="ISO date or time (inclusive).")
@click.option("--until", default=None, help="ISO date or time (exclusive).")
@click.option("--team", default=None, help="Only this team's spend (id or name).")
@click.option(
    "--by",
    type=click.Choice(SPEND_DIMENSIONS),
    default=None,
    help="Group by one dimension instead of by key and by model.",
)
@click.option(
    "--report",
    "month",
    default=None,
    metavar="YYYY-MM",
    help="A month's finance report: teams and services, cost per 1M tokens by "
    "model, each with the change from the month before.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --report: write the report as CSV to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def spend(
    since: str | None,
    until: str | None,
    team: str | None,
    by: str | None,
    month: str | None,
    csv_path: str | None,
    as_json: bool,
) -> None:
    """Requests, tokens and USD by key and by model (or --by one dimension, or --report)."""
    if month is not None:
        _monthly_report(month, team, csv_path, as_json)
        return
    params = {
        k: v for k, v in {"since": since, "until": until, "by": by, "team": team}.items() if v
    }
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    summary = call("GET", f"/admin/spend{query}")
    if as_json:
        print_json(summary)
        return
    total = summary["total"]
    click.echo(
        f"total: {total['requests']} requests, {total['prompt_tokens']} prompt + "
        f"{total['completion_tokens']} completion tokens, ${total['cost_usd']:.6f}\n"
    )

    def rows(items: list[dict[str, Any]], label: str) -> list[list[str]]:
        return [
            [
                str(i[label] or "-"),
                str(i["requests"]),
                str(i["prompt_tokens"]),
                str(i["completion_tokens"]),
                f"{i['cost_usd']:.6f}",
            ]
            for i in items
        ]

    if by is not None:
        for row in summary["rows"]:
            row["label"] = row.get("name") or row[by]
        print_table(
            rows(summary["rows"], "label"), [by.upper(), "REQUESTS", "PROMPT", "COMPLETION", "USD"]
        )
        return
    print_table(rows(summary["by_key"], "name"), ["KEY", "REQUESTS", "PROMPT", "COMPLETION", "USD"])
    click.echo("")
    print_table(
        rows(summary["by_model"], "model"), ["MODEL", "REQUESTS", "PROMPT", "COMPLETION", "USD"]
    )
