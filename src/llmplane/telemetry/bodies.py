"""A request's bodies as its team's policy lets them leave the gateway, for the stored
request logs and for spans alike.

``full`` bodies keep their text but never a platform key (``sk-lp-…``, also as a model may
echo it with spaces): a live credential must not rest in a table team admins read or in
a trace backend. ``redacted`` bodies go through the PII and secret redactor first (the
gateway's runs in a child process, built on first use). Each body is cut to the policy's
``max_body_bytes``. The work is done once per request, by whichever background thread
asks first (the request-log writer or the span exporter); the other reuses it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from llmplane.secret_patterns import PLATFORM_KEY_ECHOED
from llmplane.telemetry.content import REDACTED, bounded, map_strings

if TYPE_CHECKING:
    from llmplane.telemetry import RequestTrace

log = logging.getLogger(__name__)


def scrub_platform_keys(texts: list[str]) -> list[str]:
    """``texts`` with every platform key replaced by ``<API_KEY>``."""
    return [PLATFORM_KEY_ECHOED.sub("<API_KEY>", text) if "lp" in text else text for text in texts]


class Redacting(Protocol):
    """What redacts a body: all its strings in, the same strings redacted out, in order
    (:class:`llmplane.guardrails.pii.RedactorProcess`); ``close`` if it has one is called
    when the filter is closed."""

    def redact_many(self, texts: list[str]) -> list[str]:
        """``texts``, each redacted."""
        ...


# Builds the redactor, in a background thread, on the first redacted body.
RedactorFactory = Callable[[], Redacting]


@dataclass(frozen=True, slots=True)
class Bodies:
    """A request's bodies after its policy's filter: JSON values, ``response`` ``None``
    when there was no answer; ``truncated`` when something was cut."""

    request: Any
    response: Any
    truncated: bool


class BodyFilter:
    """Filters bodies by policy, once per request (thread-safe)."""

    def __init__(self, redactor_factory: RedactorFactory | None = None) -> None:
        self._redactor_factory = redactor_factory
        self._redactor: Redacting | None = None
        self._redactor_failed = False
        self._lock = threading.Lock()

    def bodies(self, trace: RequestTrace) -> Bodies | None:
        """The trace's filtered bodies; ``None`` when its policy keeps none, or keeps
        redacted ones and there is no redactor (no body rather than an unredacted one).
        Blocks while redacting: call it off the event loop. Raises what the redactor
        raises."""
        content = trace.content
        if content is None or not content.policy.wants_content:
            return None
        with self._lock:
            if content.filtered is not None:
                return content.filtered if isinstance(content.filtered, Bodies) else None
            change = self._change(content.policy.bodies)
            if change is None:
                content.filtered = False
                return None
            limit = content.policy.max_body_bytes
            request, cut_request = bounded(content.request, limit)
            response, cut_response = bounded(content.response(trace.operation), limit)
            filtered = Bodies(
                map_strings(request, change),
                map_strings(response, change) if response is not None else None,
                cut_request or cut_response or content.events_truncated,
            )
            content.filtered = filtered
            return filtered

    def _change(self, bodies: str) -> Callable[[list[str]], list[str]] | None:
        if bodies != REDACTED:
            return scrub_platform_keys
        redactor = self._redactor_or_none()
        if redactor is None:
            return None
        return lambda texts: scrub_platform_keys(redactor.redact_many(texts))

    def _redactor_or_none(self) -> Redacting | None:
        if self._redactor is None and not self._redactor_failed:
            try:
                if self._redactor_factory is None:
                    raise ImportError("no redactor configured")
                self._redactor = self._redactor_factory()
            except Exception as exc:  # noqa: BLE001 - redacted bodies are then kept by no one
                self._redactor_failed = True
                log.error(
                    "no PII redactor (%s: %s): request logs and spans of teams whose policy "
                    "is 'redacted' keep no bodies (pip install 'llmplane[pii]')",
                    type(exc).__name__,
                    exc,
                )
        return self._redactor

    def close(self) -> None:
        """Stop the redactor, if one was built."""
        close = getattr(self._redactor, "close", None)
        if close is not None:
            close()
