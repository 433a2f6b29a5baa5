"""``llmplane report``: adoption, cost, spend by team, SLOs and incidents, from the running
gateway."""

from __future__ import annotations

import urllib.parse
from typing import Any

import click

from llmplane.cli.admin import print_json, print_table
from llmplane.cli.client import call


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_report(report: dict[str, Any]) -> None:
    adoption = report["adoption"]
    click.echo(f"Adoption (active = at least one successful call; {adoption['trend']})")
    print_table(
        [
            [w["week"], w["start"], str(w["active_teams"]), str(w["active_services"])]
            for w in adoption["weeks"]
        ],
        ["WEEK", "FROM", "TEAMS", "SERVICES"],
    )
    cost = report["cost"]
    click.echo(f"\nCost per 1M tokens, {cost['month']} vs {cost['previous_month']}")
    print_table(
        [
            [
                row["model"],
                str(row["tokens"]),
                f"{row['cost_usd']:.4f}",
                _num(row["cost_per_mtok_usd"], ".4f"),
                _num(row["previous_cost_per_mtok_usd"], ".4f"),
                _num(row["change_pct"], "+.1f") + ("%" if row["change_pct"] is not None else ""),
            ]
            for row in [{**cost["overall"], "model": "(all)"}, *cost["by_model"]]
        ],
        ["MODEL", "TOKENS", "USD", "USD/1M", "PREVIOUS", "CHANGE"],
    )
    click.echo(f"\nSpend by team, {cost['month']}")
    print_table(
        [
            [
                row["team"] or "-",
                str(row["requests"]),
                f"{row['cost_usd']:.4f}",
                f"{row['previous_cost_usd']:.4f}",
                _num(row["change_pct"], "+.1f") + ("%" if row["change_pct"] is not None else ""),
            ]
            for row in report["spend_by_team"]
        ],
        ["TEAM", "REQUESTS", "USD", "PREVIOUS", "CHANGE"],
    )
    click.echo("\nDeployments against their SLOs")
    print_table(
        [
            [
                row["deployment"],
                f"{row['window_days']}d",
                str(row["calls"]),
                _num(None if row["error_rate"] is None else row["error_rate"] * 100, ".2f"),
                _num(row["latency_p50_ms"], ".0f"),
                _num(row["latency_p95_ms"], ".0f"),
                _num(row["ttft_p95_ms"], ".0f"),
                _num(
                    None if row["error_budget_left"] is None else row["error_budget_left"] * 100,
                    ".1f",
                ),
                row["status"],
            ]
            for row in report["deployments"]
        ],
        ["DEPLOYMENT", "WINDOW", "CALLS", "ERR%", "P50MS", "P95MS", "TTFT95", "BUDGET%", "SLO"],
    )
    _print_incidents(report["incidents"])


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _hours_or_minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _print_incidents(section: dict[str, Any]) -> None:
    mttr = section["mean_time_to_resolve_s"]
    click.echo(f"\nIncidents since {section['since'][:16].replace('T', ' ')} UTC")
    click.echo(
        f"  opened {section['opened']}, closed {section['closed']}, open now "
        f"{section['open_now']}; mean time to resolve "
        f"{'-' if mttr is None else _hours_or_minutes(mttr)}"
    )
    click.echo(
        f"  from prompt, model and deployment changes: {section['attributable_to_changes']} "
        f"({_pct(section['attributable_share'])} of those opened)"
    )
    incidents_by_kind = {row["kind"]: row for row in section["by_cause"]}
    print_table(
        [
            [
                row["kind"],
                str(row["changes"]),
                str(row["incidents"]),
                _pct(incidents_by_kind[row["kind"]]["share"]),
                _num(row["incidents_per_change"], ".3f"),
            ]
            for row in section["change_rates"]
        ]
        + [
            [
                "unknown",
                "-",
                str(incidents_by_kind["unknown"]["incidents"]),
                _pct(incidents_by_kind["unknown"]["share"]),
                "-",
            ]
        ],
        ["CAUSE", "CHANGES", "INCIDENTS", "SHARE", "PER CHANGE"],
    )


@click.command()
@click.option(
    "--weeks", type=click.IntRange(1, 52), default=4, show_default=True, help="Weeks of adoption."
)
@click.option("--month", default=None, metavar="YYYY-MM", help="Month of the cost figures.")
@click.option("--team", default=None, help="Only this team (id or name).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report(weeks: int, month: str | None, team: str | None, as_json: bool) -> None:
    """Adoption per week, cost per 1M tokens (month over month), spend by team, each
    deployment against its SLO with the error budget left, and the incidents of the last
    WEEKS x 7 days with the share caused by prompt, model and deployment changes."""
    query = {"weeks": str(weeks)}
    if month is not None:
        query["month"] = month
    if team is not None:
        query["team"] = team
    answer = call("GET", f"/admin/report?{urllib.parse.urlencode(query)}")
    if as_json:
        print_json(answer)
    else:
        _print_report(answer)
