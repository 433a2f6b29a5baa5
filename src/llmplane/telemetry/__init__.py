"""What the gateway reports about each request, for metrics, traces and log lines.

Every request to the gateway gets a :class:`RequestTrace` (when any observer is
configured; otherwise none is made and reporting costs nothing). The routes fill
it in as the request goes: the operation, model and caller once a model call
starts, and the usage record of every upstream attempt (retries and fallbacks
included) as it is settled. When the request ends — when its answer is sent, or
for a stream when the stream ends — the finished trace goes to each
:class:`Observer` (Prometheus metrics, OpenTelemetry spans, JSON log lines).

Observers run on the event loop at the end of a request: they must be cheap
(record and return; exporting happens elsewhere, batched) and must not raise —
an observer that does is logged and skipped, never the client's problem. A trace
carries identities (team, service and key ids) and numbers, never a key or a
provider secret; prompt and completion content only in ``content``, and only when the
team's request-log policy keeps it (:mod:`llmplane.telemetry.content`): an observer that
reports content must honour ``content.policy`` (``metadata``: none; ``redacted``: only
through a redactor; ``full``: as is).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from llmplane.errors import LLMPlaneError

if TYPE_CHECKING:
    from llmplane.accounting.keys import Principal
    from llmplane.accounting.ledger import UsageRecord
    from llmplane.telemetry.content import RequestContent

log = logging.getLogger("llmplane.telemetry")


@dataclass(frozen=True, slots=True)
class GuardrailCheck:
    """One guardrail rule's check of one request stage, as reported: which rule of which
    policy, what came of it (``pass``, ``flagged``, ``error``, ``timeout``,
    ``unavailable``), the action taken (``none`` when it passed) and the finding types
    (names, never the matched text). ``seconds`` is the detector's time."""

    policy: str
    stage: str  # input, output
    rule: str  # input[0], output[1]
    detector: str
    outcome: str
    action: str
    seconds: float
    types: tuple[str, ...] = ()
    score: float = 0.0

    def to_json(self) -> dict[str, object]:
        """The check as a small JSON object (for the ledger and the request log)."""
        data: dict[str, object] = {
            "rule": self.rule,
            "detector": self.detector,
            "outcome": self.outcome,
            "action": self.action,
        }
        if self.types:
            data["types"] = list(self.types)
        if self.score:
            data["score"] = round(self.score, 3)
        return data


@dataclass(slots=True)
class RequestTrace:
    """One gateway request, from its arrival to its end."""

    request_id: str
    method: str
    path: str
    started_at: float  # time.time() at arrival, for timestamps
    started: float  # time.perf_counter() at arrival, for durations
    traceparent: str | None = None  # the caller's W3C trace context, if it sent one
    operation: str | None = None  # the Endpoint's value once a model call starts
    model: str | None = None  # the model the client asked for
    stream: bool = False
    principal: Principal | None = None
    attempts: list[UsageRecord] = field(default_factory=list)
    status: int = 0
    error_type: str | None = None
    error_code: str | None = None
    duration_s: float = 0.0
    finished: bool = False
    # The request's content by reference, when its team's policy stores request logs
    # (metadata, redacted or full); None for the default policy, none.
    content: RequestContent | None = None
    prompt: str | None = None  # the registered prompt rendered: name@version

    # The guardrail checks of the request (by reference: a stream adds its output checks
    # as it goes), when a policy applies to its caller.
    guardrails: list[GuardrailCheck] | None = None
    guardrail_policy: str | None = None

    @property
    def is_probe(self) -> bool:
        """A liveness or readiness probe (``/health/…``): polled every few seconds, it would
        drown the request log and the traces, so those skip it (metrics count it)."""
        return self.path.startswith("/health/")

    @property
    def served_by(self) -> UsageRecord | None:
        """The attempt that answered (the last one), if any was made."""
        return self.attempts[-1] if self.attempts else None


class Observer(Protocol):
    """Something that reports finished requests (metrics, spans, log lines)."""

    def request_finished(self, trace: RequestTrace) -> None:
        """Record one finished request; cheap, and never raises on purpose."""
        ...


class Telemetry:
    """The observers of one gateway process."""

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self._observers = tuple(observers)

    @property
    def enabled(self) -> bool:
        """Whether any observer wants traces."""
        return bool(self._observers)

    def start(
        self, request_id: str, method: str, path: str, traceparent: str | None
    ) -> RequestTrace | None:
        """A new trace for an arriving request, or ``None`` when nothing observes."""
        if not self._observers:
            return None
        return RequestTrace(request_id, method, path, time.time(), time.perf_counter(), traceparent)

    def finish(
        self,
        trace: RequestTrace,
        status: int,
        error: LLMPlaneError | None = None,
        error_code: str | None = None,
    ) -> None:
        """End ``trace`` with HTTP ``status`` (and the error, if it failed) and report it;
        only the first call counts."""
        if trace.finished:
            return
        trace.finished = True
        trace.status = status
        trace.duration_s = time.perf_counter() - trace.started
        if error is not None:
            trace.error_type, trace.error_code = error.error_type, error.code
        elif error_code is not None:
            trace.error_code = error_code
        for observer in self._observers:
            try:
                observer.request_finished(trace)
            except Exception:
                log.exception("telemetry observer %s failed", type(observer).__name__)

    def close(self) -> None:
        """Flush and stop the observers that export in the background (those with a
        ``close`` method); blocks, so the gateway calls it off the event loop."""
        for observer in self._observers:
            close = getattr(observer, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.exception("telemetry observer %s failed to close", type(observer).__name__)
