"""Admin routes for teams, services, budgets and the audit log.

The admin key may call all of them; a team admin's key may manage its own team's
services, keys and their budgets, and nothing else (see each route's policy).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.audit import list_audit
from llmplane.accounting.budgets import (
    Period,
    check_budget,
    could_outspend,
    load_budgets,
    set_budget,
)
from llmplane.accounting.keys import Principal
from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.accounting.teams import SERVICE_FIELDS, TEAM_FIELDS, Team
from llmplane.errors import InvalidRequestError, PermissionDeniedError
from llmplane.gateway.admin_fields import (
    optional_log_bodies,
    optional_model_limits,
    optional_models,
    optional_positive_int,
    optional_retention_days,
    query_limit,
    refuse_unknown,
    required_str,
)
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


@requires(Policy.ADMIN)
@documented("Team", request="TeamCreate", status=201)
@endpoint
async def create_team(scope: RequestScope) -> Response:
    """Create a team (unique name; optional model allowlist, max_tokens ceiling, rpm and
    tpm, rpm/tpm per model, and request-log policy: ``log_bodies``,
    ``log_retention_days``)."""
    principal = await scope.admin()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("name", *TEAM_FIELDS), "team")
    team = await asyncio.to_thread(
        scope.services.teams.create_team,
        required_str(body, "name"),
        models=optional_models(scope.services.router, body),
        max_tokens=optional_positive_int(body, "max_tokens"),
        rpm=optional_positive_int(body, "rpm"),
        tpm=optional_positive_int(body, "tpm"),
        model_limits=optional_model_limits(scope.services.router, body),
        log_bodies=optional_log_bodies(body),
        log_retention_days=optional_retention_days(body),
        actor=principal.key_id,
    )
    return json_response(scope, team.to_json(), status=201)


@requires(Policy.ADMIN)
@documented("TeamList")
@endpoint
async def list_teams(scope: RequestScope) -> Response:
    """Every team."""
    await scope.admin()
    teams = await asyncio.to_thread(scope.services.teams.list_teams)
    return json_response(scope, {"object": "list", "data": [t.to_json() for t in teams]})


@requires(Policy.TEAM)
@documented("TeamDetail")
@endpoint
async def show_team(scope: RequestScope) -> Response:
    """One team with its services and budget."""
    principal = await scope.manager()
    services = scope.services
    team = await asyncio.to_thread(services.teams.get_team, scope.request.path_params["team"])
    require_team(principal, team.id)
    owned = await asyncio.to_thread(services.teams.list_services, team.id)
    budget = services.admission.budget_for(("team", team.id))
    return json_response(
        scope,
        {
            **team.to_json(),
            "services": [s.to_json() for s in owned],
            "budget": budget.to_json() if budget else None,
        },
    )


@requires(Policy.ADMIN)
@documented("Team", request="TeamUpdate")
@endpoint
async def update_team(scope: RequestScope) -> Response:
    """Change a team's name, model allowlist, max_tokens ceiling, rate limits or request-log
    policy (a field set to null is removed, for the log policy: back to the platform's
    default; ``model_limits`` is replaced as a whole). Only the platform admin changes a
    team's policy: a team admin can read it (``GET``) but neither loosen nor tighten it."""
    principal = await scope.admin()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, TEAM_FIELDS, "team")
    router = scope.services.router
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = required_str(body, "name")
    if "models" in body:
        changes["models"] = optional_models(router, body)
    if "model_limits" in body:
        changes["model_limits"] = optional_model_limits(router, body)
    for name in ("max_tokens", "rpm", "tpm"):
        if name in body:
            changes[name] = optional_positive_int(body, name)
    if "log_bodies" in body:
        changes["log_bodies"] = optional_log_bodies(body)
    if "log_retention_days" in body:
        changes["log_retention_days"] = optional_retention_days(body)
    team = await asyncio.to_thread(
        scope.services.teams.update_team,
        scope.request.path_params["team"],
        changes,
        actor=principal.key_id,
    )
    return json_response(scope, team.to_json())


async def _service_request(scope: RequestScope) -> tuple[Principal, dict[str, Any], Team]:
    """The caller, body and owning team of a service write; the caller must manage it."""
    principal = await scope.manager()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("team", *SERVICE_FIELDS), "service")
    team = body.get("team")
    if not isinstance(team, str):
        raise InvalidRequestError("'team' (id or name) is required.", param="team")
    owner = await asyncio.to_thread(scope.services.teams.get_team, team)
    require_team(principal, owner.id)
    return principal, body, owner


@requires(Policy.TEAM)
@documented("Service", request="ServiceCreate", status=201)
@endpoint
async def create_service(scope: RequestScope) -> Response:
    """Create a service owned by a team (optional rpm and tpm limits)."""
    principal, body, owner = await _service_request(scope)
    service = await asyncio.to_thread(
        scope.services.teams.create_service,
        owner.id,
        required_str(body, "name"),
        rpm=optional_positive_int(body, "rpm"),
        tpm=optional_positive_int(body, "tpm"),
        actor=principal.key_id,
    )
    return json_response(scope, service.to_json(), status=201)


@requires(Policy.TEAM)
@documented("Service", request="ServiceUpdate")
@endpoint
async def update_service(scope: RequestScope) -> Response:
    """Change a service's name or rate limits (``team`` names its owner; null removes a
    limit); a team admin may change its team's services."""
    principal, body, owner = await _service_request(scope)
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = required_str(body, "name")
    for name in ("rpm", "tpm"):
        if name in body:
            changes[name] = optional_positive_int(body, name)
    service = await asyncio.to_thread(
        scope.services.teams.update_service,
        owner.id,
        scope.request.path_params["service"],
        changes,
        actor=principal.key_id,
    )
    return json_response(scope, service.to_json())


@requires(Policy.TEAM)
@documented("ServiceList", query={"team": "Only this team's services (id or name)"})
@endpoint
async def list_services(scope: RequestScope) -> Response:
    """Every service, or one team's (``?team=``; a team admin sees its team's)."""
    principal = await scope.manager()
    team = scope.request.query_params.get("team")
    if not principal.is_admin:
        if team is not None:
            require_team(
                principal, (await asyncio.to_thread(scope.services.teams.get_team, team)).id
            )
        team = principal.team_id
    found = await asyncio.to_thread(scope.services.teams.list_services, team)
    return json_response(scope, {"object": "list", "data": [s.to_json() for s in found]})


@requires(Policy.TEAM)
@documented("Budget", request="BudgetSet")
@endpoint
async def put_budget(scope: RequestScope) -> Response:
    """Set the budget of a key, service or team (names are resolved to ids); a team admin
    may set those of its team's keys and services."""
    principal = await scope.manager()
    services = scope.services
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("scope", "target", "team", "limit_usd", "period", "thresholds"), "budget")
    kind, target = body.get("scope"), body.get("target")
    if not isinstance(kind, str) or kind not in ("key", "service", "team"):
        raise InvalidRequestError("'scope' must be key, service or team.", param="scope")
    if not isinstance(target, str):
        raise InvalidRequestError("'target' (id or name) is required.", param="target")
    limit = body.get("limit_usd")
    if not isinstance(limit, int | float) or isinstance(limit, bool):
        raise InvalidRequestError("'limit_usd' must be a number.", param="limit_usd")
    thresholds = body.get("thresholds") or []
    if not isinstance(thresholds, list) or not all(isinstance(t, int) for t in thresholds):
        raise InvalidRequestError(
            "'thresholds' must be an array of percentages.", param="thresholds"
        )
    target_id: str = target
    if kind == "team":
        if not principal.is_admin:
            raise PermissionDeniedError("Only the admin key sets team budgets.", code="admin_only")
        target_id = (await asyncio.to_thread(services.teams.get_team, target)).id
    elif kind == "service":
        team = body.get("team")
        if not isinstance(team, str):
            raise InvalidRequestError("A service budget needs its 'team'.", param="team")
        owner = await asyncio.to_thread(services.teams.get_team, team)
        require_team(principal, owner.id)
        target_id = (await asyncio.to_thread(services.teams.resolve_service, owner.id, target)).id
    elif kind == "key":
        target_id = await asyncio.to_thread(services.keys.resolve_key_id, target)
        require_team(principal, await asyncio.to_thread(services.keys.key_team, target_id))
    period = check_budget(limit_usd=float(limit), period=str(body.get("period", "month")))
    team_budget = services.admission.budget_for(("team", principal.team_id or ""))
    if (
        not principal.is_admin
        and team_budget
        and could_outspend(round(float(limit) * NANO_PER_USD), period, team_budget)
    ):
        per = team_budget.period.value if team_budget.period is not Period.NONE else "all time"
        raise PermissionDeniedError(
            f"A team admin cannot set a budget that could spend more than its team's "
            f"(${team_budget.limit_nanousd / NANO_PER_USD:g} per {per}).",
            param="limit_usd",
            code="exceeds_team_budget",
        )
    budget = await asyncio.to_thread(
        set_budget,
        services.engine,
        kind,
        target_id,
        limit_usd=float(limit),
        period=period.value,
        thresholds=thresholds,
        actor=principal.key_id,
    )
    await services.reload_budgets()
    return json_response(scope, budget.to_json())


@requires(Policy.ADMIN)
@documented("BudgetList")
@endpoint
async def list_budgets(scope: RequestScope) -> Response:
    """Every budget with the spend counted against it in its current period (this process)."""
    await scope.admin()
    services = scope.services
    found = await asyncio.to_thread(load_budgets, services.engine)
    data = []
    for budget in found:
        spent = await services.admission.spent_nanousd(
            (budget.scope, budget.scope_id), budget.period
        )
        data.append(
            {**budget.to_json(), "spent_usd": spent / NANO_PER_USD if spent is not None else None}
        )
    return json_response(scope, {"object": "list", "data": data})


@requires(Policy.ADMIN)
@documented(
    "AuditList",
    query={
        "limit": "At most this many entries (1-10000, default 100)",
        "object_type": "key, team, service or budget",
    },
)
@endpoint
async def audit(scope: RequestScope) -> Response:
    """The newest audit entries (``?limit=``, ``?object_type=``)."""
    await scope.admin()
    params = scope.request.query_params
    limit = query_limit(params.get("limit"))
    entries = await asyncio.to_thread(
        list_audit,
        scope.services.engine,
        limit=limit,
        object_type=params.get("object_type"),
    )
    return json_response(scope, {"object": "list", "data": entries})


routes = [
    Route("/admin/teams", create_team, methods=["POST"]),
    Route("/admin/teams", list_teams, methods=["GET"]),
    Route("/admin/teams/{team}", show_team, methods=["GET"]),
    Route("/admin/teams/{team}", update_team, methods=["PATCH"]),
    Route("/admin/services", create_service, methods=["POST"]),
    Route("/admin/services", list_services, methods=["GET"]),
    Route("/admin/services/{service}", update_service, methods=["PATCH"]),
    Route("/admin/budgets", put_budget, methods=["PUT"]),
    Route("/admin/budgets", list_budgets, methods=["GET"]),
    Route("/admin/audit", audit, methods=["GET"]),
]
