"""Routes of the prompt registry: clients fetch a version; admins and team admins manage.

``GET /v1/prompts/{name}`` serves a version to any key that may read the prompt, from
the in-memory cache, with an ETag and Cache-Control so clients can cache too. The
``/admin/prompts`` routes create versions, list, show, move labels, roll back and show
the history, and configure promotion gates (``/admin/prompts/{name}/gates/{label}``): a
label move asks the label's gate first; a rollback never does. A caller that may not read
a prompt gets 404 everywhere, never 403, so the names of other teams' prompts do not leak
(see :mod:`llmplane.prompts.registry`).
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.responses import Response
from starlette.routing import Route

from llmplane import prompts
from llmplane.errors import InvalidRequestError
from llmplane.evals.gate import SuiteGate
from llmplane.gateway.admin_fields import optional_str, query_limit, refuse_unknown
from llmplane.gateway.http import (
    Policy,
    RequestScope,
    documented,
    endpoint,
    json_response,
    require_team,
    requires,
)
from llmplane.gateway.validation import parse_json_object
from llmplane.prompts import gates
from llmplane.prompts.content import CONTENT_FIELDS, PromptContent

_IMMUTABLE = "private, max-age=86400, immutable"
_GATES = (SuiteGate(),)


def _selector(scope: RequestScope) -> tuple[str | None, int | None]:
    """``?label=`` or ``?version=`` (not both)."""
    params = scope.request.query_params
    label, raw = params.get("label"), params.get("version")
    if label is not None and raw is not None:
        raise InvalidRequestError("Give 'label' or 'version', not both.", param="version")
    if raw is None:
        return (prompts.check_label(label) if label is not None else None), None
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidRequestError("'version' must be a positive integer.", param="version")
    return None, int(raw)


@requires(Policy.TEAM_READ)
@documented(
    "PromptServed",
    query={
        "label": "The label to follow (default production; latest: the newest version)",
        "version": "A version number instead of a label",
    },
)
@endpoint
async def get_prompt(scope: RequestScope) -> Response:
    """A prompt's version by label or number, for any key that may read the prompt; with
    an ETag (``If-None-Match`` answers 304) and Cache-Control: a version number is
    immutable, a label may move (cacheable for the gateway's own cache TTL)."""
    principal = await scope.principal()
    name = scope.request.path_params["name"]
    label, version = _selector(scope)
    resolved = await scope.services.prompts.resolve(principal, name, label=label, version=version)
    found = resolved.version
    etag = f'"{found.fingerprint[:32]}-{found.version}"'
    cache = (
        _IMMUTABLE
        if version is not None
        else f"private, max-age={int(scope.services.settings.prompt_cache_ttl_s)}"
    )
    headers = scope.headers(etag=etag, **{"cache-control": cache})
    if scope.request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    served = {
        **found.to_json(),
        "label": None if version is not None else (label or prompts.DEFAULT_LABEL),
    }
    return Response(orjson.dumps(served), media_type="application/json", headers=headers)


@requires(Policy.TEAM)
@documented("PromptVersionCreated", request="PromptCreate", status=201)
@endpoint
async def create_version(scope: RequestScope) -> Response:
    """Add a version to a prompt (creating the prompt, owned by ``team`` or by a team
    admin's own team, on its first version): 201 with the new version, or 200 with the
    existing one when the content is identical (``created`` says which)."""
    principal = await scope.manager()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("name", "team", "description", "message", *CONTENT_FIELDS), "prompt")
    name = prompts.check_name(body.get("name"))
    content = PromptContent.parse(body)
    team_given = "team" in body
    team_id = await scope.team_id(optional_str(body, "team"))
    if team_id is not None:
        require_team(principal, team_id)
    version, created = await asyncio.to_thread(
        prompts.create_version,
        scope.services.engine,
        principal,
        name,
        content,
        team_id=team_id,
        team_given=team_given,
        description=optional_str(body, "description"),
        message=optional_str(body, "message"),
    )
    scope.services.prompts.invalidate(name)  # 'latest' moved
    return json_response(
        scope, {**version.to_json(), "created": created}, status=201 if created else 200
    )


@requires(Policy.TEAM)
@documented(
    "PromptList",
    query={"team": "Only this team's and the platform's prompts (id or name)"},
)
@endpoint
async def list_prompts(scope: RequestScope) -> Response:
    """The prompts the caller may read with their labels (a team admin: its team's and
    the platform's)."""
    principal = await scope.manager()
    team_id = await scope.team_id(scope.request.query_params.get("team"))
    if team_id is not None:
        require_team(principal, team_id)
    found = await asyncio.to_thread(
        prompts.list_prompts, scope.services.engine, principal, team_id=team_id
    )
    return json_response(scope, {"object": "list", "data": [p.to_json() for p in found]})


@requires(Policy.TEAM)
@documented(
    "PromptDetail",
    query={
        "label": "Show the version this label points at",
        "version": "Show this version (default: the newest)",
    },
)
@endpoint
async def show_prompt(scope: RequestScope) -> Response:
    """A prompt with its labels and one version's content (the newest by default)."""
    principal = await scope.manager()
    name = scope.request.path_params["name"]
    label, version = _selector(scope)
    engine = scope.services.engine
    found = await asyncio.to_thread(prompts.get_prompt, engine, principal, name)
    shown = await asyncio.to_thread(
        prompts.get_version,
        engine,
        principal,
        name,
        label=label if label is not None or version is not None else prompts.LATEST,
        version=version,
    )
    return json_response(scope, {**found.to_json(), "version": shown.to_json()})


@requires(Policy.TEAM)
@documented("PromptVersionList")
@endpoint
async def list_versions(scope: RequestScope) -> Response:
    """Every version of a prompt, newest first."""
    principal = await scope.manager()
    found = await asyncio.to_thread(
        prompts.list_versions,
        scope.services.engine,
        principal,
        scope.request.path_params["name"],
    )
    return json_response(scope, {"object": "list", "data": [v.to_json() for v in found]})


def _move_answer(
    scope: RequestScope, name: str, label: str, version: int, move: prompts.LabelMove | None
) -> Response:
    scope.services.prompts.invalidate(name)
    return json_response(
        scope,
        {
            "name": name,
            "label": label,
            "version": version,
            "changed": move is not None,
            "move": move.to_json() if move is not None else None,
        },
    )


@requires(Policy.TEAM)
@documented("LabelMoveResult", request="LabelSet")
@endpoint
async def set_label(scope: RequestScope) -> Response:
    """Point a label at a version (recorded in the label history, the audit log and the
    change log); ``changed`` is false when it already pointed there. A label with a
    promotion gate moves only when the gate's suite passed against the version (else 400
    ``promotion_refused``, kept in the history with the evidence); ``force`` (admin key,
    with a reason) moves it anyway, recorded as ``forced``."""
    principal = await scope.manager()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("version", "reason", "force"), "label")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidRequestError("'version' must be a positive integer.", param="version")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise InvalidRequestError("'force' must be true or false.", param="force")
    name, label = scope.request.path_params["name"], scope.request.path_params["label"]
    move = await asyncio.to_thread(
        prompts.set_label,
        scope.services.engine,
        principal,
        name,
        label,
        version,
        reason=optional_str(body, "reason"),
        gates=_GATES,
        force=force,
    )
    return _move_answer(scope, name, label, version, move)


@requires(Policy.TEAM)
@documented("LabelMoveResult", request="LabelRollback")
@endpoint
async def rollback_label(scope: RequestScope) -> Response:
    """Move a label back to the version it held before its last move (repeat to walk
    further back); recorded like any move."""
    principal = await scope.manager()
    body = parse_json_object(await scope.body() or b"{}")
    refuse_unknown(body, ("reason",), "rollback")
    name, label = scope.request.path_params["name"], scope.request.path_params["label"]
    move = await asyncio.to_thread(
        prompts.rollback,
        scope.services.engine,
        principal,
        name,
        label,
        reason=optional_str(body, "reason"),
    )
    assert move.to_version is not None
    return _move_answer(scope, name, label, move.to_version, move)


@requires(Policy.TEAM)
@documented(
    "LabelHistory",
    query={
        "label": "Only this label's moves",
        "limit": "At most this many (1-10000, default 100)",
    },
)
@endpoint
async def label_history(scope: RequestScope) -> Response:
    """A prompt's label moves, newest first: who moved which label from which version to
    which, when and why."""
    principal = await scope.manager()
    params = scope.request.query_params
    found = await asyncio.to_thread(
        prompts.label_history,
        scope.services.engine,
        principal,
        scope.request.path_params["name"],
        label=params.get("label"),
        limit=query_limit(params.get("limit")),
    )
    return json_response(scope, {"object": "list", "data": [m.to_json() for m in found]})


@requires(Policy.TEAM)
@documented("PromptGate", request="PromptGateSet")
@endpoint
async def put_gate(scope: RequestScope) -> Response:
    """Require an eval suite for moves of a label: the suite must have passed against the
    version being promoted and (unless ``require_no_regression`` is false) not regressed
    against the version the label holds; replaces the label's gate; audited."""
    principal = await scope.manager()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("suite", "require_no_regression", "max_age_days"), "gate")
    strict = body.get("require_no_regression", True)
    if not isinstance(strict, bool):
        raise InvalidRequestError(
            "'require_no_regression' must be true or false.", param="require_no_regression"
        )
    age = body.get("max_age_days")
    if age is not None and (not isinstance(age, int) or isinstance(age, bool)):
        raise InvalidRequestError("'max_age_days' must be an integer.", param="max_age_days")
    name, label = scope.request.path_params["name"], scope.request.path_params["label"]
    gate = await asyncio.to_thread(
        gates.set_gate,
        scope.services.engine,
        principal,
        name,
        label,
        body.get("suite"),
        require_no_regression=strict,
        max_age_days=age,
    )
    return json_response(scope, gate.to_json())


@requires(Policy.TEAM)
@documented("PromptGate")
@endpoint
async def get_gate(scope: RequestScope) -> Response:
    """A label's promotion gate (404 ``gate_not_found`` when it has none)."""
    principal = await scope.manager()
    name, label = scope.request.path_params["name"], scope.request.path_params["label"]
    gate = await asyncio.to_thread(gates.get_gate, scope.services.engine, principal, name, label)
    return json_response(scope, gate.to_json())


@requires(Policy.TEAM)
@documented("PromptGate")
@endpoint
async def delete_gate(scope: RequestScope) -> Response:
    """Remove a label's promotion gate (answers the removed gate); audited."""
    principal = await scope.manager()
    name, label = scope.request.path_params["name"], scope.request.path_params["label"]
    gate = await asyncio.to_thread(gates.delete_gate, scope.services.engine, principal, name, label)
    return json_response(scope, gate.to_json())


@requires(Policy.TEAM)
@documented("PromptGateList")
@endpoint
async def list_gates(scope: RequestScope) -> Response:
    """The promotion gates of a prompt's labels."""
    principal = await scope.manager()
    found = await asyncio.to_thread(
        gates.list_gates, scope.services.engine, principal, scope.request.path_params["name"]
    )
    return json_response(scope, {"object": "list", "data": [g.to_json() for g in found]})


routes = [
    Route("/v1/prompts/{name}", get_prompt, methods=["GET"]),
    Route("/admin/prompts", create_version, methods=["POST"]),
    Route("/admin/prompts", list_prompts, methods=["GET"]),
    Route("/admin/prompts/{name}", show_prompt, methods=["GET"]),
    Route("/admin/prompts/{name}/versions", list_versions, methods=["GET"]),
    Route("/admin/prompts/{name}/labels/{label}", set_label, methods=["PUT"]),
    Route("/admin/prompts/{name}/labels/{label}/rollback", rollback_label, methods=["POST"]),
    Route("/admin/prompts/{name}/history", label_history, methods=["GET"]),
    Route("/admin/prompts/{name}/gates", list_gates, methods=["GET"]),
    Route("/admin/prompts/{name}/gates/{label}", put_gate, methods=["PUT"]),
    Route("/admin/prompts/{name}/gates/{label}", get_gate, methods=["GET"]),
    Route("/admin/prompts/{name}/gates/{label}", delete_gate, methods=["DELETE"]),
]
