"""Admin routes (admin key only): virtual keys and spend. The CLI is a client of these."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.budgets import check_budget, set_budget
from llmplane.accounting.spend import spend_by, spend_summary
from llmplane.errors import InvalidRequestError
from llmplane.gateway.http import RequestScope, endpoint, json_response
from llmplane.gateway.validation import parse_json_object

_FLUSH_WAIT_S = 5.0


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be a string.", param=name)
    return value


def _time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 query parameter as an aware UTC time (naive values are taken as UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"'{name}' must be an ISO 8601 date or time.", param=name
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidRequestError(f"'{name}' must be a positive integer.", param=name)
    return value


def _optional_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or value < 0
    ):
        raise InvalidRequestError(f"'{name}' must be a number >= 0.", param=name)
    return None if value is None else float(value)


@endpoint
async def create_key(scope: RequestScope) -> Response:
    """Create a virtual key; the plaintext is in this answer and nowhere else."""
    principal = await scope.admin()
    services = scope.services
    body = parse_json_object(await scope.body())
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequestError("'name' is required.", param="name")
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise InvalidRequestError("'models' must be an array of model names.", param="models")
        for model in models:
            services.router.require(model)
    team_ref, service_ref = _optional_str(body, "team"), _optional_str(body, "service")
    if service_ref is not None and team_ref is None:
        raise InvalidRequestError("A key's 'service' needs its 'team'.", param="service")
    budget_usd = _optional_number(body, "budget_usd")
    period = _optional_str(body, "period") or "month"
    if budget_usd is not None:
        check_budget(limit_usd=budget_usd, period=period)
    team = await asyncio.to_thread(services.teams.get_team, team_ref) if team_ref else None
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
        user_id=_optional_str(body, "user"),
        expires_at=_time(_optional_str(body, "expires_at"), "expires_at"),
        rpm=_optional_int(body, "rpm"),
        tpm=_optional_int(body, "tpm"),
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


@endpoint
async def list_keys(scope: RequestScope) -> Response:
    """Every active key (``?include_revoked=true`` for all), never the key itself."""
    await scope.admin()
    include = scope.request.query_params.get("include_revoked", "").lower() in ("1", "true")
    records = await asyncio.to_thread(scope.services.keys.list_keys, include_revoked=include)
    return json_response(scope, {"object": "list", "data": [r.to_json() for r in records]})


@endpoint
async def revoke_key(scope: RequestScope) -> Response:
    """Revoke a key by id or unique name; it stops working at once."""
    principal = await scope.admin()
    key = scope.request.path_params["key"]
    record = await asyncio.to_thread(scope.services.keys.revoke_key, key, actor=principal.key_id)
    return json_response(scope, record.to_json())


@endpoint
async def spend(scope: RequestScope) -> Response:
    """Totals by key and model, including every call finished before this request."""
    await scope.admin()
    params = scope.request.query_params
    since = _time(params.get("since"), "since")
    until = _time(params.get("until"), "until")
    with contextlib.suppress(TimeoutError):  # a stuck database must not hang the admin API
        await asyncio.wait_for(scope.services.ledger.flush(), _FLUSH_WAIT_S)
    summary = await asyncio.to_thread(
        spend_summary, scope.services.engine, since=since, until=until
    )
    by = params.get("by")
    if by is not None:
        summary["by"] = by
        summary["rows"] = await asyncio.to_thread(
            spend_by, scope.services.engine, by, since=since, until=until
        )
    return json_response(scope, summary)


@endpoint
async def rotate_key(scope: RequestScope) -> Response:
    """A new secret for a key; the old secret stops working."""
    principal = await scope.admin()
    record, plaintext = await asyncio.to_thread(
        scope.services.keys.rotate_key, scope.request.path_params["key"], actor=principal.key_id
    )
    return json_response(scope, {**record.to_json(), "key": plaintext})


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{key}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/spend", spend, methods=["GET"]),
]
