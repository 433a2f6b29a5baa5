"""Admin routes of the incident log and the change log.

The admin key opens and closes incidents and records changes; a team admin may read its
own team's incidents. Changes are platform-wide: the admin key reads them.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.routing import Route

from llmplane import incidents as incident_log
from llmplane.gateway.admin_fields import (
    optional_str,
    query_limit,
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
    requires,
)
from llmplane.gateway.validation import parse_json_object


@requires(Policy.ADMIN)
@documented("Incident", request="IncidentOpen", status=201)
@endpoint
async def open_incident(scope: RequestScope) -> Response:
    """Open an incident, with its severity, cause (``change:ID``, ``KIND:SUBJECT`` or
    unknown), team and the time its impact started."""
    principal = await scope.admin()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("title", "severity", "cause", "team", "started_at"), "incident")
    incident = await asyncio.to_thread(
        incident_log.open_incident,
        scope.services.engine,
        required_str(body, "title"),
        actor=principal.key_id,
        severity=optional_str(body, "severity") or "sev3",
        cause=incident_log.parse_cause(optional_str(body, "cause")),
        team_id=await scope.team_id(optional_str(body, "team")),
        started_at=query_time(optional_str(body, "started_at"), "started_at"),
    )
    return json_response(scope, incident.to_json(), status=201)


@requires(Policy.ADMIN)
@documented("Incident", request="IncidentClose")
@endpoint
async def close_incident(scope: RequestScope) -> Response:
    """Close an open incident, with its resolution."""
    principal = await scope.admin()
    body = parse_json_object(await scope.body() or b"{}")
    refuse_unknown(body, ("resolution",), "incident")
    incident = await asyncio.to_thread(
        incident_log.close_incident,
        scope.services.engine,
        scope.request.path_params["incident"],
        actor=principal.key_id,
        resolution=optional_str(body, "resolution"),
    )
    return json_response(scope, incident.to_json())


@requires(Policy.TEAM)
@documented(
    "IncidentList",
    query={
        "status": "open or closed",
        "team": "Only this team's incidents (id or name); a team admin gets its own team's",
        "since": "Opened at or after this ISO 8601 time",
        "limit": "At most this many (1-10000, default 100)",
    },
)
@endpoint
async def list_incidents(scope: RequestScope) -> Response:
    """The newest incidents first; a team admin sees its own team's."""
    principal = await scope.manager()
    params = scope.request.query_params
    team_id = await scope.team_filter(principal)
    found = await asyncio.to_thread(
        incident_log.list_incidents,
        scope.services.engine,
        status=params.get("status"),
        team_id=team_id,
        since=query_time(params.get("since"), "since"),
        limit=query_limit(params.get("limit")),
    )
    return json_response(scope, {"object": "list", "data": [i.to_json() for i in found]})


@requires(Policy.ADMIN)
@documented("Change", request="ChangeRecord", status=201)
@endpoint
async def record_change(scope: RequestScope) -> Response:
    """Record a change that can cause incidents (a deploy, a prompt release, a config
    change); ``actor`` names who made it (default: the calling key)."""
    principal = await scope.admin()
    body = parse_json_object(await scope.body())
    refuse_unknown(body, ("kind", "subject", "summary", "action", "actor", "team", "at"), "change")
    change = await asyncio.to_thread(
        incident_log.record_change,
        scope.services.engine,
        required_str(body, "kind"),
        required_str(body, "subject"),
        summary=optional_str(body, "summary") or "",
        actor=optional_str(body, "actor") or principal.key_id,
        action=optional_str(body, "action") or "changed",
        team_id=await scope.team_id(optional_str(body, "team")),
        at=query_time(optional_str(body, "at"), "at"),
    )
    return json_response(scope, change.to_json(), status=201)


@requires(Policy.ADMIN)
@documented(
    "ChangeList",
    query={
        "since": "Recorded at or after this ISO 8601 time",
        "until": "Recorded before this ISO 8601 time",
        "kind": "model, deployment, prompt, config or other",
        "team": "Only this team's and the platform-wide changes (id or name)",
        "limit": "At most this many (1-10000, default 100)",
    },
)
@endpoint
async def list_changes(scope: RequestScope) -> Response:
    """The newest recorded changes first."""
    await scope.admin()
    params = scope.request.query_params
    found = await asyncio.to_thread(
        incident_log.list_changes,
        scope.services.engine,
        since=query_time(params.get("since"), "since"),
        until=query_time(params.get("until"), "until"),
        kind=params.get("kind"),
        team_id=await scope.team_id(params.get("team")),
        limit=query_limit(params.get("limit")),
    )
    return json_response(scope, {"object": "list", "data": [c.to_json() for c in found]})


routes = [
    Route("/admin/incidents", open_incident, methods=["POST"]),
    Route("/admin/incidents", list_incidents, methods=["GET"]),
    Route("/admin/incidents/{incident}/close", close_incident, methods=["POST"]),
    Route("/admin/changes", record_change, methods=["POST"]),
    Route("/admin/changes", list_changes, methods=["GET"]),
]
