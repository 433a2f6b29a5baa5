"""``llmplane prompts``: the prompt registry, against the running gateway.

A prompt file (YAML) holds one version: ``template`` (a string or chat messages with
``{{ variable }}`` placeholders), ``variables`` with their types, ``model``, ``params``,
``tools``, ``response_format`` and an optional ``description``.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import click
import yaml

from llmplane.cli.admin import print_json, print_table, query_string
from llmplane.cli.client import _admin_key, _fail, call, call_status
from llmplane.errors import InvalidRequestError
from llmplane.prompts import PromptContent, parse_cli_value


def _path(name: str) -> str:
    return f"/admin/prompts/{urllib.parse.quote(name, safe='')}"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"cannot read {path}: {exc}")
    if not isinstance(data, dict):
        _fail(f"{path} must hold a mapping with 'template' (and variables, model, params, ...)")
    return data


def _selector(label: str | None, version: int | None) -> dict[str, Any]:
    if label is not None and version is not None:
        raise click.UsageError("give --label or --version, not both")
    return {"label": label, "version": version}


@click.group()
def prompts() -> None:
    """Prompts with immutable versions and labels (production, staging, ...) that move
    between them; every move is recorded."""


@prompts.command("create")
@click.argument("name")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The version as YAML: template, variables, model, params, tools, response_format.",
)
@click.option("--team", default=None, help="Owning team (id or name; default: the platform).")
@click.option("--message", default=None, help="What this version changes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(name: str, file: Path, team: str | None, message: str | None, as_json: bool) -> None:
    """Add a version to NAME (creating it); identical content returns the existing version."""
    body = {**_read_file(file), "name": name}
    if team is not None:
        body["team"] = team
    if message is not None:
        body["message"] = message
    version = call("POST", "/admin/prompts", body)
    if as_json:
        print_json(version)
        return
    if version["created"]:
        click.echo(f"created {version['name']} version {version['version']}")
    else:
        click.echo(
            f"unchanged: {version['name']} version {version['version']} has the same content"
        )


@prompts.command("list")
@click.option("--team", default=None, help="Only this team's and the platform's prompts.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_prompts(team: str | None, as_json: bool) -> None:
    """The prompts with their labels."""
    found = call("GET", f"/admin/prompts{query_string({'team': team})}")["data"]
    if as_json:
        print_json(found)
        return
    print_table(
        [
            [
                p["name"],
                p["team_id"] or "(platform)",
                str(p["latest_version"]),
                ", ".join(f"{label}=v{v}" for label, v in sorted(p["labels"].items())) or "-",
                p["updated_at"][:16].replace("T", " "),
            ]
            for p in found
        ],
        ["NAME", "TEAM", "LATEST", "LABELS", "UPDATED (UTC)"],
    )


@prompts.command("show")
@click.argument("name")
@click.option("--label", default=None, help="The version this label points at.")
@click.option("--version", type=click.IntRange(min=1), default=None, help="This version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, label: str | None, version: int | None, as_json: bool) -> None:
    """A prompt's labels and one version (the newest by default)."""
    found = call("GET", _path(name) + query_string(_selector(label, version)))
    if as_json:
        print_json(found)
        return
    shown = found["version"]
    labels = ", ".join(f"{k}=v{v}" for k, v in sorted(found["labels"].items())) or "none"
    click.echo(f"{found['name']} (team {found['team_id'] or '(platform)'}); labels: {labels}")
    click.echo(f"version {shown['version']} by {shown['created_by']} at {shown['created_at']}")
    content = {k: shown[k] for k in ("model", "params", "variables", "tools", "response_format")}
    click.echo(
        yaml.safe_dump(
            {"template": shown["template"], **{k: v for k, v in content.items() if v}},
            sort_keys=False,
            allow_unicode=True,
        ).rstrip()
    )


@prompts.command("versions")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def versions(name: str, as_json: bool) -> None:
    """Every version of NAME, newest first."""
    found = call("GET", f"{_path(name)}/versions")["data"]
    if as_json:
        print_json(found)
        return
    print_table(
        [
            [
                str(v["version"]),
                v["created_at"][:16].replace("T", " "),
                v["created_by"],
                v["model"] or "-",
                v["message"] or "",
            ]
            for v in found
        ],
        ["VERSION", "CREATED (UTC)", "BY", "MODEL", "MESSAGE"],
    )


def _moved(answer: dict[str, Any]) -> None:
    move = answer["move"]
    if move is None:
        click.echo(f"{answer['label']} already points at version {answer['version']}")
        return
    was = f"version {move['from_version']}" if move["from_version"] is not None else "nothing"
    click.echo(f"{answer['name']} {answer['label']}: {was} -> version {move['to_version']}")


@prompts.command("label")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--label", required=True, help="production, staging or any label name.")
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def label(name: str, version: int, label: str, reason: str | None, as_json: bool) -> None:
    """Point a label of NAME at VERSION."""
    body: dict[str, Any] = {"version": version}
    if reason is not None:
        body["reason"] = reason
    answer = call("PUT", _label_path(name, label), body)
    if as_json:
        print_json(answer)
    else:
        _moved(answer)


def _label_path(name: str, label: str) -> str:
    return f"{_path(name)}/labels/{urllib.parse.quote(label, safe='')}"


def _gate_path(name: str, label: str) -> str:
    return f"{_path(name)}/gates/{urllib.parse.quote(label, safe='')}"


@prompts.command("gate")
@click.argument("name")
@click.option("--label", required=True, help="The label the gate guards (e.g. production).")
@click.option("--suite", "suite", required=True, help="The eval suite's name (its YAML 'name').")
@click.option(
    "--allow-regression",
    is_flag=True,
    help="Only the suite's thresholds count, not a regression against the current version.",
)
@click.option(
    "--max-age-days", type=click.IntRange(min=1), default=None, help="Only recent runs count."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gate(
    name: str,
    label: str,
    suite: str,
    allow_regression: bool,
    max_age_days: int | None,
    as_json: bool,
) -> None:
    """Require SUITE to pass before a version of NAME gets the label (replaces its gate)."""
    body: dict[str, Any] = {"suite": suite, "require_no_regression": not allow_regression}
    if max_age_days is not None:
        body["max_age_days"] = max_age_days
    found = call("PUT", _gate_path(name, label), body)
    if as_json:
        print_json(found)
        return
    click.echo(f"{name} {label}: gated by suite {found['suite']} ({_gate_rule(found)})")


def _gate_rule(found: dict[str, Any]) -> str:
    rule = "passed, no regression" if found["require_no_regression"] else "passed"
    if found["max_age_days"] is not None:
        rule += f", run within {found['max_age_days']} days"
    return str(rule)


@prompts.command("gates")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gates(name: str, as_json: bool) -> None:
    """The promotion gates of NAME's labels."""
    found = call("GET", f"{_path(name)}/gates")["data"]
    if as_json:
        print_json(found)
        return
    print_table(
        [
            [g["label"], g["suite"], _gate_rule(g), g["created_by"], g["created_at"][:16]]
            for g in found
        ],
        ["LABEL", "SUITE", "REQUIRES", "BY", "SINCE"],
    )


@prompts.command("ungate")
@click.argument("name")
@click.option("--label", required=True, help="The label whose gate to remove.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ungate(name: str, label: str, as_json: bool) -> None:
    """Remove the promotion gate of a label of NAME (audited)."""
    found = call("DELETE", _gate_path(name, label))
    if as_json:
        print_json(found)
    else:
        click.echo(f"{name} {label}: gate by suite {found['suite']} removed")


@prompts.command("rollback")
@click.argument("name")
@click.option("--label", required=True, help="The label to move back.")
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rollback(name: str, label: str, reason: str | None, as_json: bool) -> None:
    """Move a label back to the version it held before its last move."""
    body = {"reason": reason} if reason is not None else {}
    path = f"{_path(name)}/labels/{urllib.parse.quote(label, safe='')}/rollback"
    answer = call("POST", path, body)
    if as_json:
        print_json(answer)
    else:
        _moved(answer)


@prompts.command("history")
@click.argument("name")
@click.option("--label", default=None, help="Only this label's moves.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(name: str, label: str | None, as_json: bool) -> None:
    """Who moved which label of NAME, when, from which version to which, and why."""
    found = call("GET", f"{_path(name)}/history{query_string({'label': label})}")["data"]
    if as_json:
        print_json(found)
        return
    print_table(
        [
            [
                m["at"][:19].replace("T", " "),
                m["label"],
                m["action"],
                "-" if m["from_version"] is None else str(m["from_version"]),
                "-" if m["to_version"] is None else str(m["to_version"]),
                m["actor"],
                m["reason"] or "",
            ]
            for m in found
        ],
        ["AT (UTC)", "LABEL", "ACTION", "FROM", "TO", "BY", "REASON"],
    )


@prompts.command("render")
@click.argument("name")
@click.option("--var", "variables", multiple=True, help="A variable as name=value (repeat).")
@click.option("--label", default=None, help="Render the version this label points at.")
@click.option("--version", type=click.IntRange(min=1), default=None, help="Render this version.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Render this prompt file instead (nothing is fetched).",
)
def render(
    name: str, variables: tuple[str, ...], label: str | None, version: int | None, file: Path | None
) -> None:
    """Preview the messages a version renders to, as the gateway would (no model call)."""
    if file is not None:
        data = _read_file(file)
    else:
        query = _selector(label, version)
        if label is None and version is None:
            query["label"] = "production"
        data = call("GET", _path(name) + query_string(query))["version"]
    try:
        content = PromptContent.parse({k: data.get(k) for k in ("template", "variables")})
        template = content.compile()
        given: dict[str, Any] = {}
        for item in variables:
            key, sep, text = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r} is not name=value", param_hint="--var")
            spec = template.variables.get(key)
            given[key] = parse_cli_value(spec, text) if spec is not None else text
        print_json(template.render(given))
    except InvalidRequestError as exc:
        _fail(exc.message)


def _evidence_lines(evidence: dict[str, Any]) -> list[str]:
    """A refusal's evidence, readable."""
    compared = f", compared with {evidence['against']}" if evidence.get("against") else ""
    lines = [f"  suite {evidence['suite']} against {evidence['prompt']}{compared}"]
    if evidence.get("run_id") is None:
        lines.append("  no finished run found; make one with:")
        lines.append(f"    {evidence.get('command')}")
        lines.append(f"  or: llmplane prompts promote ... --suite <{evidence['suite']}.yaml>")
        return lines
    verdict = evidence.get("verdict") or {}
    lines.append(
        f"  run {evidence['run_id']}: {'passed' if verdict.get('passed') else 'FAILED'}"
        f" (finished {str(evidence.get('finished_at') or '-')[:19]})"
    )
    for miss in evidence.get("failed_thresholds", []):
        lines.append(f"  threshold missed: {miss['metric']} {miss['value']:.3f} < {miss['min']}")
    for reg in evidence.get("regressions", []):
        ci = reg.get("ci") or [None, None]
        detail = []
        if reg.get("pass_rate") is not None and reg.get("pass_rate_baseline") is not None:
            detail.append(f"pass rate {reg['pass_rate_baseline']:.1%} -> {reg['pass_rate']:.1%}")
        if reg.get("delta") is not None and None not in ci:
            detail.append(f"delta {reg['delta']:+.3f} (95% CI {ci[0]:+.3f}..{ci[1]:+.3f})")
        if reg.get("mcnemar_p") is not None:
            detail.append(f"McNemar p={reg['mcnemar_p']:.3g}")
        if reg.get("newly_failing"):
            detail.append(f"{reg['newly_failing']} newly failing")
        lines.append(f"  regression: {reg['metric']}: {', '.join(detail)}")
    lines.append(f"  details: llmplane eval show {evidence['run_id']} --cases")
    return lines


def _run_suite(
    suite_path: Path, name: str, version: int, baseline: str | None, key: str | None
) -> dict[str, Any]:
    """Run the suite against NAME@VERSION through the gateway (progress on stderr)."""
    import asyncio

    from llmplane.cli.evals import _run
    from llmplane.evals.gateway_client import GatewayCallError
    from llmplane.evals.harness import EvalOptions, GitInfo
    from llmplane.evals.suite import SuiteError

    click.echo(
        f"running suite {suite_path.name} against {name}@{version}"
        + (f" (baseline {baseline})" if baseline else ""),
        err=True,
    )
    options = EvalOptions(
        baseline=baseline,
        prompt_version=version,
        git=GitInfo.detect(suite_path.resolve().parent),
        progress=sys.stderr,
    )
    try:
        report = asyncio.run(_run(suite_path, key or _admin_key(), options))
    except SuiteError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except GatewayCallError as exc:
        click.echo(f"error: the gateway refused: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: cannot reach llmplane ({exc}); set LLMPLANE_URL", err=True)
        sys.exit(2)
    verdict = report.summary["verdict"]
    click.echo(
        f"run {report.run['id']}: {'passed' if verdict['passed'] else 'FAILED'}"
        + "".join(f"\n  {reason}" for reason in verdict["reasons"]),
        err=True,
    )
    return {**report.run, "summary": report.summary}


def _suite_name(suite_path: Path, name: str) -> str:
    from llmplane.evals.suite import SuiteError, load_suite

    try:
        suite = load_suite(suite_path)
    except SuiteError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if suite.target.prompt is None or suite.target.prompt.name != name:
        click.echo(f"error: {suite_path}: the suite's target is not the prompt '{name}'", err=True)
        sys.exit(2)
    return suite.name


@prompts.command("promote")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.option("--label", default="production", show_default=True, help="The label to move.")
@click.option(
    "--suite",
    "suite_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run this suite against VERSION (baseline: the label's current version) first.",
)
@click.option("--reason", default=None, help="Why (kept in the history).")
@click.option(
    "--force", is_flag=True, help="Admin key only, with --reason: move past a refusing gate."
)
@click.option("--key", default=None, help="The key the suite's model calls use.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def promote(
    name: str,
    version: int,
    label: str,
    suite_path: Path | None,
    reason: str | None,
    force: bool,
    key: str | None,
    as_json: bool,
) -> None:
    """Move LABEL of NAME to VERSION through its promotion gate.

    With --suite, the suite first runs against NAME@VERSION, compared with a run against
    the version the label holds (run first when there is none); then the gateway is
    asked to move the label and checks the gate itself. Exit 0 moved, 1 refused, 2 bad
    input."""
    key = key or os.environ.get("LLMPLANE_API_KEY") or None
    current = call("GET", _path(name))["labels"].get(label)
    run: dict[str, Any] | None = None
    if suite_path is not None and current != version:
        suite = _suite_name(suite_path, name)
        baseline = None
        if current is not None:
            baseline = f"prompt:{name}@{current}"
            query = query_string({"suite": suite, "prompt": f"{name}@{current}"})
            if call("GET", f"/admin/evals/baseline{query}", key=key)["run"] is None:
                click.echo(f"no run of {suite} against {name}@{current} yet: running it first",
                           err=True)  # fmt: skip
                _run_suite(suite_path, name, current, None, key)
        run = _run_suite(suite_path, name, version, baseline, key)
        if not run["summary"]["verdict"]["passed"]:
            status, _ = call_status("GET", _gate_path(name, label))
            if status == 404:  # no gate would stop the move: the suite's verdict does
                message = f"not promoted: suite {suite} failed against {name}@{version}"
                if as_json:
                    print_json({"promoted": False, "error": message, "run": run})
                else:
                    click.echo(f"{message} (the label has no gate; nothing recorded)", err=True)
                sys.exit(1)
    body: dict[str, Any] = {"version": version}
    if reason is not None:
        body["reason"] = reason
    if force:
        body["force"] = True
    status, answer = call_status("PUT", _label_path(name, label), body)
    if status == 200:
        move = answer["move"]
        if as_json:
            print_json({"promoted": True, **answer, "from": current, "to": version, "run": run})
        elif move is None:
            click.echo(f"{name} {label} already points at version {version}")
        else:
            forced = " (FORCED past the gate)" if move["action"] == "forced" else ""
            was = f"version {current}" if current is not None else "nothing"
            click.echo(f"{name} {label}: {was} -> version {version}{forced}")
        return
    error = answer["error"]
    if error.get("code") != "promotion_refused":
        _fail(f"{error['message']} (HTTP {status})")
    history = call("GET", f"{_path(name)}/history" + query_string({"label": label, "limit": 20}))
    evidence = next(
        (
            m["evidence"]
            for m in history["data"]
            if m["action"] == "refused" and m["to_version"] == version and m["evidence"]
        ),
        None,
    )
    if as_json:
        print_json({"promoted": False, "error": error["message"], "evidence": evidence, "run": run})
    else:
        click.echo(f"promotion refused: {name} {label} stays at version {current}", err=True)
        click.echo(error["message"], err=True)
        for line in _evidence_lines(evidence) if evidence else []:
            click.echo(line, err=True)
    sys.exit(1)
