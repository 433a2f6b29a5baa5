"""Prometheus metrics after a known burst of traffic through a gateway served in process:
counts exact, tokens and cost equal to the ledger's sums, no key or id in the labels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from llmplane.config.platform import parse_platform_config
from llmplane.config.settings import Settings
from llmplane.gateway.app import build_services, create_app
from llmplane.store.db import migrate
from llmplane.telemetry import RequestTrace, Telemetry
from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import (
    ADMIN_KEY,
    PROVIDER_KEY,
    WRONG_KEY,
    free_port,
    http,
    openai_client,
    serve_in_process,
    simulator_model,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CHAT = "chat.completions"


@dataclass
class Recorder:
    traces: list[RequestTrace] = field(default_factory=list)

    def request_finished(self, trace: RequestTrace) -> None:
        self.traces.append(trace)


@dataclass
class Gateway:
    url: str
    scrape_url: str
    recorder: Recorder
    engine: Any


@pytest.fixture
def gateway(tmp_path: Path, upstream_simulator: UpstreamSimulator) -> Iterator[Gateway]:
    engine = create_engine(f"sqlite:///{tmp_path / 'metrics.db'}")
    migrate(engine)
    url = upstream_simulator.url
    backoff = {"base_s": 0.01, "max_s": 0.02}
    platform = parse_platform_config(
        {
            "models": [
                simulator_model(
                    "sim", url, model="up-sim", routing={"retries": 1, "fallbacks": ["backup"]}
                ),
                simulator_model("backup", url, model="up-backup"),
                simulator_model(
                    "solo",
                    url,
                    model="up-solo",
                    routing={"retries": 1, "backoff": backoff, "cooldown": {"failures": 1}},
                ),
            ]
        },
        file="test",
    )
    scrape_port = free_port()
    settings = Settings(data_dir=tmp_path, metrics_port=scrape_port)
    services = build_services(settings, platform, engine, ADMIN_KEY)
    assert services.metrics is not None
    recorder = Recorder()
    services.telemetry = Telemetry([services.metrics, recorder])
    with serve_in_process(create_app(services)) as url:
        yield Gateway(url, f"http://127.0.0.1:{scrape_port}/metrics", recorder, engine)
    engine.dispose()


def _chat(gateway: Gateway, key: str, model: str = "sim", **extra: Any) -> Any:
    client = openai_client(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "count me"}], **extra
    )


def _samples(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]  # a missing series fails the test


def _ledger(gateway: Gateway, rows: int) -> list[Any]:
    """The ledger's sums per team, model and deployment, once ``rows`` rows are written."""
    deadline = time.monotonic() + 10
    with gateway.engine.connect() as connection:
        while time.monotonic() < deadline:
            count = connection.execute(text("SELECT count(*) FROM usage_ledger")).scalar_one()
            if count >= rows:
                break
            time.sleep(0.05)
        assert count == rows
        return list(
            connection.execute(
                text(
                    "SELECT team_id, model, deployment, sum(prompt_tokens), "
                    "sum(completion_tokens), sum(cached_tokens), sum(cost_nanousd), count(*) "
                    "FROM usage_ledger GROUP BY team_id, model, deployment"
                )
            )
        )


def test_a_known_burst_is_counted_exactly(
    gateway: Gateway, upstream_simulator: UpstreamSimulator
) -> None:
    _, _, team = http("POST", f"{gateway.url}/admin/teams", {"name": "metrics-team"})
    team_id = team["id"]
    created = [
        http("POST", f"{gateway.url}/admin/keys", {"name": name, "team": "metrics-team", **extra})[
            2
        ]
        for name, extra in [
            ("member", {}),
            ("limited", {"rpm": 1}),
            ("broke", {"budget_usd": 0}),
        ]
    ]
    member, limited, broke = (k["key"] for k in created)

    for _ in range(3):
        _chat(gateway, member)
    list(_chat(gateway, member, stream=True))  # one stream: a time to first token
    _chat(gateway, limited)
    with pytest.raises(openai.RateLimitError):
        _chat(gateway, limited)
    with pytest.raises(openai.RateLimitError):
        _chat(gateway, broke)
    with pytest.raises(openai.AuthenticationError):
        _chat(gateway, WRONG_KEY)
    upstream_simulator.add_faults({"kind": "status", "status": 500, "count": 1, "model": "up-sim"})
    _chat(gateway, ADMIN_KEY)  # sim fails once: served by its fallback
    upstream_simulator.add_faults({"kind": "status", "status": 500, "count": 1, "model": "up-solo"})
    _chat(gateway, ADMIN_KEY, model="solo")  # solo fails once: retried, cooled down
    status, _, _ = http("GET", f"{gateway.url}/metrics", key=member)
    assert status == 403

    rows = _ledger(gateway, 9)
    status, headers, exposition = http("GET", f"{gateway.url}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    samples = _samples(exposition)
    requests = "llmplane_requests_total"

    def counted(**labels: str) -> float:
        return _value(samples, requests, **labels)

    ok, refused = {"status_class": "2xx", "error_type": "none"}, {"status_class": "4xx"}
    assert counted(operation=CHAT, model="sim", team=team_id, **ok) == 5
    assert counted(operation=CHAT, model="sim", team="none", **ok) == 1
    assert counted(operation=CHAT, model="solo", team="none", **ok) == 1
    limit, quota = "rate_limit_error", "insufficient_quota"
    assert counted(operation=CHAT, model="sim", team=team_id, error_type=limit, **refused) == 1
    assert counted(operation=CHAT, model="sim", team=team_id, error_type=quota, **refused) == 1
    auth, denied = "authentication_error", "permission_error"
    assert counted(operation="none", model="none", team="none", error_type=auth, **refused) == 1
    assert counted(operation="none", model="none", team="none", error_type=denied, **refused) == 1
    assert counted(operation="none", model="none", team="none", **ok) == 4  # admin calls
    assert sum(v for (name, _), v in samples.items() if name == requests) == 15

    refusals = "llmplane_refusals_total"
    assert _value(samples, refusals, team=team_id, reason="rate_limit") == 1
    assert _value(samples, refusals, team=team_id, reason="budget") == 1

    deployments = {row[1]: row[2] for row in rows}
    sim, backup, solo = deployments["sim"], deployments["backup"], deployments["solo"]
    attempts = "llmplane_attempts_total"
    assert _value(samples, attempts, model="sim", deployment=sim, status_class="2xx") == 5
    assert _value(samples, attempts, model="sim", deployment=sim, status_class="5xx") == 1
    assert _value(samples, attempts, model="backup", deployment=backup, status_class="2xx") == 1
    assert _value(samples, attempts, model="solo", deployment=solo, status_class="5xx") == 1
    assert _value(samples, attempts, model="solo", deployment=solo, status_class="2xx") == 1
    assert sum(v for (name, _), v in samples.items() if name == attempts) == 9
    assert _value(samples, "llmplane_retries_total", model="solo", deployment=solo) == 1
    assert (
        "llmplane_retries_total",
        frozenset({"model": "sim", "deployment": sim}.items()),
    ) not in samples
    assert _value(samples, "llmplane_fallbacks_total", model="sim", fallback_model="backup") == 1

    for team, model, deployment, prompt, completion, cached, cost, _ in rows:
        labels = {"team": team or "none", "model": model, "deployment": deployment}
        tokens = "llmplane_tokens_total"
        assert _value(samples, tokens, kind="prompt", **labels) == prompt
        assert _value(samples, tokens, kind="completion", **labels) == completion
        assert _value(samples, tokens, kind="cached", **labels) == cached
        assert _value(samples, "llmplane_cost_usd_total", **labels) == cost / 1e9
    assert sum(row[4] for row in rows) > 0 and sum(row[6] for row in rows) > 0

    model_calls = [t for t in gateway.recorder.traces if t.operation is not None]
    duration = "llmplane_request_duration_seconds"
    by_deployment: dict[tuple[str, str], list[float]] = {}
    for trace in model_calls:
        served = trace.attempts[-1].deployment if trace.attempts else "none"
        by_deployment.setdefault((trace.model or "", served), []).append(trace.duration_s)
    assert len(by_deployment["sim", sim]) == 5
    for (model, deployment), durations in by_deployment.items():
        labels = {"operation": CHAT, "model": model, "deployment": deployment}
        assert _value(samples, f"{duration}_count", **labels) == len(durations)
        assert _value(samples, f"{duration}_sum", **labels) == pytest.approx(
            sum(durations), rel=1e-12
        )
    [stream] = [t for t in model_calls if t.stream]
    ttft_ms = stream.attempts[0].ttft_ms
    assert ttft_ms is not None
    ttft = "llmplane_time_to_first_token_seconds"
    assert _value(samples, f"{ttft}_count", model="sim", deployment=sim) == 1
    assert _value(samples, f"{ttft}_sum", model="sim", deployment=sim) == ttft_ms / 1000

    state = {"model": "solo", "deployment": solo}
    assert _value(samples, "llmplane_deployment_cooldowns_total", **state) == 1
    assert _value(samples, "llmplane_deployment_cooling_down", **state) == 0  # it recovered
    assert _value(samples, "llmplane_deployment_in_flight", **state) == 0
    assert _value(samples, "llmplane_ledger_queue_depth") == 0
    assert _value(samples, "llmplane_ledger_dropped_rows_total") == 0

    secrets = [ADMIN_KEY, PROVIDER_KEY, *(k["key"] for k in created)]
    identities = [*(k["id"] for k in created), *(t.request_id for t in gateway.recorder.traces)]
    for secret in secrets + identities:
        assert secret not in exposition


def test_the_metrics_port_answers_scrapers_without_a_key(gateway: Gateway) -> None:
    _chat(gateway, ADMIN_KEY)
    status, _, scraped = http("GET", gateway.scrape_url, key=None)
    assert status == 200
    samples = _samples(scraped)
    ok = {"status_class": "2xx", "error_type": "none", "team": "none"}
    assert _value(samples, "llmplane_requests_total", operation=CHAT, model="sim", **ok) == 1
    status, _, _ = http("GET", f"{gateway.url}/metrics", key=None)
    assert status == 401  # the gateway's own /metrics still needs the admin key


def test_made_up_model_names_share_one_label_value(gateway: Gateway) -> None:
    """A client can send any model name; each must not become a series of its own."""
    for name in ("made-up-1", "made-up-2", "made-up-3"):
        with pytest.raises(openai.NotFoundError):
            _chat(gateway, ADMIN_KEY, model=name)
    exposition = http("GET", gateway.scrape_url, key=None)[2]
    assert "made-up" not in exposition
    samples = _samples(exposition)
    missing = {"status_class": "4xx", "error_type": "invalid_request_error", "team": "none"}
    assert _value(samples, "llmplane_requests_total", operation=CHAT, model="other", **missing) == 3


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'off.db'}")
    migrate(engine)
    platform = parse_platform_config({"models": []}, file="test")
    settings = Settings(data_dir=tmp_path, metrics=False, request_log=False, stored_logs=False)
    services = build_services(settings, platform, engine, ADMIN_KEY)
    # With no other observer (request log and stored request logs off, no OTLP endpoint) no
    # trace is even made.
    assert services.metrics is None and not services.telemetry.enabled
    with TestClient(create_app(services)) as client:
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "metrics_off"
    engine.dispose()
