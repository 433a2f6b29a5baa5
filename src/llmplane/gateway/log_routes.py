"""Admin routes for the stored request logs: query, show, delete a user's, purge expired.

A team admin reads its own team's logs; deleting (a user's deletion request) and purging
are the platform admin's.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.routing import Route

from llmplane.accounting.request_logs import (
    MAX_LIMIT,
    delete_user_logs,
    get_log,
    list_logs,
    purge_expired,
)
from llmplane.errors import InvalidRequestError, LLMPlaneError, NotFoundError
from llmplane.gateway.admin_fields import query_limit, query_time
from llmplane.gateway.http import (
    Policy,
    RequestScope,
    documented,
    endpoint,
    json_response,
    require_team,
    requires,
)

_FLUSH_WAIT_S = 5.0


async def _written(scope: RequestScope) -> None:
    """Wait (a little) for the rows of requests that finished before this one."""
    writer = scope.services.stored_logs
    if writer is not None:
        await asyncio.to_thread(writer.flush, _FLUSH_WAIT_S)


async def _key_id(scope: RequestScope, key: str | None) -> str | None:
    """A key filter by id or unique name (a revoked key's logs are found by its id)."""
    if key is None:
        return None
    try:
        return await asyncio.to_thread(scope.services.keys.resolve_key_id, key)
    except LLMPlaneError:
        return key


@requires(Policy.TEAM)
@documented(
    "RequestLogList",
    query={
        "request_id": "Only this request id",
        "key": "Only this key (id or unique name)",
        "model": "Only this model (asked for or served)",
        "team": "Only this team (id or name); a team admin always gets its own team's",
        "user": "Only this end user",
        "since": "ISO 8601 start (inclusive)",
        "until": "ISO 8601 end (exclusive)",
        "limit": f"At most this many rows (1-{MAX_LIMIT}, default 100)",
    },
)
@endpoint
async def list_request_logs(scope: RequestScope) -> Response:
    """Stored request logs, newest first, without their bodies (a team admin sees its own
    team's)."""
    principal = await scope.manager()
    params = scope.request.query_params
    limit = query_limit(params.get("limit"), MAX_LIMIT)
    team_id = await scope.team_filter(principal)
    since, until = (
        query_time(params.get("since"), "since"),
        query_time(params.get("until"), "until"),
    )
    key_id = await _key_id(scope, params.get("key"))
    await _written(scope)
    rows = await asyncio.to_thread(
        list_logs,
        scope.services.engine,
        request_id=params.get("request_id"),
        key_id=key_id,
        model=params.get("model"),
        team_id=team_id,
        user_id=params.get("user"),
        since=since,
        until=until,
        limit=limit,
    )
    return json_response(scope, {"object": "list", "data": rows})


@requires(Policy.TEAM)
@documented("RequestLogDetail")
@endpoint
async def show_request_log(scope: RequestScope) -> Response:
    """One request's stored log with its request and response bodies (as its team's policy
    kept them: none, redacted or full)."""
    principal = await scope.manager()
    request_id, engine = scope.request.path_params["request_id"], scope.services.engine
    await _written(scope)
    try:
        # Request ids are the clients' own: a team admin gets its team's row of the id.
        row = await asyncio.to_thread(get_log, engine, request_id, team_id=principal.team_id)
    except NotFoundError:
        if principal.team_id is None:
            raise
        row = await asyncio.to_thread(get_log, engine, request_id)  # another team's: 403
    require_team(principal, row["team_id"])
    return json_response(scope, row)


@requires(Policy.ADMIN)
@documented(
    "RequestLogDeletion",
    query={"user": "The end user whose logs to delete (required)", "team": "Only this team's"},
)
@endpoint
async def delete_request_logs(scope: RequestScope) -> Response:
    """Delete every stored request log of one end user (a deletion request); audited."""
    principal = await scope.admin()
    params = scope.request.query_params
    user = params.get("user")
    if not user:
        raise InvalidRequestError("'user' is required, e.g. ?user=end-user-7.", param="user")
    team_id = await scope.team_filter(principal)
    await _written(scope)
    deleted = await asyncio.to_thread(
        delete_user_logs, scope.services.engine, user, team_id=team_id, actor=principal.key_id
    )
    return json_response(scope, {"user": user, "team_id": team_id, "deleted": deleted})


@requires(Policy.ADMIN)
@documented("RequestLogPurge")
@endpoint
async def purge_request_logs(scope: RequestScope) -> Response:
    """Delete the stored request logs past their retention now (the gateway also does it
    every few minutes)."""
    await scope.admin()
    deleted = await asyncio.to_thread(purge_expired, scope.services.engine)
    return json_response(scope, {"deleted": deleted})


routes = [
    Route("/admin/logs", list_request_logs, methods=["GET"]),
    Route("/admin/logs", delete_request_logs, methods=["DELETE"]),
    Route("/admin/logs/purge", purge_request_logs, methods=["POST"]),
    Route("/admin/logs/{request_id}", show_request_log, methods=["GET"]),
]
