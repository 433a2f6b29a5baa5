"""The gateway's ASGI application: services wired once, routes, lifespan and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import start_http_server
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from llmplane.accounting.alerts import BudgetAlerts
from llmplane.accounting.budgets import AdmissionGuard, LocalAdmissionGuard, load_budgets
from llmplane.accounting.keys import KeyService
from llmplane.accounting.ledger import UsageLedger
from llmplane.accounting.request_logs import purge_expired
from llmplane.accounting.teams import TeamService
from llmplane.config.platform import PlatformConfig
from llmplane.config.settings import Settings
from llmplane.errors import LLMPlaneError, NotFoundError, ServiceUnavailableError
from llmplane.gateway import (
    admin_routes,
    bridged_routes,
    eval_routes,
    incident_routes,
    log_routes,
    openai_routes,
    prompt_routes,
    team_routes,
)
from llmplane.gateway.calls import ModelCaller
from llmplane.gateway.http import (
    Policy,
    RequestScope,
    documented,
    endpoint,
    error_response,
    json_response,
    request_id_for,
    requires,
)
from llmplane.gateway.openapi import openapi_document
from llmplane.gateway.router import ModelRouter
from llmplane.guardrails.engine import GuardrailEngine
from llmplane.prompts import PromptResolver
from llmplane.telemetry import Observer, Telemetry
from llmplane.telemetry.bodies import BodyFilter
from llmplane.telemetry.metrics import (
    CONTENT_TYPE,
    DeploymentState,
    GatewayMetrics,
    GatewayState,
)
from llmplane.telemetry.request_log import RequestLogObserver
from llmplane.telemetry.stored_logs import StoredLogWriter

if TYPE_CHECKING:
    from llmplane.guardrails.pii import RedactorProcess
    from llmplane.telemetry.tracing import SpanObserver

log = logging.getLogger("llmplane.gateway")

_READY_TIMEOUT_S = 2.0
_FULL_BUDGET_RELOAD_S = 60.0
_CLOCK_SKEW = timedelta(seconds=2)


@dataclass
class GatewayServices:
    """Everything a request may need, built once per process."""

    settings: Settings
    platform: PlatformConfig
    engine: Engine
    keys: KeyService
    ledger: UsageLedger
    router: ModelRouter
    caller: ModelCaller
    teams: TeamService
    admission: AdmissionGuard
    alerts: BudgetAlerts
    prompts: PromptResolver
    telemetry: Telemetry = field(default_factory=Telemetry)
    metrics: GatewayMetrics | None = None  # when LLMPLANE_METRICS is on
    stored_logs: StoredLogWriter | None = None
    # The guardrail policies, when llmplane.yaml assigns any.
    guardrails: GuardrailEngine | None = None
    # The filtered request bodies the stored logs and spans share (closed after them).
    bodies: BodyFilter | None = None
    started_at: int = field(default_factory=lambda: int(time.time()))
    _budgets_loaded_at: datetime | None = None
    _budgets_full_at: float = 0.0

    async def reload_budgets(self) -> None:
        """Bring the guard's budgets up to date (after a change, and polled): the budgets
        changed since the last call, and every budget once a minute (a safety net for
        clocks that disagree by more than the allowed skew)."""
        now = datetime.now(UTC)
        since = self._budgets_loaded_at
        if since is None or time.monotonic() - self._budgets_full_at > _FULL_BUDGET_RELOAD_S:
            self.admission.replace_budgets(await asyncio.to_thread(load_budgets, self.engine))
            self._budgets_full_at = time.monotonic()
        else:
            changed = await asyncio.to_thread(
                load_budgets, self.engine, changed_since=since - _CLOCK_SKEW
            )
            self.admission.update_budgets(changed)
        self._budgets_loaded_at = now


def build_services(
    settings: Settings, platform: PlatformConfig, engine: Engine, admin_key: str
) -> GatewayServices:
    """Wire the services of one gateway process (the schema must already be migrated).

    Raises :class:`~llmplane.errors.ConfigError` for a guardrail policy whose detectors
    cannot be built."""
    guardrails = (
        GuardrailEngine.from_config(platform.guardrails, file=platform.source_file)
        if platform.guardrails.policies
        else None
    )
    ledger = UsageLedger(
        engine,
        queue_size=settings.ledger_queue_size,
        batch_size=settings.ledger_batch_size,
        flush_interval_s=settings.ledger_flush_interval_s,
    )
    router = ModelRouter(platform)
    admission: AdmissionGuard
    if settings.redis_url:
        # Imported here: the redis client is only needed when replicas share counters.
        from llmplane.accounting.redis_counters import RedisAdmissionGuard

        admission = RedisAdmissionGuard.from_url(
            engine,
            settings.redis_url,
            reservation_ttl_s=settings.reservation_ttl_s,
            failure_mode=settings.redis_failure_mode,
        )
    else:
        admission = LocalAdmissionGuard(engine)
    # An observer unless turned off (it skips requests whose team stores no logs in one
    # attribute check), since a team's policy can change while the gateway runs.
    # The bodies the teams' policies let out, filtered once per request for the stored
    # request logs and the spans (its redactor, a child process, starts on first use).
    bodies = BodyFilter(_redactor)
    stored_logs = (
        StoredLogWriter(engine, bodies=bodies, limit=settings.request_logs_queue_size)
        if settings.stored_logs
        else None
    )
    spans: SpanObserver | None = None
    if settings.otel_endpoint:
        # Imported here: the gateway without tracing never loads OpenTelemetry.
        from llmplane.telemetry.tracing import SpanObserver

        spans = SpanObserver.otlp(
            settings.otel_endpoint,
            settings.otel_protocol,
            settings.otel_service_name,
            settings.otel_queue_size,
            bodies=bodies if settings.otel_content else None,
        )
    metrics = (
        GatewayMetrics(_state_reader(ledger, router, stored_logs, spans), router.model_names)
        if settings.metrics
        else None
    )
    observers: list[Observer] = [metrics] if metrics is not None else []
    if stored_logs is not None:
        observers.append(stored_logs)
    if settings.request_log:
        observers.append(RequestLogObserver())
    if spans is not None:
        observers.append(spans)
    return GatewayServices(
        settings=settings,
        platform=platform,
        engine=engine,
        keys=KeyService(engine, admin_key, platform.defaults.request_logs, platform.guardrails),
        ledger=ledger,
        router=router,
        caller=ModelCaller(router, ledger, admission),
        teams=TeamService(engine),
        admission=admission,
        alerts=BudgetAlerts(engine, admission, settings.budget_webhook_url),
        prompts=PromptResolver(engine, settings.prompt_cache_ttl_s),
        telemetry=Telemetry(observers),
        metrics=metrics,
        stored_logs=stored_logs,
        guardrails=guardrails,
        bodies=bodies,
    )


def _redactor() -> RedactorProcess:
    """The PII and secret redactor of ``redacted`` request logs, in a child process (built
    by the writer thread on first use: importing Presidio takes about a second)."""
    from llmplane.guardrails.pii import RedactorProcess

    return RedactorProcess()


def _state_reader(
    ledger: UsageLedger,
    router: ModelRouter,
    stored_logs: StoredLogWriter | None,
    spans: SpanObserver | None = None,
) -> Callable[[], GatewayState]:
    """What the metrics read at scrape time: the ledger's, the request logs' and the
    spans' queues and each deployment's health."""

    def read() -> GatewayState:
        now = time.monotonic()
        return GatewayState(
            ledger_queue_depth=ledger.depth,
            ledger_dropped=ledger.dropped,
            ledger_rejected=ledger.rejected,
            request_logs_queue_depth=stored_logs.depth if stored_logs else 0,
            request_logs_dropped=stored_logs.dropped if stored_logs else 0,
            request_logs_rejected=stored_logs.rejected if stored_logs else 0,
            spans_queue_depth=spans.depth if spans else 0,
            spans_dropped=spans.dropped if spans else 0,
            spans_failed=spans.failed if spans else 0,
            deployments=[
                DeploymentState(
                    model=model,
                    deployment=deployment.id,
                    in_flight=deployment.health.in_flight,
                    cooling_down=now < deployment.health.cooldown_until,
                    cooldowns=deployment.health.cooldowns,
                )
                for model in router.model_names
                for deployment in router.deployments(model)
            ],
        )

    return read


def _ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@requires(Policy.PUBLIC)
@documented("Health")
@endpoint
async def live(scope: RequestScope) -> Response:
    """The process is up."""
    return json_response(scope, {"status": "ok"})


@requires(Policy.PUBLIC)
@documented("Health")
@endpoint
async def ready(scope: RequestScope) -> Response:
    """The store answers; 503 otherwise."""
    try:
        await asyncio.wait_for(asyncio.to_thread(_ping, scope.services.engine), _READY_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any store failure means not ready
        log.warning("readiness check failed: %s", type(exc).__name__)
        raise ServiceUnavailableError(
            "The platform store is not reachable.", code="store_unavailable"
        ) from None
    return json_response(scope, {"status": "ok", "ledger_queue_depth": scope.services.ledger.depth})


@requires(Policy.ADMIN)
@documented(None, other_media={"text/plain": "Prometheus' text exposition format."})
@endpoint
async def metrics(scope: RequestScope) -> Response:
    """Prometheus metrics: requests, tokens, cost, latency, refusals, ledger and deployments
    (404 when ``LLMPLANE_METRICS`` is off)."""
    await scope.admin()
    gateway_metrics = scope.services.metrics
    if gateway_metrics is None:
        raise NotFoundError("Metrics are off (LLMPLANE_METRICS=false).", code="metrics_off")
    return Response(gateway_metrics.exposition(), media_type=CONTENT_TYPE, headers=scope.headers())


@requires(Policy.PUBLIC)
@documented("OpenAPI")
@endpoint
async def openapi(scope: RequestScope) -> Response:
    """The OpenAPI document of every route (built from the routes themselves)."""
    return json_response(scope, openapi_document(scope.request.app.routes))


class _HTTPStatusError(LLMPlaneError):
    """Starlette's own refusals (unknown route, wrong method) in OpenAI's shape."""

    def __init__(self, message: str, status: int, headers: dict[str, str]) -> None:
        super().__init__(
            message, code="method_not_allowed" if status == 405 else "http_error", headers=headers
        )
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    request_id = request_id_for(request)
    if exc.status_code == 404:
        return error_response(
            NotFoundError(f"No route {request.url.path}.", code="route_not_found"), request_id
        )
    return error_response(
        _HTTPStatusError(str(exc.detail), exc.status_code, dict(exc.headers or {})), request_id
    )


async def _refresh(services: GatewayServices) -> None:
    """Pick up other replicas' key revocations and budget changes."""
    interval = services.settings.key_refresh_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await services.keys.refresh_changes()
            await services.reload_budgets()
        except Exception as exc:  # noqa: BLE001 - keep polling through store hiccups
            log.warning("refresh of keys and budgets failed: %s", type(exc).__name__)


class GatewayApp:
    """The ASGI entry point: the hot OpenAI routes go straight to their endpoint; everything
    else (admin, health, lifespan, unknown paths) goes through Starlette's router.

    Skipping Starlette's middleware stack and route matching on the hot path saves a few
    tens of microseconds per request (see ``bench/``); the endpoints, their error handling
    and their responses are the same objects either way.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state
        self._hot = {
            (method, route.path): route.endpoint
            for route in (*openai_routes.routes, *bridged_routes.routes)
            if isinstance(route, Route)
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hot = self._hot.get((scope["method"], scope["path"]))
            if hot is not None:
                scope["app"] = self.app
                response = await hot(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _check_deployments(services: GatewayServices) -> None:
    """Run the active health checks of self-hosted deployments, each at its interval."""
    while True:
        try:
            wait = await services.router.run_health_checks()
        except Exception as exc:  # noqa: BLE001 - a failed round must not stop the checks
            log.warning("deployment health checks failed: %s", type(exc).__name__)
            wait = 1.0
        await asyncio.sleep(wait)


async def _purge_request_logs(services: GatewayServices) -> None:
    """Delete stored request logs past their retention, in batches, every few minutes
    (every replica does it: deleting what another already deleted is harmless)."""
    while True:
        try:
            deleted = await asyncio.to_thread(purge_expired, services.engine)
            if deleted:
                log.info("request logs: deleted %d rows past their retention", deleted)
        except Exception as exc:  # noqa: BLE001 - keep purging through store hiccups
            log.warning("request log retention failed: %s", type(exc).__name__)
        await asyncio.sleep(services.settings.request_logs_purge_interval_s)


async def _watch_budgets(services: GatewayServices) -> None:
    """Fire crossed soft thresholds (webhook and audit event, once per period)."""
    while True:
        await asyncio.sleep(services.settings.budget_alert_interval_s)
        try:
            await services.alerts.check()
        except Exception as exc:  # noqa: BLE001 - keep watching through store hiccups
            log.warning("budget threshold check failed: %s", type(exc).__name__)


def create_app(services: GatewayServices) -> GatewayApp:
    """The gateway application around already-wired ``services``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services.ledger.start()
        if services.stored_logs is not None:
            services.stored_logs.start()
        await services.reload_budgets()
        background = [
            asyncio.create_task(_refresh(services), name="refresh"),
            asyncio.create_task(_watch_budgets(services), name="budget-alerts"),
            asyncio.create_task(_check_deployments(services), name="health-checks"),
            asyncio.create_task(
                services.router.warm(counting=bool(services.admission.budgets())),
                name="warm-providers",
            ),
        ]
        if services.stored_logs is not None:
            background.append(
                asyncio.create_task(_purge_request_logs(services), name="request-log-retention")
            )
        port = services.settings.metrics_port
        scraper = (
            start_http_server(port, services.settings.host, services.metrics.registry)[0]
            if services.metrics is not None and port is not None
            else None
        )
        try:
            yield
        finally:
            if scraper is not None:
                scraper.shutdown()
                scraper.server_close()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await services.alerts.aclose()
            await services.admission.aclose()
            await services.ledger.close(services.settings.graceful_shutdown_s)
            await services.router.aclose()
            await asyncio.to_thread(services.telemetry.close)
            if services.bodies is not None:  # after the observers that use it
                services.bodies.close()
            if services.guardrails is not None:
                services.guardrails.close()

    app = Starlette(
        routes=[
            Route("/health/live", live, methods=["GET"]),
            Route("/health/ready", ready, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *openai_routes.routes,
            *bridged_routes.routes,
            *admin_routes.routes,
            *team_routes.routes,
            *incident_routes.routes,
            *log_routes.routes,
            *prompt_routes.routes,
            *eval_routes.routes,
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    return GatewayApp(app)
