"""Requests and tokens per minute per key: exact sliding windows.

Each limited key keeps its admitted requests of the last minute (at most
``rpm`` of them), so no 60-second window ever holds more than ``rpm`` requests
— unlike fixed windows, which let twice the limit through around a window
boundary. Tokens work like budgets: admission counts the request's worst case
(prompt bound plus ``max_tokens``) against ``tpm``, settlement replaces it with
the tokens really used. Refusals carry ``retry-after`` and OpenAI's
``x-ratelimit-*`` headers; admitted requests carry the same headers.
"""

from __future__ import annotations

import math
import time
from collections import deque

from llmplane.accounting.keys import Principal
from llmplane.errors import RateLimitError

_WINDOW_S = 60.0


def rpm_headers(limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    """OpenAI's request rate-limit headers."""
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(max(remaining, 0)),
        "x-ratelimit-reset-requests": f"{max(reset_s, 0.0):.3f}s",
    }


def rpm_refusal(limit: int, wait_s: float) -> RateLimitError:
    """The 429 for a key that already had ``limit`` requests in the last minute."""
    return RateLimitError(
        f"This key is limited to {limit} requests per minute; retry in {wait_s:.1f}s.",
        code="rate_limit_exceeded",
        headers={"retry-after": str(max(1, math.ceil(wait_s))), **rpm_headers(limit, 0, wait_s)},
    )


def tpm_headers(limit: int, remaining: int, reset_s: float) -> dict[str, str]:
    """OpenAI's token rate-limit headers."""
    return {
        "x-ratelimit-limit-tokens": str(limit),
        "x-ratelimit-remaining-tokens": str(max(remaining, 0)),
        "x-ratelimit-reset-tokens": f"{max(reset_s, 0.0):.3f}s",
    }


def tpm_refusal(limit: int, used: int, wanted: int, wait_s: float) -> RateLimitError:
    """The 429 for a request whose worst-case tokens do not fit the key's last minute."""
    return RateLimitError(
        f"This key is limited to {limit} tokens per minute; {max(limit - used, 0)} are left and "
        f"this request could use {wanted}. Lower max_tokens or retry in {wait_s:.1f}s.",
        code="rate_limit_exceeded",
        headers={
            "retry-after": str(max(1, math.ceil(wait_s))),
            **tpm_headers(limit, limit - used, wait_s),
        },
    )


class _TokenWindow:
    """One key's tokens in the last minute: [time, tokens] entries and their sum."""

    def __init__(self) -> None:
        self.entries: deque[list[float]] = deque()
        self.total = 0

    def purge(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - _WINDOW_S:
            self.total -= int(self.entries.popleft()[1])


class LocalRateLimiter:
    """One process's exact sliding window per key (the shared one lives in Redis)."""

    def __init__(self) -> None:
        self._admitted: dict[str, deque[float]] = {}
        self._tokens: dict[str, _TokenWindow] = {}

    def admit(
        self, principal: Principal, tokens: int = 0
    ) -> tuple[dict[str, str], list[float] | None]:
        """Count this request against the key's ``rpm`` and its worst-case ``tokens``
        against its ``tpm``; return the rate-limit headers and the token entry to settle.

        Raises :class:`RateLimitError` (with the same headers and ``retry-after``) when
        either window is full; then nothing is counted.
        """
        now = time.monotonic()
        headers: dict[str, str] = {}
        window: deque[float] | None = None
        if principal.rpm is not None:
            window = self._admitted.setdefault(principal.key_id, deque())
            while window and window[0] <= now - _WINDOW_S:
                window.popleft()
            if len(window) >= principal.rpm:
                raise rpm_refusal(principal.rpm, window[0] + _WINDOW_S - now)
        entry: list[float] | None = None
        if principal.tpm is not None:
            budget = self._tokens.setdefault(principal.key_id, _TokenWindow())
            budget.purge(now)
            if budget.total + tokens > principal.tpm:
                oldest = budget.entries[0][0] if budget.entries else now
                raise tpm_refusal(principal.tpm, budget.total, tokens, oldest + _WINDOW_S - now)
            entry = [now, float(tokens)]
            budget.entries.append(entry)
            budget.total += tokens
            headers.update(
                tpm_headers(
                    principal.tpm,
                    principal.tpm - budget.total,
                    budget.entries[0][0] + _WINDOW_S - now,
                )
            )
        if window is not None and principal.rpm is not None:
            window.append(now)
            headers.update(
                rpm_headers(principal.rpm, principal.rpm - len(window), window[0] + _WINDOW_S - now)
            )
        return headers, entry

    def settle_tokens(self, key_id: str, entry: list[float], actual: int) -> None:
        """Replace an admitted request's worst-case tokens with the tokens it used."""
        budget = self._tokens.get(key_id)
        if budget is None or entry[0] <= time.monotonic() - _WINDOW_S:
            return  # the entry has left the window already
        budget.total += actual - int(entry[1])
        entry[1] = float(actual)
