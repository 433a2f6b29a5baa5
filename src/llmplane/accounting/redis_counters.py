"""Budgets and rate limits shared by every gateway replica: counters in Redis, atomic in Lua.

Each budget period has a spend counter (``…:spent``, rebuilt from the ledger
when missing — first use, or after Redis lost its data) and its open
reservations (a hash of amounts and a sorted set of expiry times). Admission
is one script that drops expired reservations, checks every budget above the
caller and, only if all have room, holds the worst case under each: no
replica can see a half-made reservation. Settlement is one script that
releases the hold and adds the real cost. Reservations of a crashed replica
expire after ``reservation_ttl_s``.

The same script first checks every rate limit above the caller (key, service,
team, the team's limit for the model): each limit's admitted requests of the
last minute live in a sorted set and its tokens in a sorted set, a hash and a
total, so the limits hold exactly across replicas, and a request is counted
only if all its limits and budgets admit it. Times come from Redis
itself. One round trip admits a call; settlements go out in pipelined batches.

When Redis cannot be reached, ``failure_mode`` decides: ``closed`` (default)
answers 503, ``open`` admits the call, logs it and counts it in
``fail_open_admissions``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from llmplane.accounting.budgets import (
    AdmissionGuard,
    CounterKey,
    Period,
    Reservation,
    Scope,
    period_start,
    principal_scopes,
)
from llmplane.accounting.keys import Principal
from llmplane.accounting.limits import RateLimit, TightestHeaders, rpm_refusal, tpm_refusal
from llmplane.accounting.resp import RespConnection, Script
from llmplane.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

FailureMode = Literal["closed", "open"]

# KEYS: per rate limit its rpm window, tpm window (times), tpm entries (tokens) and tpm
# total; then per budget its spent counter, holds hash and expiry set.
# ARGV: amount, reservation id, hold ttl (ms), worst-case tokens, number of rate limits,
# then per rate limit its rpm and tpm (0: none), then per budget its limit and key ttl (s).
# Returns {1, now_ms, then per rate limit: count, rpm_oldest_ms, tokens_used, tpm_oldest_ms}
# admitted; {2, j, count, oldest_ms, now_ms} over rate limit j's rpm; {3, j, used, oldest_ms,
# now_ms} over its tpm; {0, i, used} refused by budget i; {-1, i} counter i missing (rebuild
# it, call again).
_ADMIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local amount = tonumber(ARGV[1])
local rid = ARGV[2]
local tokens = tonumber(ARGV[4])
local nl = tonumber(ARGV[5])
local cutoff = now_ms - 60000
local state = {}
for j = 0, nl - 1 do
  local rpm, tpm = tonumber(ARGV[6 + j*2]), tonumber(ARGV[7 + j*2])
  local k = j * 4
  local count, oldest_ms, used, tpm_oldest_ms = 0, now_ms, 0, now_ms
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k+1], '-inf', cutoff)
    count = redis.call('ZCARD', KEYS[k+1])
    if count >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[k+1], 0, 0, 'WITHSCORES')
      return {2, j, count, tonumber(oldest[2]), now_ms}
    end
  end
  if tpm > 0 then
    local old = redis.call('ZRANGEBYSCORE', KEYS[k+2], '-inf', cutoff)
    for _, id in ipairs(old) do
      local held = redis.call('HGET', KEYS[k+3], id)
      if held then redis.call('DECRBY', KEYS[k+4], held) end
    end
    if #old > 0 then
      redis.call('HDEL', KEYS[k+3], unpack(old))
      redis.call('ZREMRANGEBYSCORE', KEYS[k+2], '-inf', cutoff)
    end
    used = tonumber(redis.call('GET', KEYS[k+4]) or '0')
    local oldest = redis.call('ZRANGE', KEYS[k+2], 0, 0, 'WITHSCORES')
    if #oldest > 0 then tpm_oldest_ms = tonumber(oldest[2]) end
    if used + tokens > tpm then return {3, j, used, tpm_oldest_ms, now_ms} end
  end
  state[j] = {count, oldest_ms, used, tpm_oldest_ms}
end
local base = nl * 4
local args = 5 + nl * 2
local n = (#KEYS - base) / 3
for i = 0, n - 1 do
  local spent_key, holds, expiries = KEYS[base+1+i*3], KEYS[base+2+i*3], KEYS[base+3+i*3]
  local expired = redis.call('ZRANGEBYSCORE', expiries, '-inf', now_ms)
  if #expired > 0 then
    redis.call('HDEL', holds, unpack(expired))
    redis.call('ZREMRANGEBYSCORE', expiries, '-inf', now_ms)
  end
  local spent = redis.call('GET', spent_key)
  if not spent then return {-1, i} end
  local used = tonumber(spent)
  for _, held in ipairs(redis.call('HVALS', holds)) do used = used + tonumber(held) end
  if used + amount > tonumber(ARGV[args + 1 + i*2]) then return {0, i, used} end
end
local out = {1, now_ms}
for j = 0, nl - 1 do
  local rpm, tpm = tonumber(ARGV[6 + j*2]), tonumber(ARGV[7 + j*2])
  local k = j * 4
  local st = state[j]
  if rpm > 0 then
    redis.call('ZADD', KEYS[k+1], now_ms, rid)
    redis.call('PEXPIRE', KEYS[k+1], 60000)
    st[1] = st[1] + 1
    st[2] = tonumber(redis.call('ZRANGE', KEYS[k+1], 0, 0, 'WITHSCORES')[2])
  end
  if tpm > 0 then
    redis.call('ZADD', KEYS[k+2], now_ms, rid)
    redis.call('HSET', KEYS[k+3], rid, tokens)
    redis.call('INCRBY', KEYS[k+4], tokens)
    for m = 2, 4 do redis.call('PEXPIRE', KEYS[k+m], 60000) end
    st[3] = st[3] + tokens
    st[4] = tonumber(redis.call('ZRANGE', KEYS[k+2], 0, 0, 'WITHSCORES')[2])
  end
  for m = 1, 4 do out[#out + 1] = st[m] end
end
for i = 0, n - 1 do
  local key_ttl = tonumber(ARGV[args + 2 + i*2])
  redis.call('HSET', KEYS[base+2+i*3], rid, amount)
  redis.call('ZADD', KEYS[base+3+i*3], now_ms + tonumber(ARGV[3]), rid)
  redis.call('EXPIRE', KEYS[base+2+i*3], key_ttl)
  redis.call('EXPIRE', KEYS[base+3+i*3], key_ttl)
end
return out
"""

# KEYS: per tpm limit its entries hash and total, then per budget its spent counter, holds
# hash and expiry set. ARGV: reservation id, cost, tokens used, number of tpm limits.
_SETTLE = """
local rid = ARGV[1]
local cost = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local nt = tonumber(ARGV[4])
for j = 0, nt - 1 do
  local held_tokens = redis.call('HGET', KEYS[1+j*2], rid)
  if held_tokens then
    redis.call('HSET', KEYS[1+j*2], rid, tokens)
    redis.call('INCRBY', KEYS[2+j*2], tokens - tonumber(held_tokens))
  end
end
local base = nt * 2
for i = 0, (#KEYS - base) / 3 - 1 do
  local held = redis.call('HGET', KEYS[base+2+i*3], rid)
  redis.call('HDEL', KEYS[base+2+i*3], rid)
  redis.call('ZREM', KEYS[base+3+i*3], rid)
  if held and cost > 0 and redis.call('EXISTS', KEYS[base+1+i*3]) == 1 then
    redis.call('INCRBY', KEYS[base+1+i*3], cost)
  end
end
return 1
"""

_SETTLE_BATCH = 500
_PERIOD_TTL_S = {
    Period.DAY: 3 * 86_400,
    Period.WEEK: 9 * 86_400,
    Period.MONTH: 33 * 86_400,
    Period.NONE: 400 * 86_400,
}


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "Budgets and rate limits cannot be checked right now; retry shortly.",
        code="limits_unavailable",
        headers={"retry-after": "1"},
    )


_MAX_CONNECTIONS = 64


def connect(url: str) -> Redis:
    """A client for ``LLMPLANE_REDIS_URL`` with short timeouts (failures are handled, not
    waited out). Beyond ``_MAX_CONNECTIONS`` concurrent commands, callers wait for a free
    connection (up to the same timeout) instead of failing: a burst of admissions must
    queue, not turn into 503s."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=_MAX_CONNECTIONS,
        timeout=2,
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    return Redis.from_pool(pool)


def _admitted_headers(limits: Sequence[RateLimit], state: list[int]) -> dict[str, str]:
    """The tightest limits' headers from the script's ``now_ms`` and per-limit state."""
    now_ms, tightest = state[0], TightestHeaders()
    for j, limit in enumerate(limits):
        count, oldest_ms, used, tpm_oldest_ms = state[1 + j * 4 : 5 + j * 4]
        if limit.rpm:
            tightest.request_state(
                limit.rpm, limit.rpm - count, (oldest_ms + 60_000 - now_ms) / 1000
            )
        if limit.tpm:
            tightest.token_state(
                limit.tpm, limit.tpm - used, (tpm_oldest_ms + 60_000 - now_ms) / 1000
            )
    return tightest.headers()


class _Unique:
    """Unique member ids across replicas: a per-process random tag and a counter."""

    def __init__(self) -> None:
        self._tag = os.urandom(6).hex()
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"{self._tag}{self._next:x}"


class RedisAdmissionGuard(AdmissionGuard):
    """Rate limits and reserve-then-settle across replicas: one script call per admission,
    settlements sent in pipelined batches, both on a shared :class:`RespConnection`."""

    def __init__(
        self,
        engine: Engine,
        redis: Redis,
        scripts: RespConnection,
        *,
        prefix: str = "llmplane",
        reservation_ttl_s: float = 900.0,
        failure_mode: FailureMode = "closed",
    ) -> None:
        super().__init__(engine)
        self._redis = redis
        self._scripts = scripts
        self._prefix = prefix
        self._ttl_ms = int(reservation_ttl_s * 1000)
        self._failure_mode = failure_mode
        self._admit_script = Script(_ADMIT)
        self._settle_script = Script(_SETTLE)
        self._unsettled: list[tuple[list[str], tuple[str, int, int, int]]] = []  # keys, args
        self._flusher: asyncio.Task[None] | None = None
        self._unique = _Unique()
        self.fail_open_admissions = 0

    def _keys(self, key: CounterKey, day: datetime) -> list[str]:
        scope, scope_id, period = key
        start = period_start(period, day).date().isoformat()
        base = f"{self._prefix}:budget:{scope}:{scope_id}:{period.value}:{start}"
        return [f"{base}:spent", f"{base}:holds", f"{base}:expiry"]

    def _limit_keys(self, subject: str) -> list[str]:
        base = f"{self._prefix}:rate:{subject}"
        return [f"{base}:rpm", f"{base}:tpm:times", f"{base}:tpm:tokens", f"{base}:tpm:total"]

    async def admit(
        self,
        principal: Principal,
        worst_case_nanousd: int,
        worst_case_tokens: int = 0,
        model: str = "",
    ) -> Reservation:
        """Check every rate limit and budget and hold, in one atomic script, or refuse."""
        day = period_start(Period.DAY, datetime.now(UTC))
        budgets = self.budgets_above(principal)
        held = tuple((b.scope, b.scope_id, b.period) for b in budgets)
        limits = principal.limits_for(model)
        reservation = Reservation(
            principal_scopes(principal),
            day,
            held,
            worst_case_nanousd,
            token=self._unique(),
            tpm_subjects=tuple(limit.subject for limit in limits if limit.tpm is not None),
        )
        if not budgets and not limits:
            return reservation
        keys = [k for limit in limits for k in self._limit_keys(limit.subject)]
        keys += [k for counter in held for k in self._keys(counter, day)]
        args: list[Any] = [
            worst_case_nanousd,
            reservation.token,
            self._ttl_ms,
            worst_case_tokens,
            len(limits),
        ]
        for limit in limits:
            args += [limit.rpm or 0, limit.tpm or 0]
        for budget in budgets:
            args += [budget.limit_nanousd, _PERIOD_TTL_S[budget.period]]
        try:
            for _ in range(len(budgets) + 1):
                status, *rest = await self._scripts.run(self._admit_script, keys, args)
                if status == 1:
                    reservation.headers = _admitted_headers(limits, [int(v) for v in rest])
                    return reservation
                if status == 2:
                    _, oldest_ms, now_ms = map(int, rest[1:])
                    raise rpm_refusal(limits[int(rest[0])], (oldest_ms + 60_000 - now_ms) / 1000)
                if status == 3:
                    used_tokens, oldest_ms, now_ms = map(int, rest[1:])
                    raise tpm_refusal(
                        limits[int(rest[0])],
                        used_tokens,
                        worst_case_tokens,
                        (oldest_ms + 60_000 - now_ms) / 1000,
                    )
                if status == 0:
                    raise self.refusal(budgets[int(rest[0])], int(rest[1]), worst_case_nanousd)
                await self._rebuild(held[int(rest[0])], day)
        except RedisError as exc:
            return self._on_failure(exc, reservation)
        raise _unavailable()

    async def _rebuild(self, counter: CounterKey, day: datetime) -> None:
        """Load a missing spend counter from the ledger (the source of truth)."""
        scope: Scope = (counter[0], counter[1])
        sums = await asyncio.to_thread(self.ledger_sums, scope, day)
        spent_key = self._keys(counter, day)[0]
        await self._redis.set(spent_key, sums[counter[2]], nx=True, ex=_PERIOD_TTL_S[counter[2]])

    def _on_failure(self, exc: RedisError, reservation: Reservation) -> Reservation:
        if self._failure_mode == "closed":
            log.error("admission check failed, refusing (fail closed): %s", type(exc).__name__)
            raise _unavailable() from None
        self.fail_open_admissions += 1
        log.warning("admission check failed, admitting (fail open): %s", type(exc).__name__)
        reservation.held, reservation.tpm_subjects = (), ()
        return reservation

    def settle(self, reservation: Reservation, actual_nanousd: int, actual_tokens: int = 0) -> None:
        """Queue the release, the real cost and the real tokens; a background task sends
        them in batches."""
        if reservation.settled:
            return
        reservation.settled = True
        if not reservation.held and not reservation.tpm_subjects:
            return
        keys = [k for s in reservation.tpm_subjects for k in self._limit_keys(s)[2:]]
        # Holds live under the admission day's keys; the cost goes to the period of now, as
        # the ledger row is dated now (a call admitted before midnight counts tomorrow).
        today = period_start(Period.DAY, datetime.now(UTC))
        for counter in reservation.held:
            keys.append(self._keys(counter, today)[0])
            keys += self._keys(counter, reservation.day)[1:]
        args = (reservation.token, actual_nanousd, actual_tokens, len(reservation.tpm_subjects))
        self._unsettled.append((keys, args))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._unsettled:
            batch, self._unsettled = (
                self._unsettled[:_SETTLE_BATCH],
                self._unsettled[_SETTLE_BATCH:],
            )
            try:
                await self._scripts.run_many(self._settle_script, batch)
            except RedisError as exc:
                # The holds expire on their own; the ledger rows count at the next rebuild.
                log.warning(
                    "budget settlement of %d calls failed: %s", len(batch), type(exc).__name__
                )

    async def spent_nanousd(self, scope: Scope, period: Period) -> int | None:
        """Settled spend in the current period, from Redis (``None`` if not tracked)."""
        day = period_start(Period.DAY, datetime.now(UTC))
        try:
            value = await self._redis.get(self._keys((*scope, period), day)[0])
        except RedisError:
            return None
        return None if value is None else int(value)

    async def aclose(self) -> None:
        """Send the settlements still queued, then close the connections."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()
        await self._scripts.aclose()
        await self._redis.aclose()

    @classmethod
    def from_url(cls, engine: Engine, url: str, **options: Any) -> RedisAdmissionGuard:
        """A guard on the Redis at ``url``: scripts on a lean pipelined connection, the
        rest (rebuilds, reads) on redis-py."""
        return cls(engine, connect(url), RespConnection(url), **options)
