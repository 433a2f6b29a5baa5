"""One JSON line per finished request, on the ``llmplane.requests`` logger at INFO.

The line is built from the :class:`~llmplane.telemetry.RequestTrace` alone, so it holds
what a trace holds: ids (request, trace, team, service, key, end user), the route, the
model asked for and the deployment that served it, status, timings, tokens and cost.
Never a key, a provider secret or prompt/completion content: the trace carries none.

Fields (``null`` when unknown; every line has every field, so log pipelines see one
schema): ``ts`` (end of the request, ISO 8601 UTC), ``request_id``, ``trace_id`` (from the
caller's ``traceparent``), ``method``, ``path``, ``operation``, ``model``,
``served_model``, ``deployment``, ``provider``, ``status``, ``error_type``,
``error_code``, ``stream``, ``duration_ms``, ``ttft_ms``, ``attempts``, ``failed``
(``[{"deployment", "status", "error_code"}]`` of the attempts that failed),
``prompt_tokens``, ``completion_tokens``, ``cached_tokens``, ``cost_usd`` (over all
attempts), ``team_id``, ``service_id``, ``key_id``, ``user``, ``guardrails`` (when a
guardrail policy applied: ``{"policy", "checks": [{"rule", "detector", "outcome",
"action", "types"}]}``, finding types only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from llmplane.telemetry import RequestTrace

REQUEST_LOGGER = "llmplane.requests"

_HEX = frozenset("0123456789abcdef")
_NANO = 1e-9


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``), or
    ``None`` when there is none or it is malformed (clients send what they like)."""
    if traceparent is None or len(traceparent) < 55 or traceparent[2] != "-":
        return None
    trace_id = traceparent[3:35]
    if traceparent[35] != "-" or not _HEX.issuperset(trace_id) or trace_id == "0" * 32:
        return None
    return trace_id


def request_line(trace: RequestTrace) -> bytes:
    """The JSON log line (without newline) of one finished request."""
    attempts = trace.attempts
    served = attempts[-1] if attempts else None
    principal = trace.principal
    prompt = completion = cached = cost = 0
    failed: list[dict[str, Any]] | None = None
    for attempt in attempts:
        prompt += attempt.prompt_tokens
        completion += attempt.completion_tokens
        cached += attempt.cached_tokens
        cost += attempt.cost_nanousd
        if attempt.status >= 400:
            if failed is None:
                failed = []
            failed.append(
                {
                    "deployment": attempt.deployment,
                    "status": attempt.status,
                    "error_code": attempt.error_code,
                }
            )
    end = trace.started_at + trace.duration_s
    return orjson.dumps(
        {
            "ts": datetime.fromtimestamp(end, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "request_id": trace.request_id,
            "trace_id": trace_id_of(trace.traceparent),
            "method": trace.method,
            "path": trace.path,
            "operation": trace.operation,
            "model": trace.model,
            "served_model": served.model if served else None,
            "deployment": served.deployment if served else None,
            "provider": served.provider if served else None,
            "status": trace.status,
            "error_type": trace.error_type,
            "error_code": trace.error_code,
            "stream": trace.stream,
            "duration_ms": round(trace.duration_s * 1000, 3),
            "ttft_ms": round(served.ttft_ms, 3) if served and served.ttft_ms is not None else None,
            "attempts": len(attempts),
            "failed": failed,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": cached,
            "cost_usd": cost * _NANO,
            "team_id": principal.team_id if principal else None,
            "service_id": principal.service_id if principal else None,
            "key_id": principal.key_id if principal else None,
            # The end user the client named (an identifier it chose to send, not content),
            # else the user the key belongs to.
            "user": served.user_id if served else (principal.user_id if principal else None),
            "guardrails": (
                {
                    "policy": trace.guardrail_policy,
                    "checks": [check.to_json() for check in trace.guardrails],
                }
                if trace.guardrails
                else None
            ),
        }
    )


_writer: Callable[[bytes], None] | None = None


def use_writer(submit: Callable[[bytes], None] | None) -> None:
    """Send request lines straight to ``submit`` (the log writer's queue), skipping the
    logging machinery; ``None`` goes back to :data:`REQUEST_LOGGER`."""
    global _writer
    _writer = submit


class RequestLogObserver:
    """Writes each finished request as one JSON line to :data:`REQUEST_LOGGER` at INFO (or
    straight to the log writer, see :func:`use_writer`)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(REQUEST_LOGGER)

    def request_finished(self, trace: RequestTrace) -> None:
        """Log ``trace`` (skipped cheaply when INFO is off for the logger, and for probes)."""
        if trace.is_probe:
            return
        if _writer is not None:
            _writer(request_line(trace))
            return
        log = self._log
        if log.isEnabledFor(logging.INFO):
            # makeRecord + handle, not info(): the caller's frame (findCaller) says nothing
            # here and costs microseconds per request.
            record = log.makeRecord(
                log.name, logging.INFO, __file__, 0, request_line(trace).decode(), (), None
            )
            log.handle(record)
