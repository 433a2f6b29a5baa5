"""The usage ledger: one row per upstream call, written in batches off the request path.

:meth:`UsageLedger.record` never blocks and never awaits (it is called from
``finally`` blocks of cancelled streams): rows go to a bounded queue, and when
the queue is full to an overflow list that the writer drains first, so a slow
database delays rows instead of losing them. Only past ``overflow_limit`` rows
are dropped, counted and logged. A background task writes batches in a worker
thread and retries a batch until the store is reachable again; a row the store
itself refuses is logged and counted (``rejected``) without holding up the
others. The hour and day rollups that spend queries read are updated in the
same transaction as the rows. :meth:`UsageLedger.close` drains everything
before shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from llmplane.store.bulk import BulkInsert
from llmplane.store.rollups import RollupUpsert
from llmplane.store.tables import usage_ledger

log = logging.getLogger(__name__)

_RETRY_BACKOFF_S = (0.1, 0.5, 1.0, 2.0, 5.0)


@dataclass(slots=True)
class UsageRecord:
    """What one upstream call used and cost, and who it is attributed to."""

    request_id: str
    created_at: datetime
    model: str
    deployment: str
    provider: str
    endpoint: str
    stream: bool
    status: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_nanousd: int
    latency_ms: float
    attempt: int = 0
    key_id: str | None = None
    team_id: str | None = None
    service_id: str | None = None
    user_id: str | None = None
    error_code: str | None = None
    usage_estimated: bool = False
    ttft_ms: float | None = None
    tags: dict[str, Any] | None = None
    prompt: str | None = None  # the registered prompt rendered: name@version

    # The request's guardrail verdicts (policy, each rule's outcome and finding types).
    guardrails: dict[str, Any] | None = None


_COLUMNS = tuple(f.name for f in fields(UsageRecord))
_ROW = operator.attrgetter(*_COLUMNS)
_REQUEST_ID = _COLUMNS.index("request_id")
_WRITER_NICENESS = 10
_UNREACHABLE = (OperationalError, InterfaceError)
# The store refuses a row (DBAPIError), or the rollups cannot add up a value that the store
# took (a row the gateway did not build from typed values).
_REFUSED = (DBAPIError, TypeError, ValueError)


def _yield_to_requests() -> None:
    """Lower the writer thread's CPU priority: when the gateway has one core, requests
    should not wait for the scheduler's time slice of a batch insert."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _WRITER_NICENESS)


class UsageLedger:
    """Bounded, batched, drained-on-shutdown writer of :class:`UsageRecord` rows."""

    def __init__(
        self,
        engine: Engine,
        *,
        queue_size: int = 50_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        overflow_limit: int | None = None,
    ) -> None:
        self._engine = engine
        self._insert = BulkInsert(
            usage_ledger, _COLUMNS, engine.dialect.name, engine.dialect.paramstyle
        )
        self._rollups = RollupUpsert(_COLUMNS, engine.dialect.name, engine.dialect.paramstyle)
        self._queue: asyncio.Queue[UsageRecord] = asyncio.Queue(maxsize=queue_size)
        self._overflow: list[UsageRecord] = []
        self._overflow_limit = overflow_limit if overflow_limit is not None else queue_size * 4
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="usage-ledger", initializer=_yield_to_requests
        )
        self._written = 0
        self._enqueued = 0
        self.dropped = 0
        self.rejected = 0
        self._progress = asyncio.Condition()

    @property
    def depth(self) -> int:
        """Rows waiting to be written."""
        return self._queue.qsize() + len(self._overflow)

    def start(self) -> None:
        """Start the background writer (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="usage-ledger-writer")

    def record(self, row: UsageRecord) -> None:
        """Queue a row without blocking; see the module docstring for what happens when full."""
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            if len(self._overflow) >= self._overflow_limit:
                self.dropped += 1
                log.error("usage ledger full: dropped the row of request %s", row.request_id)
                return
            self._overflow.append(row)
        self._enqueued += 1

    async def flush(self) -> None:
        """Wait until every row recorded before this call is in the database."""
        target = self._enqueued
        async with self._progress:
            await self._progress.wait_for(lambda: self._written >= target)

    async def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.error("usage ledger: %d rows not written at shutdown", self.depth)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[UsageRecord]:
        batch = self._overflow[: self._batch_size]
        del self._overflow[: len(batch)]
        if not batch:
            batch.append(await self._queue.get())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flush_interval_s
        while len(batch) < self._batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            rows = [_ROW(row) for row in batch]
            attempt = 0
            while True:
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._write, rows
                    )
                    break
                except SQLAlchemyError as exc:
                    delay = _RETRY_BACKOFF_S[min(attempt, len(_RETRY_BACKOFF_S) - 1)]
                    log.warning(
                        "usage ledger write failed (%s); retrying in %.1fs",
                        type(exc).__name__,
                        delay,
                    )
                    attempt += 1
                    await asyncio.sleep(delay)
            async with self._progress:
                self._written += len(batch)
                self._progress.notify_all()

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            self._write_rows(rows)
        except _UNREACHABLE:
            raise  # the store is down: the whole batch is retried later
        except _REFUSED:
            # One bad row (or a retried batch that partly landed) must not block the rest:
            # write row by row and set aside only the rows the store refuses.
            for row in rows:
                try:
                    self._write_rows([row])
                except _UNREACHABLE:
                    raise
                except _REFUSED as exc:
                    self.rejected += 1
                    log.error(
                        "usage ledger: the store refused the row of request %s (%s)",
                        row[_REQUEST_ID],
                        type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__,
                    )

    def _write_rows(self, rows: list[tuple[Any, ...]]) -> None:
        # The rollups count exactly the rows that land: both or neither are committed.
        with self._engine.begin() as connection:
            self._insert.execute(connection, rows)
            self._rollups.execute(connection, rows)
