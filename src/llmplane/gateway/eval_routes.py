"""Routes of the eval harness's results: runs, their case results, baselines, the cache.

``llmplane eval run`` (any key) creates a run owned by its key's team, posts results as
they finish and closes the run with its summary; a team's keys read its runs (the admin
key every run); blessing a baseline takes the admin key or a team admin. The logic is in
:mod:`llmplane.evals.runs`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from llmplane.errors import InvalidRequestError
from llmplane.evals import datasets, runs
from llmplane.gateway.admin_fields import optional_str, query_limit, refuse_unknown, required_str
from llmplane.gateway.http import (
    Policy,
    RequestScope,
    documented,
    endpoint,
    json_response,
    requires,
)
from llmplane.gateway.validation import parse_json_object

_RUN_FIELDS = (
    "suite",
    "suite_fingerprint",
    "target",
    "models",
    "prompt",
    "dataset",
    "repetitions",
    "cases_total",
    "git_sha",
    "git_branch",
    "baseline_run_id",
)


def _int(body: dict[str, Any], name: str, minimum: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidRequestError(f"'{name}' must be an integer of at least {minimum}.", param=name)
    return value


def _run_id(scope: RequestScope) -> str:
    return str(scope.request.path_params["run"])


@requires(Policy.KEY)
@documented("EvalRun", request="EvalRunCreate", status=201)
@endpoint
async def create_run(scope: RequestScope) -> Response:
    """Start a run, owned by the calling key's team."""
    principal = await scope.principal()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, _RUN_FIELDS, "eval run")
    models = body.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidRequestError("'models' must be an array of strings.", param="models")
    new = runs.NewRun(
        suite=required_str(body, "suite")[:200],
        suite_fingerprint=required_str(body, "suite_fingerprint")[:64],
        target=required_str(body, "target")[:500],
        models=models,
        repetitions=_int(body, "repetitions", 1),
        cases_total=_int(body, "cases_total", 0),
        prompt=optional_str(body, "prompt"),
        dataset=optional_str(body, "dataset"),
        git_sha=optional_str(body, "git_sha"),
        git_branch=optional_str(body, "git_branch"),
        baseline_run_id=optional_str(body, "baseline_run_id"),
    )
    run = await asyncio.to_thread(runs.create_run, scope.services.engine, principal, new)
    return json_response(scope, run, status=201)


@requires(Policy.KEY)
@documented(
    "EvalRunList",
    query={
        "suite": "Only runs of this suite",
        "branch": "Only runs made on this git branch",
        "status": "running, finished, capped or failed",
        "prompt": "Only runs against this prompt version (name@version)",
        "limit": "At most this many (default 50)",
    },
)
@endpoint
async def list_runs(scope: RequestScope) -> Response:
    """The caller's team's runs, newest first (the admin key: every team's)."""
    principal = await scope.principal()
    params = scope.request.query_params
    status = params.get("status")
    if status is not None and status not in runs.RUN_STATUSES:
        raise InvalidRequestError(
            f"'status' must be one of {', '.join(runs.RUN_STATUSES)}.", param="status"
        )
    found = await asyncio.to_thread(
        runs.list_runs,
        scope.services.engine,
        principal,
        suite=params.get("suite"),
        branch=params.get("branch"),
        status=status,
        prompt=params.get("prompt"),
        limit=query_limit(params.get("limit") or "50", 1000),
    )
    return json_response(scope, {"object": "list", "data": found})


@requires(Policy.TEAM_READ)
@documented("EvalRunDetail", query={"cases": "false: leave out the case results"})
@endpoint
async def get_run(scope: RequestScope) -> Response:
    """A run with its case results."""
    principal = await scope.principal()
    with_cases = scope.request.query_params.get("cases", "true") != "false"
    run = await asyncio.to_thread(
        runs.get_run, scope.services.engine, principal, _run_id(scope), with_cases=with_cases
    )
    return json_response(scope, run)


@requires(Policy.TEAM_READ)
@documented("EvalCasesAdded", request="EvalCasesAdd")
@endpoint
async def add_cases(scope: RequestScope) -> Response:
    """Store finished case results of a running run (ones already stored are kept)."""
    principal = await scope.principal()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("cases",), "eval cases")
    cases = body.get("cases")
    if not isinstance(cases, list) or not all(
        isinstance(c, dict) and isinstance(c.get("case_id"), str) for c in cases
    ):
        raise InvalidRequestError(
            "'cases' must be an array of results with 'case_id'.", param="cases"
        )
    added = await asyncio.to_thread(
        runs.add_cases, scope.services.engine, principal, _run_id(scope), cases
    )
    return json_response(scope, {"added": added})


@requires(Policy.TEAM_READ)
@documented("EvalRun", request="EvalRunFinish")
@endpoint
async def finish_run(scope: RequestScope) -> Response:
    """Close a run: finished, capped or failed, with its summary."""
    principal = await scope.principal()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("status", "summary", "baseline_run_id"), "eval run")
    summary = body.get("summary")
    if summary is not None and not isinstance(summary, dict):
        raise InvalidRequestError("'summary' must be an object.", param="summary")
    run = await asyncio.to_thread(
        runs.finish_run,
        scope.services.engine,
        principal,
        _run_id(scope),
        required_str(body, "status"),
        summary,
        optional_str(body, "baseline_run_id"),
    )
    return json_response(scope, run)


@requires(Policy.TEAM_READ)
@documented("EvalRun", request="EvalRunResume")
@endpoint
async def resume_run(scope: RequestScope) -> Response:
    """Mark a run running again so that its missing results can be added."""
    principal = await scope.principal()
    refuse_unknown(parse_json_object(await scope.body() or b"{}"), (), "eval run")
    run = await asyncio.to_thread(runs.reopen_run, scope.services.engine, principal, _run_id(scope))
    return json_response(scope, run)


@requires(Policy.TEAM)
@documented("EvalRun")
@endpoint
async def bless_run(scope: RequestScope) -> Response:
    """Make a finished run its suite's baseline for its team (audited)."""
    principal = await scope.principal()
    run = await asyncio.to_thread(runs.bless_run, scope.services.engine, principal, _run_id(scope))
    return json_response(scope, run)


@requires(Policy.KEY)
@documented(
    "EvalBaseline",
    query={
        "suite": "The suite (required)",
        "branch": "The branch of the fallback (main)",
        "prompt": "Instead: the newest finished run against this prompt version (name@version)",
    },
)
@endpoint
async def baseline(scope: RequestScope) -> Response:
    """The suite's baseline for the caller's team: its blessed run, else its last finished
    run on ``main``; ``run`` is null when there is none."""
    principal = await scope.principal()
    params = scope.request.query_params
    suite = params.get("suite")
    if not suite:
        raise InvalidRequestError("'suite' is required.", param="suite")
    found = await asyncio.to_thread(
        runs.baseline_run,
        scope.services.engine,
        principal,
        suite,
        branch=params.get("branch") or "main",
        prompt=params.get("prompt"),
    )
    return json_response(scope, {"object": "eval.baseline", "suite": suite, "run": found})


@requires(Policy.KEY)
@documented("EvalCacheHits", request="EvalCacheLookup")
@endpoint
async def cache_lookup(scope: RequestScope) -> Response:
    """Stored outputs of the caller's team for the given cache keys."""
    principal = await scope.principal()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("keys",), "eval cache")
    keys = body.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise InvalidRequestError("'keys' must be an array of strings.", param="keys")
    hits = await asyncio.to_thread(runs.cached_outputs, scope.services.engine, principal, keys)
    return json_response(scope, {"hits": hits})


async def _dataset_owner(scope: RequestScope, team: str | None) -> str | None:
    """Whose datasets: the caller's team's; the admin key's own, or the team it names."""
    principal = await scope.principal()
    team_id = None
    if team is not None:
        team_id = (await asyncio.to_thread(scope.services.teams.get_team, team)).id
    return datasets.owner_for(principal, team_id)


@requires(Policy.KEY)
@documented("EvalDatasetPushed", request="EvalDatasetPush", status=201)
@endpoint
async def push_dataset(scope: RequestScope) -> Response:
    """Add a version of a dataset of the caller's team (the admin key: its own, or
    ``team``'s): 201 with the new version, or 200 with the existing one when its cases
    are the same (``created`` says which)."""
    principal = await scope.principal()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("name", "format", "content", "team"), "eval dataset")
    name = datasets.check_name(body.get("name"))
    content = required_str(body, "content")
    data = await asyncio.to_thread(datasets.normalize, content, required_str(body, "format"), name)
    owner = await _dataset_owner(scope, optional_str(body, "team"))
    version, created = await asyncio.to_thread(
        datasets.push, scope.services.engine, principal, name, data, owner or ""
    )
    return json_response(scope, {**version, "created": created}, status=201 if created else 200)


@requires(Policy.KEY)
@documented(
    "EvalDatasetList",
    query={"team": "The admin key: only this team's (id or name); without it, every team's"},
)
@endpoint
async def list_datasets(scope: RequestScope) -> Response:
    """The caller's team's datasets with their newest version (the admin key: every
    team's)."""
    principal = await scope.principal()
    team = scope.request.query_params.get("team")
    owner = await _dataset_owner(scope, team) if team or not principal.is_admin else None
    found = await asyncio.to_thread(datasets.list_datasets, scope.services.engine, principal, owner)
    return json_response(scope, {"object": "list", "data": found})


@requires(Policy.TEAM_READ)
@documented(
    "EvalDatasetDetail",
    query={
        "version": "A version number, or latest (the default)",
        "team": "The admin key: the owning team (id or name); without it, the admin's own",
    },
)
@endpoint
async def get_dataset(scope: RequestScope) -> Response:
    """One version of a dataset of the caller's team, with its cases and the versions."""
    params = scope.request.query_params
    selector = params.get("version") or "latest"
    version = None
    if selector != "latest":
        if not selector.isdigit() or int(selector) < 1:
            raise InvalidRequestError(
                "'version' must be a version number or latest.", param="version"
            )
        version = int(selector)
    owner = await _dataset_owner(scope, params.get("team"))
    found = await asyncio.to_thread(
        datasets.get_version,
        scope.services.engine,
        owner or "",
        str(scope.request.path_params["name"]),
        version,
    )
    return json_response(scope, found)


routes = [
    Route("/admin/evals/runs", create_run, methods=["POST"]),
    Route("/admin/evals/runs", list_runs, methods=["GET"]),
    Route("/admin/evals/runs/{run}", get_run, methods=["GET"]),
    Route("/admin/evals/runs/{run}/cases", add_cases, methods=["POST"]),
    Route("/admin/evals/runs/{run}/finish", finish_run, methods=["POST"]),
    Route("/admin/evals/runs/{run}/resume", resume_run, methods=["POST"]),
    Route("/admin/evals/runs/{run}/bless", bless_run, methods=["POST"]),
    Route("/admin/evals/baseline", baseline, methods=["GET"]),
    Route("/admin/evals/cache", cache_lookup, methods=["POST"]),
    Route("/admin/evals/datasets", push_dataset, methods=["POST"]),
    Route("/admin/evals/datasets", list_datasets, methods=["GET"]),
    Route("/admin/evals/datasets/{name}", get_dataset, methods=["GET"]),
]
