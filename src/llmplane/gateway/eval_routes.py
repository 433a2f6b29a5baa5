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
from llmplane.evals import runs
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
]
