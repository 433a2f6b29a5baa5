"""Routing strategies and circuit breaking of the model router (no network)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from llmplane.config.platform import parse_platform_config
from llmplane.gateway.router import ModelRouter


def _router(**model: Any) -> ModelRouter:
    deployments = model.pop(
        "deployments",
        [{"provider": "mock", "name": n} for n in ("a", "b", "c")],
    )
    config = parse_platform_config(
        {"models": [{"name": "m", "deployments": deployments, **model}]}, file="test"
    )
    return ModelRouter(config)


def test_weighted_prefers_heavier_deployments_in_proportion() -> None:
    router = _router(
        deployments=[
            {"provider": "mock", "name": "heavy", "weight": 3},
            {"provider": "mock", "name": "light", "weight": 1},
        ]
    )
    firsts = Counter(router.candidates("m")[0].id for _ in range(4000))
    assert 0.70 <= firsts["heavy"] / 4000 <= 0.80  # 3 : 1


def test_least_inflight_picks_the_least_busy() -> None:
    router = _router(strategy="least_inflight")
    a, _, c = router.deployments("m")
    for _ in range(2):
        router.started(a)
    router.started(c)
    assert [d.id for d in router.candidates("m")] == ["b", "c", "a"]


def test_lowest_latency_measures_each_then_prefers_the_fastest() -> None:
    router = _router(strategy="lowest_latency")
    a, b, _ = router.deployments("m")
    for deployment, ttft in ((a, 0.5), (b, 0.1)):
        router.started(deployment)
        router.succeeded(deployment, ttft)
    assert [d.id for d in router.candidates("m")] == ["c", "b", "a"]  # c is unmeasured


def test_lowest_latency_ranks_by_time_to_first_token_not_whole_answers() -> None:
    """A long non-streaming answer says little about how soon a deployment starts: once a
    stream measured a deployment's time to first token, that is what ranks it."""
    router = _router(strategy="lowest_latency")
    a, b, c = router.deployments("m")
    router.started(a)
    router.ended(a, 200, latency_s=4.0)  # a long answer, not streamed
    router.started(a)
    router.ended(a, 200, ttft_s=0.05)  # its streams start fast
    router.started(b)
    router.ended(b, 200, ttft_s=0.3)
    router.started(c)
    router.ended(c, 200, latency_s=0.2)  # only whole answers measured: an upper bound
    assert [d.id for d in router.candidates("m")] == ["a", "c", "b"]


def test_a_client_error_ends_only_its_own_probe() -> None:
    """During half-open one call probes; another call (started before the cooldown) ending
    in a client error must not let a second probe in."""
    router = _router(cooldown={"failures": 1, "window_s": 10, "cooldown_s": 0.1})
    a = router.deployments("m")[0]
    assert router.started(a) is False  # in flight before the failure below
    router.started(a)
    router.failed(a, None)
    time.sleep(0.15)
    probe = router.started(a)
    assert probe is True
    router.ended(a, 400)  # the older call: the client's own error, not the probe
    assert "a" not in [d.id for d in router.candidates("m")]  # still one probe at a time
    router.ended(a, 400, probe=probe)
    assert "a" in [d.id for d in router.candidates("m")]  # the probe ended: another may try


def test_lowest_cost_uses_each_deployments_price() -> None:
    upstream = {"provider": "openai", "api_base": "https://api.openai.com/v1"}  # never called
    router = _router(
        strategy="lowest_cost",
        deployments=[
            {**upstream, "name": "dear", "model": "gpt-4o"},
            {**upstream, "name": "cheap", "model": "gpt-4o-mini"},
        ],
    )
    assert [d.id for d in router.candidates("m")] == ["cheap", "dear"]


def test_failures_open_the_circuit_and_a_probe_closes_it() -> None:
    router = _router(cooldown={"failures": 2, "window_s": 10, "cooldown_s": 0.2})
    a = router.deployments("m")[0]
    for _ in range(2):
        router.started(a)
        router.failed(a, None)
    assert "a" not in [d.id for d in router.candidates("m")]
    time.sleep(0.25)
    assert "a" in [d.id for d in router.candidates("m")]  # half open
    router.started(a)  # the probe
    assert "a" not in [d.id for d in router.candidates("m")]  # one probe at a time
    router.succeeded(a, 0.01)
    assert "a" in [d.id for d in router.candidates("m")]
    assert a.health.cooldowns == 1


def test_a_failed_probe_cools_down_again_and_retry_after_pauses() -> None:
    router = _router(cooldown={"failures": 1, "window_s": 10, "cooldown_s": 0.1})
    a, b, _ = router.deployments("m")
    router.started(a)
    router.failed(a, None)
    time.sleep(0.15)
    router.started(a)  # probe
    router.failed(a, None)
    assert "a" not in [d.id for d in router.candidates("m")]
    router.started(b)
    router.failed(b, 5.0)  # asked for 5 s
    assert b.health.cooldown_until - time.monotonic() > 4.5


def test_when_every_deployment_is_cooling_the_first_to_recover_is_offered() -> None:
    router = _router(cooldown={"failures": 1, "window_s": 10, "cooldown_s": 30})
    a, b, c = router.deployments("m")
    for deployment, pause in ((a, 50.0), (b, 40.0), (c, 60.0)):
        router.started(deployment)
        router.failed(deployment, pause)
    assert [d.id for d in router.candidates("m")] == ["b"]
