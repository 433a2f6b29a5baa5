"""The stored request logs' writer: one ``request_logs`` row per request whose team's policy
asks for one, built and written in batches by one background thread.

It is an :class:`~llmplane.telemetry.Observer`: at the end of a request the event loop
only appends the finished trace to a deque (nothing at all when the trace carries no
:class:`~llmplane.telemetry.content.RequestContent`, i.e. the policy is ``none``). Every
``interval_s`` the thread takes what is there and does the work that costs: extracts
the request parameters, parses the reply or assembles the stream, cuts long bodies,
redacts (``redacted``: through the redactor the gateway hands in, built on first use;
the gateway's runs in a child process) and inserts the batch. When the store is
unreachable the batch is retried; beyond ``limit`` waiting requests new ones are
dropped and counted (``dropped``), never waited for. A row that cannot be built or
that the store refuses is counted (``rejected``) and skipped.

No body keeps a platform key (``sk-lp-…``, also as a model may echo it with spaces), not
even a ``full`` one: a live credential at rest in a table that team admins read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from llmplane.secret_patterns import PLATFORM_KEY_ECHOED
from llmplane.store.bulk import BulkInsert
from llmplane.store.tables import request_logs
from llmplane.telemetry.content import REDACTED, bounded, map_strings, request_params

if TYPE_CHECKING:
    from llmplane.telemetry import RequestTrace

log = logging.getLogger(__name__)


class Redacting(Protocol):
    """What redacts a body: all its strings in, the same strings redacted out, in order
    (:class:`llmplane.guardrails.pii.RedactorProcess`); ``close`` if it has one is called
    when the writer stops."""

    def redact_many(self, texts: list[str]) -> list[str]:
        """``texts``, each redacted."""
        ...


# Builds the redactor, in the writer thread, on the first redacted row.
RedactorFactory = Callable[[], Redacting]

_COLUMNS = (
    "request_id",
    "created_at",
    "expires_at",
    "policy",
    "team_id",
    "service_id",
    "key_id",
    "user_id",
    "operation",
    "model",
    "served_model",
    "deployment",
    "provider",
    "status",
    "error_type",
    "error_code",
    "stream",
    "attempts",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanousd",
    "duration_ms",
    "ttft_ms",
    "params",
    "request_body",
    "response_body",
    "truncated",
)
_UNREACHABLE = (OperationalError, InterfaceError)
_RETRY_BACKOFF_S = (0.2, 1.0, 5.0)
_NICENESS = 10


def _scrub_platform_keys(texts: list[str]) -> list[str]:
    return [PLATFORM_KEY_ECHOED.sub("<API_KEY>", text) if "lp" in text else text for text in texts]


class StoredLogWriter:
    """Batches finished requests into ``request_logs`` rows (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        redactor_factory: RedactorFactory | None = None,
        *,
        limit: int = 10_000,
        batch_size: int = 200,
        interval_s: float = 0.2,
    ) -> None:
        self._engine = engine
        self._insert = BulkInsert(
            request_logs, _COLUMNS, engine.dialect.name, engine.dialect.paramstyle
        )
        self._redactor_factory = redactor_factory
        self._redact: Redacting | None = None
        self._redactor_failed = False
        self._limit = limit
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._pending: deque[RequestTrace] = deque()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = threading.Condition()
        self._enqueued = 0
        self._done = 0  # written, rejected or given up
        self.dropped = 0
        self.rejected = 0

    @property
    def depth(self) -> int:
        """Requests waiting to be written."""
        return len(self._pending)

    def start(self) -> StoredLogWriter:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="llmplane-request-logs", daemon=True
            )
            self._thread.start()
        return self

    def request_finished(self, trace: RequestTrace) -> None:
        """Queue the trace's row when its policy stores one; never blocks."""
        if trace.content is None:
            return
        if len(self._pending) >= self._limit:
            self.dropped += 1
            return
        self._pending.append(trace)
        self._enqueued += 1

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until every request queued before this call is written (or given up);
        ``False`` on timeout. Called off the event loop."""
        target = self._enqueued
        with self._progress:
            return self._progress.wait_for(lambda: self._done >= target, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread (and the redactor)."""
        self._stopped.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._pending:
            log.error("request logs: %d rows not written at shutdown", len(self._pending))
        close = getattr(self._redact, "close", None)
        if close is not None:
            close()

    def _run(self) -> None:
        # Below the event loop's priority, as the ledger's writer: with one core, requests
        # should not wait for a batch's time slice.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICENESS)
        failures = 0
        while True:
            stopping = self._stopped.wait(self._interval_s)
            while self._pending:
                batch = [
                    self._pending.popleft()
                    for _ in range(min(self._batch_size, len(self._pending)))
                ]
                rows = [row for row in map(self._row, batch) if row is not None]
                try:
                    self._write(rows)
                except _UNREACHABLE as exc:
                    if stopping and failures >= len(_RETRY_BACKOFF_S):
                        self._finished(len(batch))  # shutting down: give up
                        continue
                    self._pending.extendleft(reversed(batch))
                    delay = _RETRY_BACKOFF_S[min(failures, len(_RETRY_BACKOFF_S) - 1)]
                    failures += 1
                    log.warning(
                        "request logs: write failed (%s); retrying in %.1fs",
                        type(exc).__name__,
                        delay,
                    )
                    time.sleep(delay)
                    continue
                failures = 0
                self._finished(len(batch))
            if stopping:
                return

    def _finished(self, count: int) -> None:
        with self._progress:
            self._done += count
            self._progress.notify_all()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        try:
            with self._engine.begin() as connection:
                self._insert.execute(connection, rows)
        except _UNREACHABLE:
            raise
        except DBAPIError:
            for row in rows:  # one refused row must not lose the others
                try:
                    with self._engine.begin() as connection:
                        self._insert.execute(connection, [row])
                except _UNREACHABLE:
                    raise
                except DBAPIError as exc:
                    self.rejected += 1
                    log.error(
                        "request logs: the store refused the row of request %s (%s)",
                        row[0],
                        type(exc.orig).__name__,
                    )

    def _redactor(self) -> Redacting | None:
        if self._redact is None and not self._redactor_failed:
            try:
                if self._redactor_factory is None:
                    raise ImportError("no redactor configured")
                self._redact = self._redactor_factory()
            except Exception as exc:  # noqa: BLE001 - redacted bodies are then not stored
                self._redactor_failed = True
                log.error(
                    "request logs: no PII redactor (%s: %s); redacted policies store metadata "
                    "only (pip install 'llmplane[pii]')",
                    type(exc).__name__,
                    exc,
                )
        return self._redact

    def _text_filter(self, bodies: str) -> Callable[[list[str]], list[str]] | None:
        """What a body's strings go through before they are stored (``None``: store no
        body, when a redacted policy has no redactor)."""
        if bodies != REDACTED:
            return _scrub_platform_keys
        redactor = self._redactor()
        if redactor is None:
            return None
        return lambda texts: _scrub_platform_keys(redactor.redact_many(texts))

    def _row(self, trace: RequestTrace) -> tuple[Any, ...] | None:
        try:
            return self.build_row(trace)
        except Exception:
            self.rejected += 1
            log.exception("request logs: could not build the row of request %s", trace.request_id)
            return None

    def build_row(self, trace: RequestTrace) -> tuple[Any, ...]:
        """The ``request_logs`` row of a finished request (values in column order)."""
        content = trace.content
        assert content is not None
        policy = content.policy
        attempts = trace.attempts
        served = attempts[-1] if attempts else None
        principal = trace.principal
        created = datetime.fromtimestamp(trace.started_at + trace.duration_s, UTC)
        request_body = response_body = None
        truncated = False
        if policy.wants_content:
            change = self._text_filter(policy.bodies)
            if change is not None:
                request, cut_request = bounded(content.request, policy.max_body_bytes)
                response, cut_response = bounded(
                    content.response(trace.operation), policy.max_body_bytes
                )
                truncated = cut_request or cut_response or content.events_truncated
                try:
                    request_body = orjson.dumps(map_strings(request, change)).decode()
                    if response is not None:
                        response_body = orjson.dumps(map_strings(response, change)).decode()
                except Exception:
                    if policy.bodies != REDACTED:
                        raise
                    # The redactor failed: no body rather than an unredacted one.
                    log.exception("request logs: redaction failed (request %s)", trace.request_id)
                    request_body = response_body = None
        return (
            trace.request_id,
            created,
            created + timedelta(days=policy.retention_days),
            policy.bodies,
            principal.team_id if principal else None,
            principal.service_id if principal else None,
            principal.key_id if principal else None,
            content.user or (principal.user_id if principal else None),
            trace.operation,
            trace.model,
            served.model if served else None,
            served.deployment if served else None,
            served.provider if served else None,
            trace.status,
            trace.error_type,
            trace.error_code,
            trace.stream,
            len(attempts),
            sum(a.prompt_tokens for a in attempts),
            sum(a.completion_tokens for a in attempts),
            sum(a.cached_tokens for a in attempts),
            sum(a.cost_nanousd for a in attempts),
            round(trace.duration_s * 1000, 3),
            served.ttft_ms if served else None,
            request_params(content.request),
            request_body,
            response_body,
            truncated,
        )
