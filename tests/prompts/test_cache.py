"""The gateway's prompt cache: a request that finds its prompt cached reads no store, a
miss is cached too, and entries live for the TTL (label moves in this process invalidate
them at once)."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.engine import Engine

from llmplane import prompts
from llmplane.accounting.keys import Principal
from llmplane.errors import NotFoundError
from llmplane.prompts import PromptContent, PromptResolver

ADMIN = Principal(key_id="key_admin", name="admin", is_admin=True)


class CountingResolver(PromptResolver):
    """Counts the store reads."""

    loads = 0

    def _load(self, name: str, label: str | None, version: int | None):  # type: ignore[no-untyped-def]
        self.loads += 1
        return super()._load(name, label, version)


def test_hits_read_no_store_and_misses_are_cached_for_the_ttl(engine: Engine) -> None:
    prompts.create_version(engine, ADMIN, "cached", PromptContent("Hi there"))
    prompts.set_label(engine, ADMIN, "cached", "production", 1)
    resolver = CountingResolver(engine, ttl_s=0.2)

    async def run() -> None:
        first = await resolver.resolve(ADMIN, "cached")
        # No label and the default label are one entry.
        again = await resolver.resolve(ADMIN, "cached", label="production")
        assert first is again and resolver.loads == 1
        for _ in range(2):
            with pytest.raises(NotFoundError):
                await resolver.resolve(ADMIN, "missing")
        assert resolver.loads == 2
        time.sleep(0.25)
        await resolver.resolve(ADMIN, "cached")
        assert resolver.loads == 3
        resolver.invalidate("cached")
        await resolver.resolve(ADMIN, "cached")
        assert resolver.loads == 4

    asyncio.run(run())
