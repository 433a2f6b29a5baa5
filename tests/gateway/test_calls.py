"""The model caller in process: timeouts leave no task behind."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.engine import Engine

from llmplane.accounting.budgets import LocalAdmissionGuard
from llmplane.accounting.keys import Principal
from llmplane.accounting.ledger import UsageLedger
from llmplane.config.platform import parse_platform_config
from llmplane.errors import UpstreamTimeoutError
from llmplane.gateway.calls import CallContext, ModelCaller
from llmplane.gateway.providers.base import Endpoint
from llmplane.gateway.router import ModelRouter
from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import simulator_model


async def test_a_ttft_timeout_leaves_no_task_behind(
    engine: Engine, upstream_simulator: UpstreamSimulator
) -> None:
    config = parse_platform_config(
        {
            "models": [
                simulator_model(
                    "slow",
                    upstream_simulator.url,
                    routing={"retries": 0, "timeouts": {"ttft_s": 0.5}},
                )
            ]
        },
        file="test",
    )
    router = ModelRouter(config)
    ledger = UsageLedger(engine)
    ledger.start()
    caller = ModelCaller(router, ledger, LocalAdmissionGuard(engine))
    body = {"model": "slow", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    principal = Principal(key_id="k", name="k")
    await asyncio.sleep(0.05)
    baseline = len(asyncio.all_tasks())
    upstream_simulator.add_faults({"kind": "delay", "ms": 120_000, "count": 5})
    for i in range(5):
        ctx = CallContext(f"req-ttft-{i}", principal, "slow", Endpoint.CHAT, None, None)
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError):
            await caller.open_stream(ctx, dict(body))
        assert 0.45 <= time.monotonic() - started <= 1.0
    await asyncio.sleep(0.5)  # the ledger writer's batch window (0.2 s) closes
    assert len(asyncio.all_tasks()) == baseline  # nothing left waiting on the upstream
    await ledger.close()
    await router.aclose()


async def test_prompts_are_counted_only_where_a_limit_or_budget_looks(
    engine: Engine, upstream_simulator: UpstreamSimulator
) -> None:
    """Counting costs ~0.1 µs a token, so a caller without token limits or budgets skips
    it; one with a tpm limit reserves the counted prompt (the limit's headers show it)."""
    config = parse_platform_config(
        {"models": [simulator_model("m", upstream_simulator.url, model="gpt-4o")]},
        file="test",
    )
    router = ModelRouter(config)
    ledger = UsageLedger(engine)
    ledger.start()
    caller = ModelCaller(router, ledger, LocalAdmissionGuard(engine))
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi " * 50}]}
    anyone = Principal(key_id="k1", name="k1")
    free = CallContext("req-free", anyone, "m", Endpoint.CHAT, None, None)
    await caller.complete(free, dict(body))
    assert free.prompt_counts == {}  # nothing looked at a count, so none was made
    limited = CallContext(
        "req-limited", Principal(key_id="k2", name="k2", tpm=10_000), "m", Endpoint.CHAT, None, None
    )
    result = await caller.complete(limited, dict(body))
    [counted] = limited.prompt_counts.values()
    assert counted >= 50  # "hi " fifty times, plus the message overhead
    assert int(result.limit_headers["x-ratelimit-remaining-tokens"]) == 10_000 - counted - 5
    await ledger.close()
    await router.aclose()
