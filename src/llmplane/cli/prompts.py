"""``llmplane prompts``: the prompt registry, against the running gateway.

A prompt file (YAML) holds one version: ``template`` (a string or chat messages with
``{{ variable }}`` placeholders), ``variables`` with their types, ``model``, ``params``,
``tools``, ``response_format`` and an optional ``description``.
"""

from __future__ import annotations

import sys
import urllib.parse
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from llmplane.cli.admin import print_json, print_table, query_string
from llmplane.cli.client import call
from llmplane.errors import InvalidRequestError
from llmplane.prompts import PromptContent, parse_cli_value


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


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
    answer = call("PUT", f"{_path(name)}/labels/{urllib.parse.quote(label, safe='')}", body)
    if as_json:
        print_json(answer)
    else:
        _moved(answer)


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
