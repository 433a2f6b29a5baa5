"""Which deployment a call tries next after a failure, and how long it waits first.

An :class:`AttemptPlan` walks the requested model's deployments (best first, as
the router orders them), then each fallback model's, and wraps around when all
were tried. A call makes at most ``1 + retries`` attempts in all (the requested
model's ``retries``): fallbacks spend the same retries, they do not multiply
them. A fresh deployment is tried at once; trying one again waits an
exponential backoff with full jitter, or the upstream's ``Retry-After`` when it
sent one.

Retryable: upstream 5xx, 429, timeouts, unreachable or broken connections (also
an upstream that refuses the platform's credentials: another deployment may
hold valid ones). Not retryable: a client-side refusal by the upstream (400,
404, 422…), except that a prompt too long for the model goes to its
``context_window_fallbacks`` and a content-policy refusal to its
``content_policy_fallbacks``. Budget and rate-limit refusals of the platform
itself are never retried.
"""

from __future__ import annotations

import random

from llmplane.accounting.keys import Principal
from llmplane.config.platform import ModelConfig
from llmplane.errors import LLMPlaneError, RateLimitError, UpstreamError, UpstreamRejectedError
from llmplane.gateway.router import Deployment, ModelRouter

_CONTEXT_MARKERS = ("context length", "context window", "maximum context", "too many tokens")
_CONTENT_CODES = ("content_filter", "content_policy_violation")
_CONTENT_MARKERS = ("content policy", "content management policy", "content filter")


def retryable(exc: LLMPlaneError) -> bool:
    """Whether another attempt (here or elsewhere) may succeed where this one failed."""
    if isinstance(exc, UpstreamRejectedError):
        return False
    if isinstance(exc, UpstreamError):
        return True
    return isinstance(exc, RateLimitError) and exc.code == "upstream_rate_limited"


def fallback_kind(exc: LLMPlaneError) -> str | None:
    """``context_window`` or ``content_policy`` for upstream refusals that a different model
    may not make, else ``None``."""
    if not isinstance(exc, UpstreamRejectedError):
        return None
    message = exc.message.lower()
    if exc.code == "context_length_exceeded" or any(m in message for m in _CONTEXT_MARKERS):
        return "context_window"
    if exc.code in _CONTENT_CODES or any(m in message for m in _CONTENT_MARKERS):
        return "content_policy"
    return None


def retry_after_s(exc: LLMPlaneError) -> float | None:
    """The upstream's ``Retry-After`` in seconds (numeric form), if it sent one."""
    value = exc.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds <= 3600 else None


class AttemptPlan:
    """The deployments one call tries, in order, and the waits between them.

    Models are expanded into their candidates only when the plan reaches them, so a call
    that succeeds at once (most do) asks the router about its own model only.
    """

    def __init__(
        self, router: ModelRouter, principal: Principal, config: ModelConfig, prompt_tokens: int
    ) -> None:
        self._router = router
        self._principal = principal
        self._config = config
        self.attempts_left = 1 + config.retries
        chain = [config.name, *self._allowed(config.fallbacks)]
        if config.context_window is not None and prompt_tokens > config.context_window:
            chain = self._allowed(config.context_window_fallbacks) or chain  # known too long
        self._chain = chain
        self._next_model = 0  # the first model of the chain not expanded yet
        self._queue: list[Deployment] = []
        self._tried: set[str] = set()
        self._repeats = 0

    def _allowed(self, models: list[str]) -> list[str]:
        # A fallback must be a model the caller may use: a team held to cheap models is not
        # moved to an expensive one behind its back.
        return [m for m in models if self._principal.may_use(m)]

    def first(self) -> Deployment:
        """The deployment of the first attempt."""
        self.attempts_left -= 1
        return self._pop()

    def next(self, failure: LLMPlaneError) -> tuple[Deployment, float] | None:
        """After ``failure``: the next deployment and how long to wait before calling it, or
        ``None`` when the call should give up (not retryable, or out of attempts)."""
        if self.attempts_left <= 0:
            return None
        kind = fallback_kind(failure)
        if kind is not None:
            targets = (
                self._config.context_window_fallbacks
                if kind == "context_window"
                else self._config.content_policy_fallbacks
            )
            chain = [m for m in self._allowed(targets) if m not in self._chain]
            if not chain:
                return None
            self._chain, self._next_model, self._queue = chain, 0, []
        elif not retryable(failure):
            return None
        self.attempts_left -= 1
        deployment = self._pop()
        wait = 0.0
        if deployment.id in self._tried:
            wait = retry_after_s(failure) or self._jittered()
            self._repeats += 1
        return deployment, wait

    def _pop(self) -> Deployment:
        if not self._queue:
            if self._next_model < len(self._chain):
                self._queue = self._router.candidates(self._chain[self._next_model])
                self._next_model += 1
            else:  # a new round over the whole chain: those not tried yet first
                self._queue = [d for m in self._chain for d in self._router.candidates(m)]
                self._queue.sort(key=lambda d: d.id in self._tried)
        deployment = self._queue.pop(0)
        self._tried.add(deployment.id)
        return deployment

    def _jittered(self) -> float:
        backoff = self._config.backoff
        ceiling = min(backoff.max_s, backoff.base_s * 2**self._repeats)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not secrecy
