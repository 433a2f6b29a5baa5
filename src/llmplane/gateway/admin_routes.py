"""Admin routes (admin key only): virtual keys and spend. The CLI is a client of these."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.spend import spend_summary
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


@endpoint
async def create_key(scope: RequestScope) -> Response:
    """Create a virtual key; the plaintext is in this answer and nowhere else."""
    await scope.admin()
    body = parse_json_object(await scope.body())
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequestError("'name' is required.", param="name")
    models = body.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise InvalidRequestError("'models' must be an array of model names.", param="models")
        for model in models:
            scope.services.router.require(model)
    record, plaintext = await asyncio.to_thread(
        scope.services.keys.create_key,
        name,
        models=models,
        team_id=_optional_str(body, "team_id"),
        service_id=_optional_str(body, "service_id"),
        user_id=_optional_str(body, "user_id"),
        expires_at=_time(_optional_str(body, "expires_at"), "expires_at"),
    )
    return json_response(scope, {**record.to_json(), "key": plaintext}, status=201)


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
    await scope.admin()
    key = scope.request.path_params["key"]
    record = await asyncio.to_thread(scope.services.keys.revoke_key, key)
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
    return json_response(scope, summary)


routes = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key}", revoke_key, methods=["DELETE"]),
    Route("/admin/spend", spend, methods=["GET"]),
]
