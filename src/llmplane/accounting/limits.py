"""Requests and tokens per minute per key, service, team and model within a team.

Each limited subject keeps its admitted requests of the last minute (at most
``rpm`` of them), so no 60-second window ever holds more than ``rpm`` requests
— unlike fixed windows, which let twice the limit through around a window
boundary. Tokens work like budgets: admission counts the request's worst case
(prompt bound plus ``max_tokens``) against ``tpm``, settlement replaces it with
the tokens really used. A request is admitted only if every limit above it
has room, and then counted against all of them. Refusals carry
``retry-after`` and OpenAI's ``x-ratelimit-*`` headers (of the limit that
refused); admitted requests carry the headers of the tightest limit.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from llmplane.errors import RateLimitError

_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Requests and/or tokens per minute on one subject.

    ``subject`` names the counters (``key:ID``, ``service:ID``, ``team:ID``,
    ``team:ID:model:NAME``); ``label`` names the limit in refusals.
    """

    subject: str
    label: str
    rpm: int | None = None
    tpm: int | None = None


def rpm_headers(limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    """OpenAI's request rate-limit headers."""
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(max(remaining, 0)),
        "x-ratelimit-reset-requests": f"{max(reset_s, 0.0):.3f}s",
    }


def rpm_refusal(limit: RateLimit, wait_s: float) -> RateLimitError:
    """The 429 for a subject that already had ``rpm`` requests in the last minute."""
    rpm = limit.rpm or 0
    return RateLimitError(
        f"This {limit.label} is limited to {rpm} requests per minute; retry in {wait_s:.1f}s.",
        code="rate_limit_exceeded",
        headers={"retry-after": str(max(1, math.ceil(wait_s))), **rpm_headers(rpm, 0, wait_s)},
    )


def tpm_headers(limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    """OpenAI's token rate-limit headers."""
    return {
        "x-ratelimit-limit-tokens": str(limit),
        "x-ratelimit-remaining-tokens": str(max(remaining, 0)),
        "x-ratelimit-reset-tokens": f"{max(reset_s, 0.0):.3f}s",
    }


def tpm_refusal(limit: RateLimit, used: int, wanted: int, wait_s: float) -> RateLimitError:
    """The 429 for a request whose worst-case tokens do not fit the subject's last minute."""
    tpm = limit.tpm or 0
    return RateLimitError(
        f"This {limit.label} is limited to {tpm} tokens per minute; {max(tpm - used, 0)} are "
        f"left and this request could use {wanted}. Lower max_tokens or retry in "
        f"{wait_s:.1f}s.",
        code="rate_limit_exceeded",
        headers={
            "retry-after": str(max(1, math.ceil(wait_s))),
            **tpm_headers(tpm, tpm - used, wait_s),
        },
    )


class TightestHeaders:
    """Collects each limit's state after admission; the reply shows the tightest."""

    __slots__ = ("requests", "tokens")

    def __init__(self) -> None:
        self.requests: tuple[int, int, float] | None = None  # limit, remaining, reset
        self.tokens: tuple[int, int, float] | None = None

    def request_state(self, limit: int, remaining: int, reset_s: float) -> None:
        """One rpm limit's state after counting this request."""
        if self.requests is None or remaining < self.requests[1]:
            self.requests = (limit, remaining, reset_s)

    def token_state(self, limit: int, remaining: int, reset_s: float) -> None:
        """One tpm limit's state after counting this request."""
        if self.tokens is None or remaining < self.tokens[1]:
            self.tokens = (limit, remaining, reset_s)

    def headers(self) -> dict[str, str]:
        """``x-ratelimit-*`` headers of the tightest rpm and tpm limits."""
        out: dict[str, str] = {}
        if self.requests is not None:
            out.update(rpm_headers(*self.requests))
        if self.tokens is not None:
            out.update(tpm_headers(*self.tokens))
        return out


class _TokenWindow:
    """One subject's tokens in the last minute: admission times and token counts in two
    deques (floats and ints, which the garbage collector does not track: a busy minute
    holds ~100k entries), numbered from ``first`` so that a settlement can find its own."""

    __slots__ = ("first", "times", "tokens", "total")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.tokens: deque[int] = deque()
        self.first = 0  # the number of the oldest entry still held
        self.total = 0

    def purge(self, now: float) -> None:
        times, tokens = self.times, self.tokens
        while times and times[0] <= now - _WINDOW_S:
            times.popleft()
            self.total -= tokens.popleft()
            self.first += 1

    def add(self, now: float, count: int) -> int:
        """Hold ``count`` tokens from ``now``; returns the entry's number."""
        self.times.append(now)
        self.tokens.append(count)
        self.total += count
        return self.first + len(self.times) - 1

    def replace(self, number: int, count: int) -> None:
        """Change an entry's tokens (a settlement), unless it has left the window."""
        back = number - self.first - len(self.tokens)  # from the right: settlements are recent
        if back >= 0 or number < self.first:
            return
        self.total += count - self.tokens[back]
        self.tokens[back] = count


TokenHold = tuple[str, int]  # subject, entry number in its token window


class LocalRateLimiter:
    """One process's exact sliding windows per subject (the shared ones live in Redis)."""

    def __init__(self) -> None:
        self._admitted: dict[str, deque[float]] = {}
        self._tokens: dict[str, _TokenWindow] = {}

    def admit(
        self, limits: Sequence[RateLimit], tokens: int = 0
    ) -> tuple[dict[str, str], list[TokenHold]]:
        """Count this request against every limit's ``rpm`` and its worst-case ``tokens``
        against every ``tpm``; return the rate-limit headers and the token holds to settle.

        Raises :class:`RateLimitError` (with headers and ``retry-after``) when any window
        is full; then nothing is counted anywhere.
        """
        if not limits:
            return {}, []
        now = time.monotonic()
        for limit in limits:
            if limit.rpm is not None:
                window = self._admitted.setdefault(limit.subject, deque())
                while window and window[0] <= now - _WINDOW_S:
                    window.popleft()
                if len(window) >= limit.rpm:
                    raise rpm_refusal(limit, window[0] + _WINDOW_S - now)
            if limit.tpm is not None:
                budget = self._tokens.setdefault(limit.subject, _TokenWindow())
                budget.purge(now)
                if budget.total + tokens > limit.tpm:
                    oldest = budget.times[0] if budget.times else now
                    raise tpm_refusal(limit, budget.total, tokens, oldest + _WINDOW_S - now)
        tightest = TightestHeaders()
        holds: list[TokenHold] = []
        for limit in limits:
            if limit.rpm is not None:
                window = self._admitted[limit.subject]
                window.append(now)
                tightest.request_state(
                    limit.rpm, limit.rpm - len(window), window[0] + _WINDOW_S - now
                )
            if limit.tpm is not None:
                budget = self._tokens[limit.subject]
                holds.append((limit.subject, budget.add(now, tokens)))
                tightest.token_state(
                    limit.tpm, limit.tpm - budget.total, budget.times[0] + _WINDOW_S - now
                )
        return tightest.headers(), holds

    def settle_tokens(self, holds: Sequence[TokenHold], actual: int) -> None:
        """Replace an admitted request's worst-case tokens with the tokens it used."""
        for subject, number in holds:
            budget = self._tokens.get(subject)
            if budget is not None:
                budget.replace(number, actual)
