"""Time-ordered identifiers, unique across processes, used for every record and request.

``prefix_`` + 48-bit millisecond time + a 48-bit random tag drawn once per
process (again after a fork) + a 32-bit per-process counter, in hex: ids sort
by creation time and cost no system call on the request path.
"""

from __future__ import annotations

import itertools
import os
import time

_tag = os.urandom(6).hex()
_counter = itertools.count()


def _reseed() -> None:
    global _tag, _counter  # per-process state, reset in the forked child
    _tag = os.urandom(6).hex()
    _counter = itertools.count()


os.register_at_fork(after_in_child=_reseed)


def new_id(prefix: str) -> str:
    """A new id such as ``req_019…``; later ids of one process sort after earlier ones."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{_tag}{next(_counter) & 0xFFFFFFFF:08x}"
