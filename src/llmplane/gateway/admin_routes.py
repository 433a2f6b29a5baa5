"""Admin routes (admin key only): virtual keys and spend. The CLI is a client of these."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.budgets import Period, check_budget, could_outspend, set_budget
from llmplane.accounting.keys import Principal
from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.accounting.report import platform_report
from llmplane.accounting.spend import monthly_report, report_csv, spend_by, spend_summary
from llmplane.errors import InvalidRequestError, PermissionDeniedError
from llmplane.gateway.admin_fields import (
    optional_amount,
    optional_models,
    optional_positive_int,
    optional_str,
    query_time,
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

_FLUSH_WAIT_S = 5.0
_KEY_FIELDS = (
    "name",
    "team",
    "service",
    "user",
    "models",
    "rpm",
    "tpm",
    "role",
    "budget_usd",
    "period",
    "expires_at",
)


def _no_more_than_own(
    scope: RequestScope,
    principal: Principal,
    models: list[str] | None,
    budget_usd: float | None,
    period: str,
    rpm: int | None,
    tpm: int | None,
) -> None:
    """A team admin cannot mint a key with more models, budget or rate than its own."""
    if principal.is_admin:
        return
    if principal.models is not None and (models is None or not set(models) <= principal.models):
        raise PermissionDeniedError(
            "A key cannot allow models its creator may not use.",
            param="models",
            code="exceeds_own_rights",
        )
    # A key without a budget is still held by its team's budget, but not by its creator's.
    admission = scope.services.admission
    for own, code, required in (
        (admission.budget_for(("key", principal.key_id)), "exceeds_own_budget", True),
        (admission.budget_for(("team", principal.team_id or "")), "exceeds_team_budget", False),
    ):
        if own is None or (budget_usd is None and not required):
            continue
        if budget_usd is None or could_outspend(
            round(budget_usd * NANO_PER_USD), Period(period), own
        ):
            raise PermissionDeniedError(
                f"A key cannot get a budget that could spend more than its creator's "
                f"{own.scope} budget (${own.limit_nanousd / NANO_PER_USD:g} per "
                f"{own.period.value}).",
                param="budget_usd",
                code=code,
            )
    for name, own_limit, wanted, unit in (
        ("rpm", principal.rpm, rpm, "requests"),
        ("tpm", principal.tpm, tpm, "tokens"),
    ):
        if own_limit is not None and (wanted is None or wanted > own_limit):
            raise PermissionDeniedError(
                f"A key cannot get more than its creator's {own_limit} {unit} per minute.",
                param=name,
                code="exceeds_own_rights",
            )


@requires(Policy.TEAM)
@documented("KeyCreated", request="KeyCreate", status=201)
@endpoint
async def create_key(scope: RequestScope) -> Response:
    """Create a virtual key; the plaintext is in this answer and nowhere else."""
    principal = await scope.manager()
    services = scope.services
    body = parse_json_object(await scope.body())
    refuse_unknown(body, _KEY_FIELDS, "key")
    name = required_str(body, "name")
    models = optional_models(services.router, body)
    team_ref, service_ref = optional_str(body, "team"), optional_str(body, "service")
    if team_ref is None and not principal.is_admin:
        team_ref = principal.team_id  # a team admin's keys belong to its team
    if service_ref is not None and team_ref is None:
        raise InvalidRequestError("A key's 'service' needs its 'team'.", param="service")
    budget_usd = optional_amount(body, "budget_usd")
    period = optional_str(body, "period") or "month"
    if budget_usd is not None:
        check_budget(limit_usd=budget_usd, period=period)
    rpm, tpm = optional_positive_int(body, "rpm"), optional_positive_int(body, "tpm")
    _no_more_than_own(scope, principal, models, budget_usd, period, rpm, tpm)
    team = await asyncio.to_thread(services.teams.get_team, team_ref) if team_ref else None
    require_team(principal, team.id if team else None)
    service = (
        await asyncio.to_thread(services.teams.resolve_service, team.id, service_ref)
        if team is not None and service_ref is not None
        else None
    )
    record, plaintext = await asyncio.to_thread(
        services.keys.create_key,
        name,
        models=models,
        team_id=team.id if team else None,
        service_id=service.id if service else None,
        user_id=optional_str(body, "user"),
        expires_at=query_time(optional_str(body, "expires_at"), "expires_at"),
        rpm=rpm,
        tpm=tpm,
        role=optional_str(body, "role") or "member",
        actor=principal.key_id,
    )
    answer = {**record.to_json(), "key": plaintext}
    if budget_usd is not None:
        budget = await asyncio.to_thread(
            set_budget,
            services.engine,
            "key",
            record.id,
            limit_usd=budget_usd,
            period=period,
            actor=principal.key_id,
        )
        await services.reload_budgets()
        answer["budget"] = budget.to_json()
    return json_response(scope, answer, status=201)


@requires(Policy.TEAM)
@documented(
    "KeyList",
    query={
        "include_revoked": "true to list revoked keys too",
        "team": "Only this team's keys (id or name)",
    },
)
@endpoint
async def list_keys(scope: RequestScope) -> Response:
    """Every active key (``?include_revoked=true`` for all, ``?team=`` for one team's; a team
    admin sees its own team's), never the key itself."""
    principal = await scope.manager()
    params = scope.request.query_params
    include = params.get("include_revoked", "").lower() in ("1", "true")
    team_id = None if principal.is_admin else principal.team_id
    if params.get("team") is not None:
        team_id = (await asyncio.to_thread(scope.services.teams.get_team, params["team"])).id
        require_team(principal, team_id)
    records = await asyncio.to_thread(
        scope.services.keys.list_keys, include_revoked=include, team_id=team_id
    )
    return json_response(scope, {"object": "list", "data": [r.to_json() for r in records]})


@requires(Policy.TEAM)
@documented("Key")
@endpoint
async def revoke_key(scope: RequestScope) -> Response:
    """Revoke a key by id or unique name; it stops working at once."""
    principal = await scope.manager()
    key = scope.request.path_params["key"]
    require_team(principal, await asyncio.to_thread(scope.services.keys.key_team, key))
    record = await asyncio.to_thread(scope.services.keys.revoke_key, key, actor=principal.key_id)
    return json_response(scope, record.to_json())


@requires(Policy.TEAM)
@documented(
    "Spend",
    query={
        "since": "ISO 8601 start (inclusive)",
        "until": "ISO 8601 end (exclusive)",
        "by": "team, service, key, user, model, deployment, day or tag",
        "team": "Only this team (id or name)",
    },
)
@endpoint
async def spend(scope: RequestScope) -> Response:
    """Totals by key and model, including every call finished before this request
    (``?team=`` for one team's; a team admin sees its own team's)."""
    principal = await scope.manager()
    params = scope.request.query_params
    since = query_time(params.get("since"), "since")
    until = query_time(params.get("until"), "until")
    team_id = None if principal.is_admin else principal.team_id
    if params.get("team") is not None:
        team_id = (await asyncio.to_thread(scope.services.teams.get_team, params["team"])).id
        require_team(principal, team_id)
    with contextlib.suppress(TimeoutError):  # a stuck database must not hang the admin API
        await asyncio.wait_for(scope.services.ledger.flush(), _FLUSH_WAIT_S)
    summary = await asyncio.to_thread(
        spend_summary, scope.services.engine, since=since, until=until, team_id=team_id
    )
    by = params.get("by")
    if by is not None:
        summary["by"] = by
        summary["rows"] = await asyncio.to_thread(
            spend_by, scope.services.engine, by, since=since, until=until, team_id=team_id
        )
    return json_response(scope, summary)


@requires(Policy.TEAM)
@documented(
    "SpendReport",
    query={
        "month": "The month, e.g. 2026-11",
        "format": "csv for CSV",
        "team": "Only this team (id or name); a team admin always gets its own team's",
    },
    other_media={"text/csv": "The report as CSV (format=csv)."},
)
@endpoint
async def spend_report(scope: RequestScope) -> Response:
    """A month's spend for finance (``?month=2026-11``; ``&format=csv`` for CSV); a team
    admin gets its own team's."""
    principal = await scope.manager()
    params = scope.request.query_params
    month = params.get("month")
    if month is None:
        raise InvalidRequestError("'month' is required, e.g. ?month=2026-11.", param="month")
    team_id = None if principal.is_admin else principal.team_id
    if params.get("team") is not None:
        team_id = (await asyncio.to_thread(scope.services.teams.get_team, params["team"])).id
        require_team(principal, team_id)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(scope.services.ledger.flush(), _FLUSH_WAIT_S)
    report = await asyncio.to_thread(monthly_report, scope.services.engine, month, team_id=team_id)
    if params.get("format") == "csv":
        return Response(
            report_csv(report),
            media_type="text/csv",
            headers=scope.headers(
                **{"content-disposition": f'attachment; filename="spend-{month}.csv"'}
            ),
        )
    return json_response(scope, report)


@requires(Policy.TEAM)
@documented(
    "PlatformReport",
    query={
        "weeks": "Full weeks of adoption to show, and weeks x 7 days of incidents (1-52, "
        "default 4)",
        "month": "The month of the cost figures, e.g. 2026-11 (default: this month)",
        "team": "Only this team (id or name); a team admin always gets its own team's",
    },
)
@endpoint
async def report(scope: RequestScope) -> Response:
    """The platform report: active teams and services per week, cost per 1M tokens this
    month and last, spend by team, each deployment against its SLO, and incidents with
    the share caused by prompt and model changes; a team admin gets its own team's slice."""
    principal = await scope.manager()
    params = scope.request.query_params
    try:
        weeks = int(params.get("weeks", "4"))
    except ValueError:
        raise InvalidRequestError("'weeks' must be a whole number.", param="weeks") from None
    team_id = None if principal.is_admin else principal.team_id
    if params.get("team") is not None:
        team_id = (await asyncio.to_thread(scope.services.teams.get_team, params["team"])).id
        require_team(principal, team_id)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(scope.services.ledger.flush(), _FLUSH_WAIT_S)
    answer = await asyncio.to_thread(
        platform_report,
        scope.services.engine,
        weeks=weeks,
        month=params.get("month"),
        slos=scope.services.platform.deployment_slos(),
        team_id=team_id,
    )
    return json_response(scope, answer)


@requires(Policy.TEAM)
@documented("KeyCreated")
@endpoint
async def rotate_key(scope: RequestScope) -> Response:
    """A new secret for a key; the old secret stops working."""
    principal = await scope.manager()
    key = scope.request.path_params["key"]
    require_team(principal, await asyncio.to_thread(scope.services.keys.key_team, key))
    record, plaintext = await asyncio.to_thread(
        scope.services.keys.rotate_key, key, actor=principal.key_id
    )
    return json_response(scope, {**record.to_json(), "key": plaintext})


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{key}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/spend", spend, methods=["GET"]),
    Route("/admin/spend/report", spend_report, methods=["GET"]),
    Route("/admin/report", report, methods=["GET"]),
]
