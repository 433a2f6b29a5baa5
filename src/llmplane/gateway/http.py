"""HTTP plumbing shared by every route: request ids, bounded bodies, auth, error responses.

:func:`endpoint` is the single place where errors become responses: routes
raise :mod:`llmplane.errors` exceptions and never build error bodies
themselves; anything unexpected becomes a 500 without a stack trace.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from llmplane.accounting.keys import TEAM_ADMIN, Principal
from llmplane.errors import (
    ClientClosedError,
    LLMPlaneError,
    PermissionDeniedError,
    RequestTooLargeError,
    error_body,
)
from llmplane.ids import new_id

if TYPE_CHECKING:
    from llmplane.gateway.app import GatewayServices
    from llmplane.telemetry import RequestTrace

log = logging.getLogger("llmplane.gateway")

_T = TypeVar("_T")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_BEARER = "bearer "


@dataclass(slots=True)
class RequestScope:
    """What every route gets: the services, the request id and (once authenticated) who calls."""

    services: GatewayServices
    request: Request
    request_id: str
    trace: RequestTrace | None = None  # when telemetry is on

    async def principal(self) -> Principal:
        """Authenticate the caller from ``Authorization: Bearer <key>``, or ``x-api-key``
        (what Anthropic's clients send)."""
        headers = self.request.headers
        header = headers.get("authorization", "")
        key = header[len(_BEARER) :].strip() if header[:7].lower() == _BEARER else None
        return await self.services.keys.authenticate(key or headers.get("x-api-key"))

    async def admin(self) -> Principal:
        """Authenticate the caller and require the admin key."""
        principal = await self.principal()
        if not principal.is_admin:
            raise PermissionDeniedError("This route needs the admin key.", code="admin_only")
        return principal

    async def manager(self) -> Principal:
        """Authenticate the caller and require the admin key or a team-admin key; the route
        then checks the object's team with :func:`require_team`."""
        principal = await self.principal()
        if not principal.is_admin and principal.role != TEAM_ADMIN:
            raise PermissionDeniedError(
                "This route needs the admin key or a team admin's key.", code="admin_only"
            )
        return principal

    async def team_id(self, ref: str | None) -> str | None:
        """The id of the team ``ref`` names (id or name; 404 when there is none), or None."""
        if ref is None:
            return None
        return (await asyncio.to_thread(self.services.teams.get_team, ref)).id

    async def team_filter(self, principal: Principal) -> str | None:
        """The team a listing is limited to: the one the caller asked for (``?team=``, id or
        name, which it must manage) or, for a team admin, its own; None for all."""
        team_id = None if principal.is_admin else principal.team_id
        team = self.request.query_params.get("team")
        if team is not None:
            team_id = await self.team_id(team)
            require_team(principal, team_id)
        return team_id

    async def body(self) -> bytes:
        """The request body, refused with 413 beyond the configured limit."""
        limit = self.services.settings.max_request_body_bytes
        declared = self.request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)

    async def unless_disconnected(self, work: Awaitable[_T]) -> _T:
        """Await ``work`` (in this task), cancelling it if the client disconnects first; then
        :class:`ClientClosedError` is raised. Call it after the body has been read: from then
        on the only message the server can deliver is the disconnect."""
        task = asyncio.current_task()
        assert task is not None
        receive = self.request.receive
        left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            left = True
            task.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            return await work
        except asyncio.CancelledError:
            if not left:
                raise
            task.uncancel()
            raise ClientClosedError("The client closed the connection.") from None
        finally:
            watcher.cancel()

    def headers(self, **extra: str) -> dict[str, str]:
        """Response headers every answer carries, plus ``extra``."""
        return {"x-request-id": self.request_id, **extra}


class Policy(StrEnum):
    """Who may call a route; every route declares one (a test holds each to it)."""

    PUBLIC = "public"  # anyone (health)
    KEY = "key"  # any valid key
    ADMIN = "admin"  # the admin key only
    TEAM = "team"  # the admin key, or a team admin of the object's team
    # the admin key, or any key of the object's team (or any key, for a platform object);
    # a key of another team gets 404, as if the object did not exist
    TEAM_READ = "team_read"


def requires(policy: Policy) -> Callable[[_Endpoint], _Endpoint]:
    """Declare the route's policy (outermost decorator)."""

    def declare(route: _Endpoint) -> _Endpoint:
        route.policy = policy  # type: ignore[attr-defined]
        return route

    return declare


@dataclass(frozen=True, slots=True)
class ApiDoc:
    """What a route accepts and answers, by schema name (:mod:`llmplane.gateway.schemas`)."""

    response: str | None  # None: no JSON answer (only ``other_media``)
    request: str | None = None
    status: int = 200
    query: tuple[tuple[str, str], ...] = ()  # (name, description)
    other_media: tuple[tuple[str, str], ...] = ()  # (media type, description)


def documented(
    response: str | None,
    *,
    request: str | None = None,
    status: int = 200,
    query: dict[str, str] | None = None,
    other_media: dict[str, str] | None = None,
) -> Callable[[_T], _T]:
    """Declare the route's request and response schemas and query parameters."""
    doc = ApiDoc(
        response,
        request,
        status,
        tuple((query or {}).items()),
        tuple((other_media or {}).items()),
    )

    def declare(route: _T) -> _T:
        route.api = doc  # type: ignore[attr-defined]
        return route

    return declare


def require_team(principal: Principal, team_id: str | None) -> None:
    """Refuse unless ``principal`` administers ``team_id`` (the admin administers all)."""
    if not principal.manages_team(team_id):
        raise PermissionDeniedError(
            "A team admin's key can only manage its own team.", code="not_team_admin"
        )


def json_response(scope: RequestScope, data: Any, status: int = 200, **headers: str) -> Response:
    """A JSON answer with the request id header."""
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type="application/json",
        headers=scope.headers(**headers),
    )


ErrorShape = Callable[[LLMPlaneError], bytes]


def error_response(exc: LLMPlaneError, request_id: str, shape: ErrorShape = error_body) -> Response:
    """The answer for ``exc``: OpenAI's error shape unless the route speaks another API."""
    return Response(
        shape(exc),
        status_code=exc.http_status,
        media_type="application/json",
        headers={**exc.headers, "x-request-id": request_id},
    )


Route = Callable[[RequestScope], Awaitable[Response]]
_Endpoint = Callable[[Request], Awaitable[Response]]


def request_id_for(request: Request) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a new one."""
    incoming = request.headers.get("x-request-id")
    return incoming if incoming and _REQUEST_ID.fullmatch(incoming) else new_id("req")


def endpoint(
    route: Route, *, errors: ErrorShape = error_body
) -> Callable[[Request], Awaitable[Response]]:
    """Turn a route into a Starlette endpoint with request ids and error translation (in
    ``errors``' shape: OpenAI's by default)."""

    @functools.wraps(route)
    async def handle(request: Request) -> Response:
        request_id = request_id_for(request)
        services: GatewayServices = request.app.state.services
        telemetry = services.telemetry
        trace = (
            telemetry.start(
                request_id,
                request.method,
                request.scope["path"],  # not request.url: building it costs ~5 us
                request.headers.get("traceparent"),
            )
            if telemetry.enabled
            else None
        )
        scope = RequestScope(services, request, request_id, trace)
        try:
            response = await route(scope)
        except LLMPlaneError as exc:
            if trace is not None:
                telemetry.finish(trace, exc.http_status, exc)
            return error_response(exc, request_id, errors)
        except Exception:
            log.exception("unexpected error in %s (request %s)", request.url.path, request_id)
            failure = LLMPlaneError(
                f"Internal error; quote request id {request_id} to the platform team."
            )
            if trace is not None:
                telemetry.finish(trace, failure.http_status, failure)
            return error_response(failure, request_id, errors)
        # A relayed stream ends later: its relay finishes the trace.
        if trace is not None and not getattr(response, "finishes_trace", False):
            telemetry.finish(trace, response.status_code)
        return response

    return handle
