"""Time-ordered identifiers (sortable, unguessable), used for every record and request."""

from __future__ import annotations

import os
import time


def new_id(prefix: str) -> str:
    """``prefix_`` + 48-bit millisecond time + 80 random bits, in hex (sorts by creation)."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
