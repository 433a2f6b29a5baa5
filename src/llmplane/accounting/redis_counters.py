"""Budgets and rate limits shared by every gateway replica: counters in Redis, atomic in Lua.

Each budget period has a spend counter (``…:spent``, rebuilt from the ledger
when missing — first use, or after Redis lost its data) and its open
reservations (a hash of amounts and a sorted set of expiry times). Admission
is one script that drops expired reservations, checks every budget above the
caller and, only if all have room, holds the worst case under each: no
replica can see a half-made reservation. Settlement is one script that
releases the hold and adds the real cost. Reservations of a crashed replica
expire after ``reservation_ttl_s``.

The same script first checks the key's rpm: its admitted requests of the last
minute live in a sorted set, so the limit holds exactly across replicas, and a
request is counted only if its budgets admit it too. Times come from Redis
itself. One round trip admits a call; settlements go out in pipelined batches.

When Redis cannot be reached, ``failure_mode`` decides: ``closed`` (default)
answers 503, ``open`` admits the call, logs it and counts it in
``fail_open_admissions``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any, Literal

from redis.asyncio import Redis
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
from llmplane.accounting.limits import rpm_headers, rpm_refusal, tpm_headers, tpm_refusal
from llmplane.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

FailureMode = Literal["closed", "open"]

# KEYS: the key's rpm window; its tpm window (times), tpm entries (tokens) and tpm total;
# then per budget its spent counter, holds hash and expiry set.
# ARGV: amount, reservation id, hold ttl (ms), rpm (0: none), tpm (0: none), tokens, then
# per budget its limit and key ttl (s).
# Returns {1, count, rpm_oldest_ms, now_ms, tokens_used, tpm_oldest_ms} admitted,
# {2, count, oldest_ms, now_ms} over the rpm, {3, used, oldest_ms, now_ms} over the tpm,
# {0, i, used} refused by budget i, {-1, i} counter i missing (rebuild it, call again).
_ADMIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local amount = tonumber(ARGV[1])
local rid = ARGV[2]
local rpm = tonumber(ARGV[4])
local tpm = tonumber(ARGV[5])
local tokens = tonumber(ARGV[6])
local count, oldest_ms = 0, now_ms
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - 60000)
  count = redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {2, count, tonumber(oldest[2]), now_ms}
  end
end
local used_tokens, tpm_oldest_ms = 0, now_ms
if tpm > 0 then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms - 60000)
  for _, id in ipairs(old) do
    local held = redis.call('HGET', KEYS[3], id)
    if held then redis.call('DECRBY', KEYS[4], held) end
  end
  if #old > 0 then
    redis.call('HDEL', KEYS[3], unpack(old))
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms - 60000)
  end
  used_tokens = tonumber(redis.call('GET', KEYS[4]) or '0')
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #oldest > 0 then tpm_oldest_ms = tonumber(oldest[2]) end
  if used_tokens + tokens > tpm then return {3, used_tokens, tpm_oldest_ms, now_ms} end
end
local n = (#KEYS - 4) / 3
for i = 0, n - 1 do
  local spent_key, holds, expiries = KEYS[5+i*3], KEYS[6+i*3], KEYS[7+i*3]
  local expired = redis.call('ZRANGEBYSCORE', expiries, '-inf', now_ms)
  if #expired > 0 then
    redis.call('HDEL', holds, unpack(expired))
    redis.call('ZREMRANGEBYSCORE', expiries, '-inf', now_ms)
  end
  local spent = redis.call('GET', spent_key)
  if not spent then return {-1, i} end
  local used = tonumber(spent)
  for _, held in ipairs(redis.call('HVALS', holds)) do used = used + tonumber(held) end
  if used + amount > tonumber(ARGV[7 + i*2]) then return {0, i, used} end
end
if rpm > 0 then
  redis.call('ZADD', KEYS[1], now_ms, rid)
  redis.call('PEXPIRE', KEYS[1], 60000)
  count = count + 1
  oldest_ms = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
end
if tpm > 0 then
  redis.call('ZADD', KEYS[2], now_ms, rid)
  redis.call('HSET', KEYS[3], rid, tokens)
  redis.call('INCRBY', KEYS[4], tokens)
  for k = 2, 4 do redis.call('PEXPIRE', KEYS[k], 60000) end
  used_tokens = used_tokens + tokens
  tpm_oldest_ms = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
end
for i = 0, n - 1 do
  local key_ttl = tonumber(ARGV[8 + i*2])
  redis.call('HSET', KEYS[6+i*3], rid, amount)
  redis.call('ZADD', KEYS[7+i*3], now_ms + tonumber(ARGV[3]), rid)
  redis.call('EXPIRE', KEYS[6+i*3], key_ttl)
  redis.call('EXPIRE', KEYS[7+i*3], key_ttl)
end
return {1, count, oldest_ms, now_ms, used_tokens, tpm_oldest_ms}
"""

# KEYS: the key's tpm entries and tpm total, then per budget spent counter, holds hash,
# expiry set. ARGV: reservation id, cost, tokens used.
_SETTLE = """
local rid = ARGV[1]
local cost = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local held_tokens = redis.call('HGET', KEYS[1], rid)
if held_tokens then
  redis.call('HSET', KEYS[1], rid, tokens)
  redis.call('INCRBY', KEYS[2], tokens - tonumber(held_tokens))
end
for i = 0, (#KEYS - 2) / 3 - 1 do
  local held = redis.call('HGET', KEYS[4+i*3], rid)
  redis.call('HDEL', KEYS[4+i*3], rid)
  redis.call('ZREM', KEYS[5+i*3], rid)
  if held and cost > 0 and redis.call('EXISTS', KEYS[3+i*3]) == 1 then
    redis.call('INCRBY', KEYS[3+i*3], cost)
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


def connect(url: str) -> Redis:
    """A client for ``LLMPLANE_REDIS_URL`` with short timeouts (failures are handled, not
    waited out)."""
    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


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
    settlements sent in batches (one pipeline per event-loop turn)."""

    def __init__(
        self,
        engine: Engine,
        redis: Redis,
        *,
        prefix: str = "llmplane",
        reservation_ttl_s: float = 900.0,
        failure_mode: FailureMode = "closed",
    ) -> None:
        super().__init__(engine)
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = int(reservation_ttl_s * 1000)
        self._failure_mode = failure_mode
        self._admit_script = redis.register_script(_ADMIT)
        self._settle_script = redis.register_script(_SETTLE)
        self._unsettled: list[tuple[list[str], str, int, int]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._unique = _Unique()
        self.fail_open_admissions = 0

    def _keys(self, key: CounterKey, day: datetime) -> list[str]:
        scope, scope_id, period = key
        start = period_start(period, day).date().isoformat()
        base = f"{self._prefix}:budget:{scope}:{scope_id}:{period.value}:{start}"
        return [f"{base}:spent", f"{base}:holds", f"{base}:expiry"]

    def _tpm_keys(self, key_id: str) -> list[str]:
        base = f"{self._prefix}:tpm:{key_id}"
        return [f"{base}:times", f"{base}:tokens", f"{base}:total"]

    async def admit(
        self, principal: Principal, worst_case_nanousd: int, worst_case_tokens: int = 0
    ) -> Reservation:
        """Check rpm, tpm and every budget and hold, in one atomic script, or refuse."""
        day = period_start(Period.DAY, datetime.now(UTC))
        budgets = self.budgets_above(principal)
        held = tuple((b.scope, b.scope_id, b.period) for b in budgets)
        rpm, tpm = principal.rpm or 0, principal.tpm or 0
        reservation = Reservation(
            principal_scopes(principal),
            day,
            held,
            worst_case_nanousd,
            token=self._unique(),
            key_id=principal.key_id,
            tokens=worst_case_tokens if tpm else 0,
        )
        if not budgets and not rpm and not tpm:
            return reservation
        keys = [f"{self._prefix}:rpm:{principal.key_id}", *self._tpm_keys(principal.key_id)]
        keys += [k for counter in held for k in self._keys(counter, day)]
        args: list[Any] = [
            worst_case_nanousd,
            reservation.token,
            self._ttl_ms,
            rpm,
            tpm,
            worst_case_tokens,
        ]
        for budget in budgets:
            args += [budget.limit_nanousd, _PERIOD_TTL_S[budget.period]]
        try:
            for _ in range(len(budgets) + 1):
                status, *rest = await self._admit_script(keys=keys, args=args)
                if status == 1:
                    count, oldest_ms, now_ms, used_tokens, tpm_oldest_ms = map(int, rest)
                    if rpm:
                        reservation.headers.update(
                            rpm_headers(rpm, rpm - count, (oldest_ms + 60_000 - now_ms) / 1000)
                        )
                    if tpm:
                        reservation.headers.update(
                            tpm_headers(
                                tpm, tpm - used_tokens, (tpm_oldest_ms + 60_000 - now_ms) / 1000
                            )
                        )
                    return reservation
                if status == 2:
                    _, oldest_ms, now_ms = map(int, rest)
                    raise rpm_refusal(rpm, (oldest_ms + 60_000 - now_ms) / 1000)
                if status == 3:
                    used_tokens, oldest_ms, now_ms = map(int, rest)
                    raise tpm_refusal(
                        tpm, used_tokens, worst_case_tokens, (oldest_ms + 60_000 - now_ms) / 1000
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
        reservation.held, reservation.tokens = (), 0
        return reservation

    def settle(self, reservation: Reservation, actual_nanousd: int, actual_tokens: int = 0) -> None:
        """Queue the release, the real cost and the real tokens; a background task sends
        them in batches."""
        if reservation.settled:
            return
        reservation.settled = True
        if not reservation.held and not reservation.tokens:
            return
        keys = self._tpm_keys(reservation.key_id)[1:]
        keys += [k for counter in reservation.held for k in self._keys(counter, reservation.day)]
        self._unsettled.append((keys, reservation.token, actual_nanousd, actual_tokens))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._unsettled:
            batch, self._unsettled = (
                self._unsettled[:_SETTLE_BATCH],
                self._unsettled[_SETTLE_BATCH:],
            )
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for keys, token, cost, tokens in batch:
                        await self._settle_script(
                            keys=keys, args=[token, cost, tokens], client=pipe
                        )
                    await pipe.execute()
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
        """Send the settlements still queued, then close the connection pool."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()
        await self._redis.aclose()
