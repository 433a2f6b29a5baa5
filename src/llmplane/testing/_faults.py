"""Fault rules of the upstream simulator: what to break, for which requests, how often.

A rule is given as JSON (``{"kind": "status", "status": 503, "count": 2}``) and
validated once into a :class:`Fault`. Queued rules live in a :class:`FaultQueue`
and are consumed in order, one per matching request; ``count`` is how many
requests a rule hits (``-1``: every request until cleared), ``path`` limits it
to one path and ``model`` to requests for one model (without them, a rule
matches every request but those of the control API), and ``probability``
(0–1, default 1) makes a matching request hit only that often (a miss uses up
nothing: ``{"probability": 0.3, "count": -1}`` fails 30 % of requests). A rule
sent in a request's ``x-sim-fault`` header applies to that request only and
goes before the queue, which it leaves untouched. The kinds:

- ``status``: answer with an OpenAI-shaped error of that ``status`` (optional
  ``retry_after`` seconds and ``retry_after_ms`` headers, optional ``message``);
- ``drop``: close the connection without any response;
- ``break_stream``: send ``after_chunks`` events of a stream (half the body of
  a JSON reply), then cut the connection mid-transfer;
- ``no_usage``: answer normally but without ``usage``, even when a stream asked;
- ``sloppy_stream``: a stream without ``usage`` and without ``[DONE]``, each event
  sent in two writes split in the middle of its bytes (mid-character for
  multibyte text);
- ``stream_error``: send ``after_chunks`` events of a stream, then an error event
  (OpenAI: ``data: {"error": ...}``; Anthropic: ``event: error``, typed after
  ``status``, default 529 ``overloaded_error``) and end the stream there;
- ``delay``: wait ``ms`` more before answering;
- ``echo`` (not a failure: a scripted answer): a chat reply whose text is the last user
  message exactly as sent (the mock's own reply tokenises and shortens it), streamed in
  pieces of ``chunk_chars`` characters (default 5), so that tests can see what the
  upstream received come back, split anywhere.

On Anthropic's ``/v1/messages`` errors have Anthropic's shape (a 529 is an
``overloaded_error``), and ``no_usage`` does not apply (the real API always
reports usage).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

__all__ = ["Fault", "FaultKind", "FaultQueue", "FaultSpecError"]

FaultKind = Literal[
    "status", "drop", "break_stream", "no_usage", "sloppy_stream", "stream_error", "delay", "echo"
]

_COMMON_FIELDS = frozenset({"kind", "count", "path", "model", "probability"})
_KIND_FIELDS: dict[str, frozenset[str]] = {
    "status": frozenset({"status", "retry_after", "retry_after_ms", "message"}),
    "drop": frozenset(),
    "break_stream": frozenset({"after_chunks"}),
    "no_usage": frozenset(),
    "sloppy_stream": frozenset(),
    "stream_error": frozenset({"after_chunks", "status", "message"}),
    "delay": frozenset({"ms"}),
    "echo": frozenset({"chunk_chars"}),
}


class FaultSpecError(ValueError):
    """A fault rule that cannot be understood; the message says which field and why."""


def _number(spec: dict[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise FaultSpecError(f"fault field {key!r} must be a number >= {minimum:g}")
    return float(value)


def _integer(spec: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FaultSpecError(f"fault field {key!r} must be an integer >= {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class Fault:
    """One validated fault rule (see the module docstring for the kinds)."""

    kind: FaultKind
    count: int = 1
    path: str | None = None
    status: int = 503
    retry_after: float | None = None
    retry_after_ms: int | None = None
    message: str | None = None
    after_chunks: int = 0
    ms: float = 0.0
    chunk_chars: int = 5
    model: str | None = None
    probability: float = 1.0

    @classmethod
    def parse(cls, spec: Any) -> Fault:
        """Validate a JSON rule; unknown kinds and fields are refused, not ignored."""
        if isinstance(spec, Fault):
            return spec
        if not isinstance(spec, dict):
            raise FaultSpecError("a fault must be a JSON object with a 'kind'")
        kind = spec.get("kind")
        if not isinstance(kind, str) or kind not in _KIND_FIELDS:
            raise FaultSpecError(f"fault 'kind' must be one of {', '.join(_KIND_FIELDS)}")
        unknown = set(spec) - _COMMON_FIELDS - _KIND_FIELDS[kind]
        if unknown:
            raise FaultSpecError(f"unknown field(s) for a {kind!r} fault: {sorted(unknown)}")
        count = _integer(spec, "count", 1, minimum=-1)
        if count == 0:
            raise FaultSpecError("fault field 'count' must be -1 (forever) or >= 1")
        path = spec.get("path")
        if path is not None and not isinstance(path, str):
            raise FaultSpecError("fault field 'path' must be a string")
        model = spec.get("model")
        if model is not None and not isinstance(model, str):
            raise FaultSpecError("fault field 'model' must be a string")
        probability = _number(spec, "probability", 1.0, minimum=0)
        if probability > 1:
            raise FaultSpecError("fault field 'probability' must be between 0 and 1")
        message = spec.get("message")
        if message is not None and not isinstance(message, str):
            raise FaultSpecError("fault field 'message' must be a string")
        status = _integer(spec, "status", 529 if kind == "stream_error" else 503, minimum=400)
        if status > 599:
            raise FaultSpecError("fault field 'status' must be an HTTP error status (400-599)")
        retry_after = spec.get("retry_after")
        retry_after_ms = spec.get("retry_after_ms")
        if kind == "delay" and "ms" not in spec:
            raise FaultSpecError("a 'delay' fault needs 'ms'")
        return cls(
            kind=cast(FaultKind, kind),
            count=count,
            path=path,
            status=status,
            retry_after=None if retry_after is None else _number(spec, "retry_after", 0, minimum=0),
            retry_after_ms=(
                None if retry_after_ms is None else _integer(spec, "retry_after_ms", 0, minimum=0)
            ),
            message=message,
            after_chunks=_integer(spec, "after_chunks", 0, minimum=0),
            ms=_number(spec, "ms", 0, minimum=0),
            chunk_chars=_integer(spec, "chunk_chars", 5, minimum=1),
            model=model,
            probability=probability,
        )

    def matches(self, path: str, model: str | None = None) -> bool:
        """Whether this rule applies to a request for ``path`` (and ``model``); a rule with a
        ``probability`` below 1 applies that often."""
        if self.path is not None and self.path != path:
            return False
        if self.model is not None and self.model != model:
            return False
        return self.probability >= 1 or random.random() < self.probability  # noqa: S311

    def to_json(self) -> dict[str, Any]:
        """The rule as JSON, for the control API."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(slots=True)
class _QueuedFault:
    fault: Fault
    remaining: int


class FaultQueue:
    """Queued rules, consumed in order; safe to fill from a thread other than the server's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_QueuedFault] = []

    def add(self, faults: Iterable[Fault]) -> None:
        """Append rules after those already queued."""
        with self._lock:
            self._queued.extend(_QueuedFault(fault, fault.count) for fault in faults)

    def take(self, path: str, model: str | None = None) -> Fault | None:
        """The first rule matching ``path`` and ``model``, using up one of its ``count``."""
        if not self._queued:  # the usual case: no lock on the hot path
            return None
        with self._lock:
            for index, queued in enumerate(self._queued):
                if queued.fault.matches(path, model):
                    if queued.remaining > 0:
                        queued.remaining -= 1
                        if queued.remaining == 0:
                            del self._queued[index]
                    return queued.fault
        return None

    def clear(self) -> None:
        """Drop every queued rule."""
        with self._lock:
            self._queued.clear()

    def pending(self) -> list[dict[str, Any]]:
        """The queued rules with what is left of their ``count``."""
        with self._lock:
            return [{**q.fault.to_json(), "count": q.remaining} for q in self._queued]
