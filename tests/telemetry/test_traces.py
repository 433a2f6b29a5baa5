"""Request traces: what every telemetry observer gets about each request, from a gateway
served in process (uvicorn in a thread) with a recording observer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from sqlalchemy import create_engine

from llmplane.config.platform import parse_platform_config
from llmplane.config.settings import Settings
from llmplane.gateway.app import build_services, create_app
from llmplane.store.db import migrate
from llmplane.telemetry import RequestTrace, Telemetry
from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, WRONG_KEY, openai_client, serve_in_process, simulator_model

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Recorder:
    traces: list[RequestTrace] = field(default_factory=list)
    fail: bool = False

    def request_finished(self, trace: RequestTrace) -> None:
        self.traces.append(trace)
        if self.fail:
            raise RuntimeError("a broken observer")

    def wait(self, count: int) -> list[RequestTrace]:
        deadline = time.monotonic() + 5
        while len(self.traces) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.traces


@pytest.fixture
def gateway(
    tmp_path: Path, upstream_simulator: UpstreamSimulator
) -> Iterator[tuple[str, Recorder]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'traces.db'}")
    migrate(engine)
    routing = {"retries": 1, "backoff": {"base_s": 0.01, "max_s": 0.02}}
    platform = parse_platform_config(
        {"models": [simulator_model("sim", upstream_simulator.url, routing=routing)]},
        file="test",
    )
    services = build_services(Settings(data_dir=tmp_path), platform, engine, ADMIN_KEY)
    recorder = Recorder()
    services.telemetry = Telemetry([recorder])
    with serve_in_process(create_app(services)) as url:
        yield f"{url}/v1", recorder
    engine.dispose()


def _client(base_url: str, key: str = ADMIN_KEY) -> openai.OpenAI:
    return openai_client(base_url=base_url, api_key=key, max_retries=0)


def test_a_call_is_traced_once_with_its_attempt(gateway: tuple[str, Recorder]) -> None:
    base_url, recorder = gateway
    _client(base_url).chat.completions.create(
        model="sim",
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"traceparent": TRACEPARENT, "x-request-id": "traced-1"},
    )
    [trace] = recorder.wait(1)
    assert (trace.request_id, trace.method, trace.path) == (
        "traced-1",
        "POST",
        "/v1/chat/completions",
    )
    assert (trace.operation, trace.model, trace.stream, trace.status) == (
        "chat.completions",
        "sim",
        False,
        200,
    )
    assert trace.traceparent == TRACEPARENT
    assert trace.principal is not None and trace.principal.is_admin
    [attempt] = trace.attempts
    assert attempt.status == 200 and attempt.completion_tokens > 0
    assert 0 < trace.duration_s < 5 and trace.error_type is None


def test_a_stream_is_traced_when_it_ends(
    gateway: tuple[str, Recorder], upstream_simulator: UpstreamSimulator
) -> None:
    base_url, recorder = gateway
    upstream_simulator.configure(tokens_per_second=20)  # ~0.5 s for the reply
    stream = _client(base_url).chat.completions.create(
        model="sim", stream=True, messages=[{"role": "user", "content": "one two three"}]
    )
    first = next(iter(stream))
    assert first.choices
    time.sleep(0.2)
    assert recorder.traces == []  # still streaming
    list(stream)
    [trace] = recorder.wait(1)
    assert trace.stream and trace.status == 200
    assert trace.served_by is not None and trace.served_by.completion_tokens > 0


def test_retries_are_attempts_of_one_trace(
    gateway: tuple[str, Recorder], upstream_simulator: UpstreamSimulator
) -> None:
    base_url, recorder = gateway
    upstream_simulator.add_faults({"kind": "status", "status": 500, "count": 1})
    _client(base_url).chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "retry me"}]
    )
    [trace] = recorder.wait(1)
    assert [a.status for a in trace.attempts] == [502, 200]
    assert [a.attempt for a in trace.attempts] == [0, 1]
    assert trace.status == 200


def test_refusals_are_traced_with_their_error(gateway: tuple[str, Recorder]) -> None:
    base_url, recorder = gateway
    with pytest.raises(openai.AuthenticationError):
        _client(base_url, key=WRONG_KEY).chat.completions.create(
            model="sim", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        _client(base_url).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    unknown, missing = recorder.wait(2)
    assert (unknown.status, unknown.error_type, unknown.principal) == (
        401,
        "authentication_error",
        None,
    )
    assert (missing.status, missing.error_type, missing.attempts) == (
        404,
        "invalid_request_error",
        [],
    )
    assert missing.model == "nope"  # a refused call is reported with what it asked for


def test_a_failing_observer_never_fails_the_request(gateway: tuple[str, Recorder]) -> None:
    base_url, recorder = gateway
    recorder.fail = True
    reply = _client(base_url).chat.completions.create(
        model="sim", messages=[{"role": "user", "content": "still fine"}]
    )
    assert reply.choices[0].message.content == "This is a mock reply to: still fine"
    assert len(recorder.wait(1)) == 1
