"""Prometheus metrics of the gateway, fed by finished request traces.

:class:`GatewayMetrics` is a telemetry :class:`~llmplane.telemetry.Observer`: each
finished request adds to counters and histograms (``prometheus_client``'s), and
the state that changes without requests (the ledger's queue, deployments'
cooldowns and calls in flight) is read when Prometheus scrapes.

Labels have bounded values: operation, model (configured models; any other name a
client sends is ``other``), deployment (configured too), team id, status class and error type.
Key ids, users, request ids and paths never become labels; a request without a
team counts as team ``"none"``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from llmplane.telemetry import RequestTrace

__all__ = [
    "CONTENT_TYPE",
    "DeploymentState",
    "GatewayMetrics",
    "GatewayState",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
NONE = "none"
_OTHER = "other"
_NANO_PER_USD = 1_000_000_000
# LLM calls take from milliseconds (cached, short) to minutes (long generations).
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Guardrail checks: pattern detectors take microseconds, models tens of milliseconds.
_GUARDRAIL_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
# The gateway's own 429s (not an upstream's, which is "upstream_rate_limited").
_REFUSALS = {"budget_exceeded": "budget", "rate_limit_exceeded": "rate_limit"}


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """What the router knows about one deployment at scrape time."""

    model: str
    deployment: str
    in_flight: int
    cooling_down: bool
    cooldowns: int


@dataclass(frozen=True, slots=True)
class GatewayState:
    """The gateway's state at scrape time (read, not counted per request)."""

    ledger_queue_depth: int = 0
    ledger_dropped: int = 0
    ledger_rejected: int = 0
    request_logs_queue_depth: int = 0
    request_logs_dropped: int = 0
    request_logs_rejected: int = 0
    spans_queue_depth: int = 0
    spans_dropped: int = 0
    spans_failed: int = 0
    deployments: Sequence[DeploymentState] = field(default_factory=tuple)


# An attempt's series: its count, its prompt, completion and cached tokens, its TTFT.
_AttemptChildren = tuple[Counter, Counter, Counter, Counter, Histogram]


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own (not the process-wide
    default one, so that two gateways in one test process do not share counts)."""

    def __init__(
        self,
        read_state: Callable[[], GatewayState] = GatewayState,
        models: Iterable[str] | None = None,
    ) -> None:
        # A trace names the model the client asked for, configured or not (a 404 for a
        # made-up name): only configured ones become label values, the rest "other".
        self._models = frozenset(models) if models is not None else None
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._requests = Counter(
            "llmplane_requests",
            "Requests answered, by operation, requested model, team, status class and error type.",
            ["operation", "model", "team", "status_class", "error_type"],
            registry=registry,
        )
        self._refusals = Counter(
            "llmplane_refusals",
            "Requests the gateway refused for a team's budget or rate limit (429).",
            ["team", "reason"],
            registry=registry,
        )
        self._attempts = Counter(
            "llmplane_attempts",
            "Upstream calls (retries and fallbacks included), by status class.",
            ["model", "deployment", "status_class"],
            registry=registry,
        )
        self._retries = Counter(
            "llmplane_retries",
            "Upstream calls after the first on the requested model.",
            ["model", "deployment"],
            registry=registry,
        )
        self._fallbacks = Counter(
            "llmplane_fallbacks",
            "Upstream calls to a fallback model instead of the requested one.",
            ["model", "fallback_model"],
            registry=registry,
        )
        self._tokens = Counter(
            "llmplane_tokens",
            "Tokens of upstream calls, by kind (prompt, completion, cached).",
            ["team", "model", "deployment", "kind"],
            registry=registry,
        )
        self._duration = Histogram(
            "llmplane_request_duration_seconds",
            "Time from a model request's arrival to its answer's (or stream's) end, by "
            "the deployment that served it.",
            ["operation", "model", "deployment"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._ttft = Histogram(
            "llmplane_time_to_first_token_seconds",
            "Time from a streamed upstream call's start to its first token.",
            ["model", "deployment"],
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self._guardrail_checks = Counter(
            "llmplane_guardrail_checks",
            "Guardrail rule checks, by team, detector, stage (input, output) and outcome "
            "(pass, flagged, error, timeout, unavailable).",
            ["team", "detector", "stage", "outcome"],
            registry=registry,
        )
        self._guardrail_seconds = Histogram(
            "llmplane_guardrail_check_duration_seconds",
            "Time a guardrail detector took on one request stage (a stream's windows added).",
            ["detector", "stage"],
            buckets=_GUARDRAIL_BUCKETS,
            registry=registry,
        )
        self._guardrail_children: dict[tuple[str, str, str, str], tuple[Counter, Histogram]] = {}
        # Cost is summed in integer nano-USD (exact, as the ledger sums it) and shown in USD.
        self._cost_nanousd: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._read_state = read_state
        # Labelled children by label values, so that a request does no labels() lookups
        # once its kind was seen (the label values are bounded: see the module docstring).
        self._request_children: dict[tuple[str, ...], Counter] = {}
        self._attempt_children: dict[tuple[str, str, str, int], _AttemptChildren] = {}
        self._duration_children: dict[tuple[str, str, str], Histogram] = {}
        registry.register(_ScrapeCollector(self))

    def request_finished(self, trace: RequestTrace) -> None:
        """Count one finished request and its upstream attempts."""
        principal = trace.principal
        team = (principal.team_id or NONE) if principal is not None else NONE
        operation = trace.operation or NONE
        model = trace.model or NONE
        if self._models is not None and model not in self._models and model != NONE:
            model = _OTHER
        status_class = _STATUS_CLASS.get(trace.status // 100, "other")
        request_key = (operation, model, team, status_class, trace.error_type or NONE)
        counted = self._request_children.get(request_key)
        if counted is None:
            counted = self._request_children[request_key] = self._requests.labels(*request_key)
        counted.inc()
        if trace.status == 429:
            reason = _REFUSALS.get(trace.error_code or "")
            if reason is not None:
                self._refusals.labels(team, reason).inc()
        if trace.guardrails:
            self._count_guardrails(team, trace)
        if trace.operation is None:
            return  # not a model call (admin, health, a refused key): no latency to report
        attempts = trace.attempts
        served = attempts[-1].deployment if attempts else NONE
        duration_key = (operation, model, served)
        timed = self._duration_children.get(duration_key)
        if timed is None:
            timed = self._duration_children[duration_key] = self._duration.labels(*duration_key)
        timed.observe(trace.duration_s)
        for attempt in attempts:
            served_model, deployment = attempt.model, attempt.deployment
            attempt_team = attempt.team_id or NONE
            key = (attempt_team, served_model, deployment, attempt.status // 100)
            children = self._attempt_children.get(key)
            if children is None:
                children = self._attempt_children[key] = self._children_of(key)
            tried, prompt, completion, cached, ttft = children
            tried.inc()
            prompt.inc(attempt.prompt_tokens)
            completion.inc(attempt.completion_tokens)
            cached.inc(attempt.cached_tokens)
            self._cost_nanousd[attempt_team, served_model, deployment] += attempt.cost_nanousd
            if attempt.ttft_ms is not None:
                ttft.observe(attempt.ttft_ms / 1000)
            if served_model != model:
                self._fallbacks.labels(model, served_model).inc()
            elif attempt.attempt:
                self._retries.labels(served_model, deployment).inc()

    def _count_guardrails(self, team: str, trace: RequestTrace) -> None:
        """One count and one duration per rule and stage checked (detector names are the
        configured ones: bounded)."""
        for check in trace.guardrails or ():
            key = (team, check.detector, check.stage, check.outcome)
            children = self._guardrail_children.get(key)
            if children is None:
                children = self._guardrail_children[key] = (
                    self._guardrail_checks.labels(*key),
                    self._guardrail_seconds.labels(check.detector, check.stage),
                )
            children[0].inc()
            children[1].observe(check.seconds)

    def _children_of(self, key: tuple[str, str, str, int]) -> _AttemptChildren:
        """The labelled series one kind of attempt adds to (looked up once, then cached:
        ``labels()`` validates and locks on every call)."""
        team, model, deployment, status = key
        tokens = self._tokens
        return (
            self._attempts.labels(model, deployment, _STATUS_CLASS.get(status, "other")),
            tokens.labels(team, model, deployment, "prompt"),
            tokens.labels(team, model, deployment, "completion"),
            tokens.labels(team, model, deployment, "cached"),
            self._ttft.labels(model, deployment),
        )

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def _scraped(self) -> Iterator[Metric]:
        cost = CounterMetricFamily(
            "llmplane_cost_usd",
            "Cost of upstream calls in USD, by team, model and deployment.",
            labels=["team", "model", "deployment"],
        )
        for labels, nanousd in list(self._cost_nanousd.items()):
            cost.add_metric(labels, nanousd / _NANO_PER_USD)
        yield cost
        state = self._read_state()
        yield GaugeMetricFamily(
            "llmplane_ledger_queue_depth",
            "Usage ledger rows waiting to be written.",
            value=state.ledger_queue_depth,
        )
        yield CounterMetricFamily(
            "llmplane_ledger_dropped_rows",
            "Usage ledger rows dropped because its queue was full.",
            value=state.ledger_dropped,
        )
        yield CounterMetricFamily(
            "llmplane_ledger_rejected_rows",
            "Usage ledger rows the store refused.",
            value=state.ledger_rejected,
        )
        yield GaugeMetricFamily(
            "llmplane_request_logs_queue_depth",
            "Stored request-log rows waiting to be written.",
            value=state.request_logs_queue_depth,
        )
        yield CounterMetricFamily(
            "llmplane_request_logs_dropped_rows",
            "Stored request-log rows dropped because their queue was full.",
            value=state.request_logs_dropped,
        )
        yield CounterMetricFamily(
            "llmplane_request_logs_rejected_rows",
            "Stored request-log rows that could not be built or that the store refused.",
            value=state.request_logs_rejected,
        )
        yield GaugeMetricFamily(
            "llmplane_spans_queue_depth",
            "Finished requests waiting for their span to be exported.",
            value=state.spans_queue_depth,
        )
        yield CounterMetricFamily(
            "llmplane_spans_dropped",
            "Requests not traced because the span queue was full.",
            value=state.spans_dropped,
        )
        yield CounterMetricFamily(
            "llmplane_spans_failed",
            "Spans the trace collector did not take (after the exporter's retries).",
            value=state.spans_failed,
        )
        names = ["model", "deployment"]
        in_flight = GaugeMetricFamily(
            "llmplane_deployment_in_flight", "Upstream calls in flight.", labels=names
        )
        cooling = GaugeMetricFamily(
            "llmplane_deployment_cooling_down",
            "1 while the deployment is in cooldown (its circuit open), else 0.",
            labels=names,
        )
        cooldowns = CounterMetricFamily(
            "llmplane_deployment_cooldowns",
            "Times the deployment was put in cooldown.",
            labels=names,
        )
        for deployment in state.deployments:
            key = [deployment.model, deployment.deployment]
            in_flight.add_metric(key, deployment.in_flight)
            cooling.add_metric(key, 1 if deployment.cooling_down else 0)
            cooldowns.add_metric(key, deployment.cooldowns)
        yield in_flight
        yield cooling
        yield cooldowns


class _ScrapeCollector:
    """Adapts :meth:`GatewayMetrics._scraped` to ``prometheus_client``'s collector API."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics._scraped()

    def describe(self) -> list[Metric]:
        return []  # no fixed names to check for duplicates: read at every scrape
