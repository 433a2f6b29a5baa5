"""Requests-per-minute limits per key: an exact sliding window, in one process.

Each limited key keeps the times of its admitted requests in the last minute
(at most ``rpm`` of them), so no 60-second window ever holds more than
``rpm`` requests — unlike fixed windows, which let twice the limit through
around a window boundary. Refusals carry ``retry-after`` and OpenAI's
``x-ratelimit-*`` headers; admitted requests carry the same headers.
"""

from __future__ import annotations

import math
import time
from collections import deque

from llmplane.accounting.keys import Principal
from llmplane.errors import RateLimitError

_WINDOW_S = 60.0


class RequestRateLimiter:
    """Admits or refuses a request by its key's ``rpm``."""

    def __init__(self) -> None:
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, principal: Principal) -> dict[str, str]:
        """Count this request against the key's ``rpm`` and return the rate-limit headers.

        Raises :class:`RateLimitError` (with the same headers and ``retry-after``) when the
        key already had ``rpm`` requests in the last minute.
        """
        limit = principal.rpm
        if limit is None:
            return {}
        now = time.monotonic()
        window = self._admitted.get(principal.key_id)
        if window is None:
            window = self._admitted[principal.key_id] = deque()
        while window and window[0] <= now - _WINDOW_S:
            window.popleft()
        if len(window) >= limit:
            wait = window[0] + _WINDOW_S - now
            headers = {
                "retry-after": str(max(1, math.ceil(wait))),
                "x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{wait:.3f}s",
            }
            raise RateLimitError(
                f"This key is limited to {limit} requests per minute; retry in {wait:.1f}s.",
                code="rate_limit_exceeded",
                headers=headers,
            )
        window.append(now)
        reset = window[0] + _WINDOW_S - now
        return {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(limit - len(window)),
            "x-ratelimit-reset-requests": f"{reset:.3f}s",
        }
