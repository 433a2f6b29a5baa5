"""``llmplane eval``: run suites through the gateway, list and show runs, bless baselines.

Model calls use the caller's key (``--key``, ``LLMPLANE_API_KEY``, else the admin key
as the other commands find it), so they are budgeted and attributed to its team.
Exit codes of ``eval run``: 0 passed, 1 a threshold missed, a significant regression
or a capped run, 2 bad input or configuration.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import click

from llmplane.cli.admin import print_json, print_table, query_string
from llmplane.cli.client import DEFAULT_URL, _admin_key, call
from llmplane.evals.client import HarnessClient
from llmplane.evals.gateway_client import GatewayCallError
from llmplane.evals.harness import EvalOptions, EvalReport, GitInfo, build_scorers, run_eval
from llmplane.evals.report import junit_xml, markdown
from llmplane.evals.suite import SuiteError, load_suite

EXIT_BAD_INPUT = 2


@click.group("eval")
def eval_group() -> None:
    """Eval suites: run them in CI, compare with a baseline, bless baselines."""


def _team_key() -> str | None:
    """``LLMPLANE_API_KEY`` (a team's key) when set; else the admin key is used."""
    return os.environ.get("LLMPLANE_API_KEY") or None


def _bad(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


async def _run(suite_path: Path, key: str, options: EvalOptions) -> EvalReport:
    suite = load_suite(suite_path)
    scorers = build_scorers(suite)
    base = os.environ.get("LLMPLANE_URL", DEFAULT_URL)
    async with HarnessClient(base, key) as client:
        return await run_eval(suite, client, options, scorers)


@eval_group.command("run")
@click.argument("suite_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--baseline",
    default="auto",
    show_default=True,
    help="A run id; auto (blessed, else the last run on main); prompt:NAME@V; none.",
)
@click.option(
    "--prompt-version",
    type=click.IntRange(min=1),
    default=None,
    help="Run the suite's registered prompt at this version.",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML.")
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a Markdown summary.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run and summary as JSON.")
@click.option("--no-cache", is_flag=True, help="Call the model even for stored outputs.")
@click.option("--resume", default=None, help="Finish this run: only its missing results run.")
@click.option("--concurrency", type=click.IntRange(min=1, max=1024), default=None)
@click.option("--repeat", type=click.IntRange(min=1, max=100), default=None, help="Repetitions.")
@click.option("--max-cost", type=click.FloatRange(min=0), default=None, help="Cost cap in USD.")
@click.option("--key", default=None, help="The key model calls use (default: LLMPLANE_API_KEY).")
def run_command(
    suite_path: Path,
    baseline: str,
    prompt_version: int | None,
    junit: Path | None,
    markdown_path: Path | None,
    as_json: bool,
    no_cache: bool,
    resume: str | None,
    concurrency: int | None,
    repeat: int | None,
    max_cost: float | None,
    key: str | None,
) -> None:
    """Run SUITE_PATH (YAML) through the gateway; exit 1 on a threshold miss or a
    significant regression against the baseline."""
    key = key or os.environ.get("LLMPLANE_API_KEY") or _admin_key()
    options = EvalOptions(
        baseline=None if baseline == "none" else baseline,
        prompt_version=prompt_version,
        use_cache=not no_cache,
        resume=resume,
        concurrency=concurrency,
        repetitions=repeat,
        max_cost_usd=max_cost,
        git=GitInfo.detect(suite_path.resolve().parent),
        progress=sys.stderr,
    )
    try:
        report = asyncio.run(_run(suite_path, key, options))
    except SuiteError as exc:
        _bad(str(exc))
    except GatewayCallError as exc:
        _bad(f"the gateway refused: {exc}")
    except OSError as exc:
        _bad(f"cannot reach llmplane ({exc}); set LLMPLANE_URL")
    if junit is not None:
        junit.write_text(junit_xml(report), encoding="utf-8")
    if markdown_path is not None:
        markdown_path.write_text(markdown(report), encoding="utf-8")
    if as_json:
        print_json({**report.run, "summary": report.summary})
    else:
        click.echo(markdown(report))
    sys.exit(0 if report.passed else 1)


@eval_group.command("runs")
@click.option("--suite", default=None, help="Only this suite's runs.")
@click.option("--branch", default=None, help="Only runs on this branch.")
@click.option("--prompt", default=None, help="Only runs against this prompt (name@version).")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(
    suite: str | None, branch: str | None, prompt: str | None, limit: int, as_json: bool
) -> None:
    """List runs, newest first."""
    found = call(
        "GET",
        "/admin/evals/runs"
        + query_string({"suite": suite, "branch": branch, "prompt": prompt, "limit": limit}),
        key=_team_key(),
    )["data"]
    if as_json:
        print_json(found)
        return
    rows = []
    for run in found:
        verdict = (run["summary"] or {}).get("verdict", {})
        rows.append(
            [
                run["id"],
                run["suite"],
                run["status"] + (" *" if run["blessed"] else ""),
                {True: "pass", False: "FAIL"}.get(verdict.get("passed"), "-"),
                run["prompt"] or run["target"],
                run["git_branch"] or "-",
                f"{run['cost_usd']:.4f}",
                run["started_at"][:19],
            ]
        )
    print_table(rows, ["ID", "SUITE", "STATUS", "VERDICT", "TARGET", "BRANCH", "COST", "STARTED"])


def _show(run: dict[str, Any]) -> None:
    summary = run["summary"] or {}
    click.echo(
        f"run {run['id']}  suite {run['suite']}  {run['status']}"
        + ("  (blessed)" if run["blessed"] else "")
    )
    click.echo(
        f"target {run['target']}  prompt {run['prompt'] or '-'}  models {', '.join(run['models'])}"
        + (f"  dataset {run['dataset']}" if run.get("dataset") else "")
    )
    click.echo(
        f"git {run['git_branch'] or '-'} {(run['git_sha'] or '-')[:12]}"
        f"  cost ${run['cost_usd']:.4f}"
    )
    rows = [
        [name, f"{m['mean']:.3f}", f"{m['pass_rate'] * 100:.1f}%", str(m["n"])]
        for name, m in summary.get("metrics", {}).items()
    ]
    if rows:
        click.echo("")
        print_table(rows, ["SCORER", "MEAN", "PASS", "N"])
    for reason in summary.get("verdict", {}).get("reasons", []):
        click.echo(f"failed: {reason}")


@eval_group.command("show")
@click.argument("run_id")
@click.option("--cases", "with_cases", is_flag=True, help="List every case result too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the case results).")
def show_command(run_id: str, with_cases: bool, as_json: bool) -> None:
    """Show RUN_ID: target, metrics, verdict (and its case results)."""
    run = call("GET", f"/admin/evals/runs/{urllib.parse.quote(run_id, safe='')}", key=_team_key())
    if as_json:
        print_json(run)
        return
    _show(run)
    if with_cases:
        click.echo("")
        print_table(
            [
                [
                    c["case_id"],
                    c["model"] or "-",
                    str(c["repetition"]),
                    " ".join(
                        f"{n}={'ok' if s['passed'] else 'FAIL'}" for n, s in c["scores"].items()
                    ),
                    c["error"] or "",
                ]
                for c in run["cases"]
            ],
            ["CASE", "MODEL", "REP", "SCORES", "ERROR"],
        )


@eval_group.command("bless")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bless_command(run_id: str, as_json: bool) -> None:
    """Make RUN_ID its suite's baseline (later runs compare with it)."""
    run = call(
        "POST", f"/admin/evals/runs/{urllib.parse.quote(run_id, safe='')}/bless", key=_team_key()
    )
    if as_json:
        print_json(run)
    else:
        click.echo(f"run {run['id']} is now the baseline of suite {run['suite']}")


@eval_group.group("datasets")
def datasets_group() -> None:
    """Registered datasets: named test sets with immutable versions, per team."""


@datasets_group.command("push")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--team", default=None, help="The owning team (admin key; default: the key's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def datasets_push(name: str, file: Path, team: str | None, as_json: bool) -> None:
    """Push FILE (.jsonl or .csv) as a new version of dataset NAME (the same cases as an
    existing version: that version)."""
    fmt = file.suffix.lower().lstrip(".")
    fmt = "jsonl" if fmt == "ndjson" else fmt
    if fmt not in ("jsonl", "csv"):
        _bad(f"{file}: a dataset is a .jsonl or .csv file")
    try:
        content = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _bad(f"{file}: cannot read: {exc}")
    body: dict[str, Any] = {"name": name, "format": fmt, "content": content}
    if team is not None:
        body["team"] = team
    version = call("POST", "/admin/evals/datasets", body, key=_team_key())
    if as_json:
        print_json(version)
        return
    state = "new version" if version["created"] else "unchanged: same cases as"
    click.echo(f"{version['name']}@{version['version']} ({state}; {version['cases']} cases)")


@datasets_group.command("list")
@click.option("--team", default=None, help="Only this team's (admin key).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def datasets_list(team: str | None, as_json: bool) -> None:
    """The datasets the key reaches, with their newest version."""
    found = call("GET", "/admin/evals/datasets" + query_string({"team": team}), key=_team_key())
    if as_json:
        print_json(found["data"])
        return
    print_table(
        [
            [
                d["name"],
                d["team_id"] or "-",
                str(d["latest_version"]),
                str(d["cases"]),
                d["updated_at"][:19],
            ]
            for d in found["data"]
        ],
        ["NAME", "TEAM", "LATEST", "CASES", "UPDATED"],
    )


@datasets_group.command("show")
@click.argument("name")
@click.option("--version", "version", default="latest", show_default=True)
@click.option("--team", default=None, help="The owning team (admin key).")
@click.option("--cases", "with_cases", is_flag=True, help="Print the cases (JSONL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with the cases).")
def datasets_show(
    name: str, version: str, team: str | None, with_cases: bool, as_json: bool
) -> None:
    """Show a version of dataset NAME and the list of its versions."""
    path = f"/admin/evals/datasets/{urllib.parse.quote(name, safe='')}"
    found = call("GET", path + query_string({"version": version, "team": team}), key=_team_key())
    if as_json:
        print_json(found)
        return
    if with_cases:
        click.echo(found["content"], nl=False)
        return
    click.echo(
        f"dataset {found['name']}@{found['version']}  {found['cases']} cases  "
        f"team {found['team_id'] or '-'}  sha256 {found['fingerprint'][:12]}"
    )
    click.echo("")
    print_table(
        [
            [
                str(v["version"]),
                str(v["cases"]),
                v["fingerprint"][:12],
                v["created_at"][:19],
                v["created_by"],
            ]
            for v in found["versions"]
        ],
        ["VERSION", "CASES", "SHA256", "CREATED", "BY"],
    )
