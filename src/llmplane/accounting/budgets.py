"""Budgets that hold under concurrency: reserve the worst case, then settle the real cost.

Admission reserves a request's worst-case cost against every budget above it
(key, service, team) in one step with no ``await`` between check and update,
so concurrent requests in one process can never jointly pass a budget; the
response settles the real cost and releases the rest; a failed or cancelled
call settles what it used (often nothing).

Spend counters are kept for every scope a request touches, per period (day,
week, month and all-time, in UTC), loaded from the usage ledger's day rollups
the first time a scope is seen in a period. From then on they move with every
settlement, so a budget created mid-period starts from the exact spend so far.

This is the embedded, one-process backend. Counters shared by several
replicas (Redis, atomic Lua) implement the same :class:`BudgetGuard` surface.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, insert, literal_column, select, update
from sqlalchemy.engine import Engine

from llmplane.accounting.audit import record_audit
from llmplane.accounting.keys import Principal
from llmplane.accounting.limits import LocalRateLimiter, TokenHold
from llmplane.accounting.pricing import NANO_PER_USD
from llmplane.errors import BudgetExceededError, InvalidRequestError
from llmplane.ids import new_id
from llmplane.store.tables import budgets, usage_rollups


class Period(StrEnum):
    """How often a budget starts again (UTC boundaries)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    NONE = "none"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period_start(period: Period, now: datetime) -> datetime:
    """The start of the period containing ``now``: midnight, Monday or the 1st (UTC)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return _EPOCH


# How many periods of the first kind can begin within one of the second: a $10/day budget
# can spend $310 within a month, a $10/month one at most $10 within a day.
_PERIODS_WITHIN = {
    (Period.DAY, Period.WEEK): 7,
    (Period.DAY, Period.MONTH): 31,
    (Period.WEEK, Period.MONTH): 5,
}


def could_outspend(limit_nanousd: int, period: Period, other: Budget) -> bool:
    """Whether a budget of ``limit_nanousd`` per ``period`` could let more be spent than
    ``other`` allows within one of ``other``'s periods."""
    if other.period is Period.NONE and period is not Period.NONE:
        return limit_nanousd > 0  # renews forever, against a fixed total
    factor = 1 if period is other.period else _PERIODS_WITHIN.get((period, other.period), 1)
    return limit_nanousd * factor > other.limit_nanousd


Scope = tuple[str, str]  # ("key" | "service" | "team", id)
CounterKey = tuple[str, str, Period]


@dataclass(frozen=True, slots=True)
class Budget:
    """A USD limit on a key, service or team for a period."""

    id: str
    scope: str
    scope_id: str
    limit_nanousd: int
    period: Period
    thresholds: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (USD as a number)."""
        return {
            "id": self.id,
            "scope": self.scope,
            "scope_id": self.scope_id,
            "limit_usd": self.limit_nanousd / NANO_PER_USD,
            "period": self.period.value,
            "thresholds": list(self.thresholds),
        }


@dataclass(slots=True)
class Reservation:
    """What one admitted request holds until it settles."""

    scopes: tuple[Scope, ...]
    day: datetime
    held: tuple[CounterKey, ...]
    amount: int
    settled: bool = field(default=False)
    token: str = ""  # names the hold in a shared backend
    headers: dict[str, str] = field(default_factory=dict)  # rate-limit headers for the reply
    tpm_subjects: tuple[str, ...] = ()  # limits whose tpm counted this call's worst case
    token_holds: list[TokenHold] | None = None  # the local tpm windows' entries


def principal_scopes(principal: Principal) -> tuple[Scope, ...]:
    """The budget scopes above a caller: its key, then its service and team if any."""
    scopes: list[Scope] = [("key", principal.key_id)]
    if principal.service_id:
        scopes.append(("service", principal.service_id))
    if principal.team_id:
        scopes.append(("team", principal.team_id))
    return tuple(scopes)


_SCOPE_COLUMNS = {
    "key": usage_rollups.c.key_id,
    "service": usage_rollups.c.service_id,
    "team": usage_rollups.c.team_id,
}


_SCOPES = frozenset(_SCOPE_COLUMNS)


def load_budgets(engine: Engine, *, changed_since: datetime | None = None) -> list[Budget]:
    """Every budget in the store, or those changed since a time (blocking)."""
    query = select(budgets).order_by(budgets.c.scope)
    if changed_since is not None:
        query = query.where(budgets.c.updated_at >= changed_since)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        Budget(
            row["id"],
            row["scope"],
            row["scope_id"],
            row["limit_nanousd"],
            Period(row["period"]),
            tuple(row["thresholds"] or ()),
        )
        for row in rows
    ]


def check_budget(*, limit_usd: float, period: str, thresholds: Sequence[int] = ()) -> Period:
    """Validate a budget's terms; return its period."""
    try:
        kind = Period(period)
    except ValueError:
        raise InvalidRequestError(
            "'period' must be day, week, month or none.", param="period"
        ) from None
    if not limit_usd >= 0:
        raise InvalidRequestError("'limit_usd' must be a number >= 0.", param="limit_usd")
    if any(not 0 < t <= 100 for t in thresholds):
        raise InvalidRequestError(
            "'thresholds' are percentages between 1 and 100.", param="thresholds"
        )
    return kind


def set_budget(
    engine: Engine,
    scope: str,
    scope_id: str,
    *,
    limit_usd: float,
    period: str,
    thresholds: Sequence[int] = (),
    actor: str = "admin",
) -> Budget:
    """Create or replace the budget of a key, service or team (audited)."""
    if scope not in _SCOPES:
        raise InvalidRequestError("'scope' must be key, service or team.", param="scope")
    kind = check_budget(limit_usd=limit_usd, period=period, thresholds=thresholds)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        existing = (
            connection.execute(
                select(budgets).where(budgets.c.scope == scope, budgets.c.scope_id == scope_id)
            )
            .mappings()
            .first()
        )
        budget = Budget(
            existing["id"] if existing else new_id("budget"),
            scope,
            scope_id,
            round(limit_usd * NANO_PER_USD),
            kind,
            tuple(sorted(set(thresholds))),
        )
        values = {
            "limit_nanousd": budget.limit_nanousd,
            "period": kind.value,
            "thresholds": list(budget.thresholds),
            "updated_at": now,
        }
        if existing:
            connection.execute(update(budgets).where(budgets.c.id == budget.id).values(**values))
        else:
            connection.execute(
                insert(budgets).values(
                    id=budget.id, scope=scope, scope_id=scope_id, created_at=now, **values
                )
            )
        before = (
            Budget(
                existing["id"],
                scope,
                scope_id,
                existing["limit_nanousd"],
                Period(existing["period"]),
                tuple(existing["thresholds"] or ()),
            )
            if existing
            else None
        )
        record_audit(
            connection,
            actor=actor,
            action="budget.set",
            object_type="budget",
            object_id=budget.id,
            before=before.to_json() if before else None,
            after=budget.to_json(),
        )
    return budget


class AdmissionGuard:
    """Admission control: the caller's rate limit and every budget above it, in one step.

    What every backend shares: the budgets in force, refusals, ledger sums.
    Backends implement :meth:`admit` (count the request against the key's rpm and
    reserve the worst case under every budget, or raise :class:`RateLimitError` /
    :class:`BudgetExceededError`), :meth:`settle` (count the real cost, release the
    rest; never blocks, never raises) and :meth:`spent_nanousd`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._budgets: dict[Scope, Budget] = {}

    def replace_budgets(self, all_budgets: Sequence[Budget]) -> None:
        """Use this set of budgets from now on (start-up, refresh, or after an admin change)."""
        self._budgets = {(b.scope, b.scope_id): b for b in all_budgets}

    def update_budgets(self, changed: Sequence[Budget]) -> None:
        """Take new or changed budgets (an incremental refresh)."""
        if changed:
            self._budgets = {**self._budgets, **{(b.scope, b.scope_id): b for b in changed}}

    def budgets(self) -> list[Budget]:
        """Every budget in force."""
        return list(self._budgets.values())

    def budget_for(self, scope: Scope) -> Budget | None:
        """The budget set on ``scope``, if any."""
        return self._budgets.get(scope)

    def budgets_above(self, principal: Principal) -> list[Budget]:
        """The budgets that apply to a caller: its key's, service's and team's."""
        return [b for scope in principal_scopes(principal) if (b := self._budgets.get(scope))]

    async def admit(
        self,
        principal: Principal,
        worst_case_nanousd: int,
        worst_case_tokens: int = 0,
        model: str = "",
    ) -> Reservation:
        """Admit one call to ``model`` under every rate limit above ``principal`` (key,
        service, team, the team's limit for the model) and reserve ``worst_case_nanousd``
        under every budget above it, or refuse."""
        raise NotImplementedError

    def settle(self, reservation: Reservation, actual_nanousd: int, actual_tokens: int = 0) -> None:
        """Release the reservation and count the real cost and tokens (once)."""
        raise NotImplementedError

    async def spent_nanousd(self, scope: Scope, period: Period) -> int | None:
        """Settled spend of ``scope`` in the current ``period`` (``None`` if not tracked)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Finish pending work at shutdown."""

    @staticmethod
    def refusal(budget: Budget, used: int, worst_case_nanousd: int) -> BudgetExceededError:
        """The client's error for a budget that cannot take this request."""
        per = budget.period.value if budget.period is not Period.NONE else "all time"
        limit = budget.limit_nanousd / NANO_PER_USD
        left = max(budget.limit_nanousd - used, 0) / NANO_PER_USD
        worst = worst_case_nanousd / NANO_PER_USD
        return BudgetExceededError(
            f"The {budget.scope} budget of ${limit:.2f} per {per} has ${left:.6f} left; this "
            f"request could cost up to ${worst:.6f}. Lower max_tokens or ask the platform "
            "team for more budget."
        )

    def ledger_sums(self, scope: Scope, day: datetime) -> dict[Period, int]:
        """Spend of ``scope`` per period up to now, from the ledger's day rollups (blocking).

        Periods start at midnight UTC, so whole day buckets sum them exactly; today's
        bucket holds every row written so far."""
        column = _SCOPE_COLUMNS[scope[0]]
        cost = usage_rollups.c.cost_nanousd
        bucket = usage_rollups.c.bucket
        starts = {p: period_start(p, day) for p in (Period.DAY, Period.WEEK, Period.MONTH)}
        query = select(
            *(func.sum(case((bucket >= start, cost), else_=0)) for start in starts.values()),
            func.sum(cost),
        ).where(
            # A literal, so that the planners may use the partial index of day rollups.
            usage_rollups.c.grain == literal_column("'day'"),
            column == scope[1],
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).one()
        values = [int(v or 0) for v in row]
        return {**dict(zip(starts, values[:3], strict=True)), Period.NONE: values[3]}


class LocalAdmissionGuard(AdmissionGuard):
    """One process: an exact rpm window and reserve-then-settle over spend counters
    loaded from the ledger."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._rate = LocalRateLimiter()
        self._spent: dict[CounterKey, int] = {}
        self._reserved: dict[CounterKey, int] = {}
        self._loaded: dict[Scope, datetime] = {}
        self._loading: dict[Scope, asyncio.Future[None]] = {}

    async def spent_nanousd(self, scope: Scope, period: Period) -> int | None:
        """Settled spend of ``scope`` in the current ``period`` (``None`` if not tracked yet)."""
        return self._spent.get((*scope, period))

    async def admit(
        self,
        principal: Principal,
        worst_case_nanousd: int,
        worst_case_tokens: int = 0,
        model: str = "",
    ) -> Reservation:
        """Check every budget, then the rpm and tpm windows, then hold: no await between."""
        now = datetime.now(UTC)
        day = period_start(Period.DAY, now)
        scopes = principal_scopes(principal)
        for scope in scopes:
            if self._loaded.get(scope) != day:
                await self._load(scope, day)
        held: list[CounterKey] = []
        for scope in scopes:
            budget = self._budgets.get(scope)
            if budget is None:
                continue
            key: CounterKey = (*scope, budget.period)
            used = self._spent.get(key, 0) + self._reserved.get(key, 0)
            if used + worst_case_nanousd > budget.limit_nanousd:
                raise self.refusal(budget, used, worst_case_nanousd)
            held.append(key)
        headers, token_holds = self._rate.admit(principal.limits_for(model), worst_case_tokens)
        for key in held:
            self._reserved[key] = self._reserved.get(key, 0) + worst_case_nanousd
        return Reservation(
            scopes,
            day,
            tuple(held),
            worst_case_nanousd,
            headers=headers,
            token_holds=token_holds or None,
        )

    def settle(self, reservation: Reservation, actual_nanousd: int, actual_tokens: int = 0) -> None:
        """Release the reservation and count the real cost (once; later calls do nothing)."""
        if reservation.settled:
            return
        reservation.settled = True
        if reservation.token_holds is not None:
            self._rate.settle_tokens(reservation.token_holds, actual_tokens)
        for key in reservation.held:
            self._reserved[key] -= reservation.amount
        if actual_nanousd <= 0:
            return
        for scope in reservation.scopes:
            if scope not in self._loaded:
                continue  # never loaded: its first load reads the ledger row instead
            # The ledger row is dated now, so the cost counts in the periods loaded now —
            # even if the call was admitted before midnight and the scope reloaded since.
            for period in Period:
                counter: CounterKey = (*scope, period)
                self._spent[counter] = self._spent.get(counter, 0) + actual_nanousd

    async def _load(self, scope: Scope, day: datetime) -> None:
        pending = self._loading.get(scope)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[scope] = future
        try:
            sums = await asyncio.to_thread(self.ledger_sums, scope, day)
            for period, total in sums.items():
                self._spent[(*scope, period)] = total
            self._loaded[scope] = day
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[scope]
