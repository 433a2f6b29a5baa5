"""Soft budget thresholds: each fires a webhook and an audit event once per period.

A background task compares every budget's spend in its current period with its
thresholds (e.g. 50/80/100 %). Crossing one records it in ``budget_alerts``,
whose unique key (budget, period, threshold) makes it fire once however many
replicas notice; the same transaction appends the audit event, then the
webhook (``LLMPLANE_BUDGET_WEBHOOK_URL``, operator-configured) is posted.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from llmplane.accounting.audit import record_audit
from llmplane.accounting.budgets import AdmissionGuard, Budget, period_start
from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.store.tables import budget_alerts

log = logging.getLogger(__name__)

_WEBHOOK_TIMEOUT = aiohttp.ClientTimeout(total=10)
_WEBHOOK_ATTEMPTS = 3


class BudgetAlerts:
    """Watches budgets for crossed thresholds."""

    def __init__(self, engine: Engine, admission: AdmissionGuard, webhook_url: str | None) -> None:
        self._engine = engine
        self._admission = admission
        self._webhook_url = webhook_url
        self._session: aiohttp.ClientSession | None = None

    async def check(self) -> list[dict[str, Any]]:
        """Fire every threshold crossed since the last check; return what fired."""
        fired = []
        now = datetime.now(UTC)
        for budget in self._admission.budgets():
            if not budget.thresholds or budget.limit_nanousd <= 0:
                continue
            spent = await self._admission.spent_nanousd(
                (budget.scope, budget.scope_id), budget.period
            )
            if spent is None:
                continue
            start = period_start(budget.period, now).date().isoformat()
            for threshold in budget.thresholds:
                if spent * 100 >= budget.limit_nanousd * threshold:
                    event = await asyncio.to_thread(self._record, budget, start, threshold, spent)
                    if event is not None:
                        fired.append(event)
                        await self._notify(event)
        return fired

    def _record(
        self, budget: Budget, start: str, threshold: int, spent: int
    ) -> dict[str, Any] | None:
        event = {
            "event": "budget.threshold",
            "budget_id": budget.id,
            "scope": budget.scope,
            "scope_id": budget.scope_id,
            "period": budget.period.value,
            "period_start": start,
            "threshold_pct": threshold,
            "spent_usd": spent / NANO_PER_USD,
            "limit_usd": budget.limit_nanousd / NANO_PER_USD,
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(budget_alerts).values(
                        budget_id=budget.id,
                        period_start=start,
                        threshold=threshold,
                        spent_nanousd=spent,
                        created_at=datetime.now(UTC),
                    )
                )
                record_audit(
                    connection,
                    actor="system",
                    action="budget.threshold",
                    object_type="budget",
                    object_id=budget.id,
                    before=None,
                    after=event,
                )
        except IntegrityError:
            return None  # already fired this period (here or on another replica)
        return event

    async def _notify(self, event: dict[str, Any]) -> None:
        if self._webhook_url is None:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_WEBHOOK_TIMEOUT)
        for attempt in range(_WEBHOOK_ATTEMPTS):
            try:
                async with self._session.post(self._webhook_url, json=event) as response:
                    if response.status < 300:
                        return
                    reason = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = type(exc).__name__
            await asyncio.sleep(0.5 * 2**attempt)
        log.warning(
            "budget webhook failed after %d attempts (%s) for %s at %d%%",
            _WEBHOOK_ATTEMPTS,
            reason,
            event["budget_id"],
            event["threshold_pct"],
        )

    async def aclose(self) -> None:
        """Close the webhook client."""
        if self._session is not None:
            await self._session.close()
