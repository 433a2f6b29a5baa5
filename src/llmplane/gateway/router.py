"""Model names to deployments: which upstream serves a call, and which are cooled down.

A model is a group of deployments. For each call, :meth:`ModelRouter.candidates`
orders the model's healthy deployments by its strategy — ``weighted`` (random,
by weight), ``least_inflight``, ``least_busy`` (the server's own queue and
KV-cache usage from vLLM's ``/metrics``, then ours), ``lowest_latency`` (EWMA
of time to first token) or ``lowest_cost`` — and the caller tries them in that order (see
:mod:`llmplane.gateway.calls` for retries and fallbacks).

Circuit breaking: a deployment with ``cooldown.failures`` retryable failures
within ``cooldown.window_s`` is skipped for ``cooldown.cooldown_s`` (longer if
the upstream asked with ``Retry-After``). When that time is up it is half
open: one call at a time may probe it; a success closes the circuit, a failure
cools it down again. When every deployment of a model is cooling down, the one
whose cooldown ends first is offered anyway rather than refusing outright.

Active health checks (``health_check`` on a deployment, for self-hosted servers)
take a deployment out of rotation while its ``GET /health`` (or another path)
fails, and put it back when it passes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field

from llmplane.accounting.pricing import Rates, resolve_rates
from llmplane.config.platform import (
    DeploymentConfig,
    HealthCheck,
    LoadMetrics,
    ModelConfig,
    PlatformConfig,
)
from llmplane.errors import ConfigError, NotFoundError, UpstreamUnavailableError
from llmplane.gateway.providers.anthropic import AnthropicProvider
from llmplane.gateway.providers.base import Provider
from llmplane.gateway.providers.bridges import ApiAdapter
from llmplane.gateway.providers.mock import MockProvider
from llmplane.gateway.providers.openai_compat import OpenAICompatibleProvider
from llmplane.gateway.providers.via_litellm import LiteLLMProvider, load_litellm
from llmplane.gateway.token_counters import TokenCounter, counter_for
from llmplane.gateway.token_counters import warm as warm_encodings

log = logging.getLogger(__name__)

_EWMA_WEIGHT = 0.2  # of the newest latency sample


@dataclass(slots=True)
class Health:
    """What the router knows about one deployment, in this process."""

    in_flight: int = 0
    ttft_ewma_s: float | None = None  # streams: time to first token
    latency_ewma_s: float | None = None  # non-streaming calls: time to the whole answer
    failures: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0
    probing: bool = False
    cooldowns: int = 0  # how many times it was cooled down (for metrics and tests)
    checked_down: bool = False  # failed its last active health check
    next_check: float = 0.0
    waiting: float = 0.0  # requests queued on the server (vLLM's gauge), when read
    kv_cache: float = 0.0  # its KV-cache usage, 0..1
    next_load: float = 0.0


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream of a model, ready to call."""

    id: str
    model: str
    provider_name: str
    upstream_model: str
    provider: Provider
    rates: Rates | None
    max_output_tokens: int
    weight: float
    health: Health = field(compare=False)
    counter: TokenCounter = field(compare=False)  # its prompts, for budgets and limits
    health_check: HealthCheck | None = None
    load_metrics: LoadMetrics | None = None

    def cost_rank(self) -> float:
        """Price of a typical call (1,000 tokens in, 1,000 out), for ``lowest_cost``."""
        return self.rates.cost_nanousd(1_000, 1_000, 0) if self.rates is not None else 0.0


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + _EWMA_WEIGHT * (sample - previous)


def _latency_rank(deployment: Deployment) -> float:
    health = deployment.health
    if health.ttft_ewma_s is not None:
        return health.ttft_ewma_s
    return health.latency_ewma_s or 0.0


def _build(model: ModelConfig, index: int, config: DeploymentConfig) -> Deployment:
    deployment_id = config.name or f"{model.name}[{index}]"
    upstream_model = config.model or model.name
    try:
        counter = counter_for(config.provider, upstream_model, config.tokenizer or model.tokenizer)
    except ConfigError as exc:
        raise ConfigError(exc.reason, key_path=f"{deployment_id}.tokenizer") from None
    inner: Provider
    if config.provider == "mock":
        inner = MockProvider()
    elif config.provider == "anthropic":
        inner = AnthropicProvider(deployment_id, config, model.timeouts)
    elif config.provider == "litellm":
        inner = LiteLLMProvider(deployment_id, config, model.timeouts)
    else:
        inner = OpenAICompatibleProvider(deployment_id, config, model.timeouts)
    provider = ApiAdapter(
        inner,
        deployment_id,
        native_responses=config.serves_responses_natively,
        native_messages=config.provider == "anthropic",
    )
    return Deployment(
        id=deployment_id,
        model=model.name,
        provider_name=config.provider,
        upstream_model=upstream_model,
        provider=provider,
        rates=resolve_rates(model, config),
        max_output_tokens=model.max_output_tokens,
        weight=config.weight,
        health=Health(),
        health_check=config.health_check,
        load_metrics=config.load_metrics,
        counter=counter,
    )


def _weighted_order(deployments: list[Deployment]) -> list[Deployment]:
    """A random order in which heavier deployments tend to come first (weighted sampling
    without replacement)."""
    if len(deployments) == 1:
        return deployments
    keyed = [(random.random() ** (1.0 / d.weight), d) for d in deployments]  # noqa: S311
    return [d for _, d in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


class ModelRouter:
    """Resolves a requested model name to the deployments that may serve this call."""

    def __init__(self, platform: PlatformConfig) -> None:
        self._models = {model.name: model for model in platform.models}
        self._deployments = {
            model.name: [_build(model, i, d) for i, d in enumerate(model.deployments)]
            for model in platform.models
        }

    @property
    def model_names(self) -> list[str]:
        """Every model clients can ask for, in config order."""
        return list(self._deployments)

    def require(self, model: str) -> None:
        """Raise :class:`NotFoundError` unless ``model`` is configured."""
        if model not in self._deployments:
            raise NotFoundError(
                f"The model '{model}' does not exist; GET /v1/models lists the models you can use.",
                param="model",
            )

    def config(self, model: str) -> ModelConfig:
        """The routing settings of ``model`` (configured)."""
        self.require(model)
        return self._models[model]

    def deployments(self, model: str) -> list[Deployment]:
        """Every deployment of ``model``, in config order."""
        self.require(model)
        return self._deployments[model]

    def candidates(self, model: str) -> list[Deployment]:
        """The deployments to try for one call of ``model``, best first: healthy ones in the
        strategy's order, else the one whose cooldown ends first."""
        deployments = self.deployments(model)
        now = time.monotonic()
        healthy = [d for d in deployments if self._available(d, now)]
        if not healthy:
            # Prefer one that passes its health check, then the first out of cooldown.
            return [
                min(deployments, key=lambda d: (d.health.checked_down, d.health.cooldown_until))
            ]
        if len(healthy) == 1:
            return healthy
        strategy = self._models[model].strategy
        if strategy == "least_busy":
            # The server's own queue first (vLLM's gauges where read), then ours.
            random.shuffle(healthy)
            return sorted(
                healthy,
                key=lambda d: (d.health.waiting, d.health.kv_cache, d.health.in_flight),
            )
        if strategy == "least_inflight":
            random.shuffle(healthy)  # ties go to a random one, not always the first
            return sorted(healthy, key=lambda d: d.health.in_flight)
        if strategy == "lowest_latency":
            # Time to first token where streams measured it; else the time to a whole
            # answer (an upper bound of it). Unmeasured deployments go first, so that each
            # gets measured.
            return sorted(healthy, key=_latency_rank)
        if strategy == "lowest_cost":
            return sorted(healthy, key=lambda d: (d.cost_rank(), d.health.in_flight))
        return _weighted_order(healthy)

    @staticmethod
    def _available(deployment: Deployment, now: float) -> bool:
        health = deployment.health
        if health.checked_down:
            return False
        if health.cooldown_until <= 0.0:
            return True
        if now < health.cooldown_until:
            return False
        return not health.probing  # half open: one probe at a time

    def started(self, deployment: Deployment) -> bool:
        """A call to ``deployment`` begins; ``True`` when it is the half-open circuit's probe
        (to be passed back to :meth:`ended`)."""
        health = deployment.health
        health.in_flight += 1
        if health.cooldown_until and time.monotonic() >= health.cooldown_until:
            health.probing = True
            return True
        return False

    def succeeded(
        self, deployment: Deployment, ttft_s: float | None, latency_s: float | None = None
    ) -> None:
        """A call to ``deployment`` ended well (closing its circuit if it was cooled down)."""
        health = deployment.health
        health.in_flight -= 1
        if ttft_s is not None:
            health.ttft_ewma_s = _ewma(health.ttft_ewma_s, ttft_s)
        if latency_s is not None:
            health.latency_ewma_s = _ewma(health.latency_ewma_s, latency_s)
        if health.cooldown_until:
            health.cooldown_until, health.probing = 0.0, False
            health.failures.clear()

    def failed(self, deployment: Deployment, retry_after_s: float | None) -> None:
        """A call to ``deployment`` failed in a way that says something about the deployment
        (5xx, 429, timeout, unreachable): count it, and cool the deployment down if it
        failed too often or asked for a pause."""
        health = deployment.health
        health.in_flight -= 1
        policy = self._models[deployment.model].cooldown
        now = time.monotonic()
        health.failures.append(now)
        while health.failures and health.failures[0] <= now - policy.window_s:
            health.failures.popleft()
        if health.probing or len(health.failures) >= policy.failures:
            pause = max(policy.cooldown_s, retry_after_s or 0.0)  # broken: open the circuit
        elif retry_after_s:
            pause = retry_after_s  # not broken, but asked for a pause
        else:
            return
        health.cooldown_until = now + pause
        health.probing = False
        health.cooldowns += 1

    def finished(self, deployment: Deployment, probe: bool = False) -> None:
        """A call ended in a way that says nothing about the deployment (client error,
        client gone); if it was the probe, another call may probe."""
        health = deployment.health
        health.in_flight -= 1
        if probe:
            health.probing = False

    def ended(
        self,
        deployment: Deployment,
        status: int,
        ttft_s: float | None = None,
        retry_after_s: float | None = None,
        *,
        latency_s: float | None = None,
        probe: bool = False,
    ) -> None:
        """A call to ``deployment`` ended with HTTP ``status``: a success, a failure of the
        deployment (429, 5xx, timeouts: counted towards its cooldown) or neither (the
        client's own error, or the client left). ``ttft_s`` is a stream's time to first
        token, ``latency_s`` a non-streaming call's time to its answer."""
        if status < 400:
            self.succeeded(deployment, ttft_s, latency_s)
        elif status == 429 or (500 <= status < 600):
            self.failed(deployment, retry_after_s)
        else:
            self.finished(deployment, probe)

    async def run_health_checks(self) -> float:
        """Run every health check and load reading that is due; return the seconds until
        the next one is (for the background loop)."""
        now = time.monotonic()
        every = [d for ds in self._deployments.values() for d in ds]
        checked = [d for d in every if d.health_check]
        loaded = [d for d in every if d.load_metrics]
        due = [d for d in checked if d.health.next_check <= now]
        reads = [self._read_load(d) for d in loaded if d.health.next_load <= now]
        outcomes = await asyncio.gather(*(self._check(d) for d in due), *reads)
        for deployment, ok in zip(due, outcomes[: len(due)], strict=True):
            if deployment.health.checked_down == ok:
                log.warning(
                    "deployment %s %s its health check",
                    deployment.id,
                    "passes" if ok else "fails",
                )
            deployment.health.checked_down = not ok
        upcoming = [d.health.next_check for d in checked] + [d.health.next_load for d in loaded]
        if not upcoming:
            return 3600.0
        return max(min(upcoming) - time.monotonic(), 0.05)

    @staticmethod
    async def _read_load(deployment: Deployment) -> None:
        metrics = deployment.load_metrics
        assert metrics is not None
        deployment.health.next_load = time.monotonic() + metrics.interval_s
        load = await deployment.provider.load(metrics.path, metrics.timeout_s)
        if load is not None:
            deployment.health.waiting, deployment.health.kv_cache = load

    @staticmethod
    async def _check(deployment: Deployment) -> bool:
        check = deployment.health_check
        assert check is not None
        deployment.health.next_check = time.monotonic() + check.interval_s
        return await deployment.provider.healthy(check.path, check.timeout_s)

    async def warm(self, *, counting: bool = False) -> None:
        """Load in the background at start-up what is otherwise loaded on first use, so that
        the first call does not wait for it: LiteLLM (seconds), where a deployment uses it,
        and the deployments' token encodings (~80 ms, tens of MiB) when ``counting`` (some
        budget will have prompts counted)."""
        if counting:
            await asyncio.to_thread(warm_encodings)
        if any(d.provider_name == "litellm" for ds in self._deployments.values() for d in ds):
            try:
                await load_litellm()
            except UpstreamUnavailableError as exc:
                log.warning("%s", exc.message)

    async def aclose(self) -> None:
        """Close every deployment's connections."""
        for deployments in self._deployments.values():
            for deployment in deployments:
                await deployment.provider.aclose()
