"""Every refusal is OpenAI-shaped, has the right status and leaks nothing."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, PROVIDER_KEY, WRONG_KEY, GatewayProcess, http, openai_client

CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}


def _chat(
    gateway: GatewayProcess,
    body: bytes | dict[str, Any],
    key: str | None = ADMIN_KEY,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    return http("POST", f"{gateway.base_url}/chat/completions", body, key, headers)


def _assert_openai_error(body: Any, code: str | None = None) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


@pytest.mark.parametrize(
    ("key", "code"),
    [(None, "invalid_api_key"), (WRONG_KEY, "invalid_api_key"), ("", None)],
    ids=["none", "wrong", "empty"],
)
def test_missing_or_bad_key_is_401(
    gateway: GatewayProcess, key: str | None, code: str | None
) -> None:
    status, _, body = _chat(gateway, CHAT, key=key or None)
    assert status == 401
    error = _assert_openai_error(body, "invalid_api_key")
    assert error["type"] == "authentication_error"
    assert WRONG_KEY not in json.dumps(body)


def test_unknown_model_is_404(gateway: GatewayProcess) -> None:
    status, _, body = _chat(gateway, {**CHAT, "model": "gpt-17"})
    assert status == 404
    assert _assert_openai_error(body, "model_not_found")["param"] == "model"


def test_sdk_raises_typed_errors(gateway: GatewayProcess) -> None:
    client = openai_client(base_url=gateway.base_url, api_key=WRONG_KEY, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    admin = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        admin.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "mock", "messages": "hello"}, "messages"),
        ({"model": "mock", "messages": []}, "messages"),
        ({"model": "mock", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({**CHAT, "stream": "yes"}, "stream"),
        ({**CHAT, "max_tokens": "10"}, "max_tokens"),
        ({**CHAT, "max_tokens": 0}, "max_tokens"),
        ({**CHAT, "n": True}, "n"),
        ({**CHAT, "temperature": 7}, "temperature"),
        ({**CHAT, "stop": [1]}, "stop"),
        ({**CHAT, "tool_choice": "sometimes"}, "tool_choice"),
        ({**CHAT, "response_format": {"type": "xml"}}, "response_format"),
        ({**CHAT, "stream_options": {"include_usage": "yes"}}, "stream_options"),
        ({**CHAT, "api_base": "http://169.254.169.254/latest"}, "api_base"),
        ({**CHAT, "api_key": WRONG_KEY}, "api_key"),
    ],
)
def test_malformed_requests_are_400(gateway: GatewayProcess, body: Any, param: str | None) -> None:
    status, _, answer = _chat(gateway, body)
    assert status == 400, answer
    error = _assert_openai_error(answer)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_bad_embeddings_input_is_400(gateway: GatewayProcess) -> None:
    for body in (
        {"model": "mock-embed", "input": ""},
        {"model": "mock-embed", "input": [1.5]},
        {"model": "mock-embed", "input": "x", "encoding_format": "hex"},
    ):
        status, _, answer = http("POST", f"{gateway.base_url}/embeddings", body)
        assert status == 400
        _assert_openai_error(answer)


def test_body_over_limit_is_413(gateway: GatewayProcess) -> None:
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * 70_000}]}
    status, _, body = _chat(gateway, huge)
    assert status == 413
    _assert_openai_error(body, "request_too_large")


def test_unknown_route_and_method(gateway: GatewayProcess) -> None:
    status, _, body = http("GET", f"{gateway.url}/v1/nothing-here")
    assert status == 404
    _assert_openai_error(body)
    status, _, body = http("GET", f"{gateway.base_url}/chat/completions")
    assert status == 405
    _assert_openai_error(body, "method_not_allowed")


def test_upstream_5xx_is_502_without_leaking_the_provider_key(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 500, "message": f"boom {PROVIDER_KEY}"})
    status, _, body = _chat(gateway, {**CHAT, "model": "sim"})
    assert status == 502
    _assert_openai_error(body, "upstream_error")
    assert PROVIDER_KEY not in json.dumps(body)


def test_upstream_auth_failure_is_502_and_names_no_key(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults(
        {
            "kind": "status",
            "status": 401,
            "message": f"Incorrect API key provided: {PROVIDER_KEY}",
        }
    )
    status, _, body = _chat(gateway, {**CHAT, "model": "sim"})
    assert status == 502
    _assert_openai_error(body, "upstream_auth_failed")
    assert PROVIDER_KEY not in json.dumps(body)


def test_upstream_400_is_passed_on(gateway: GatewayProcess, sim: UpstreamSimulator) -> None:
    sim.add_faults({"kind": "status", "status": 400, "message": "temperature too spicy"})
    status, _, body = _chat(gateway, {**CHAT, "model": "sim"})
    assert status == 400
    assert _assert_openai_error(body)["message"] == "temperature too spicy"


def test_upstream_429_keeps_retry_after(gateway: GatewayProcess, sim: UpstreamSimulator) -> None:
    sim.add_faults({"kind": "status", "status": 429, "retry_after": 7})
    status, headers, body = _chat(gateway, {**CHAT, "model": "sim"})
    assert status == 429
    assert headers["retry-after"] == "7"
    _assert_openai_error(body, "upstream_rate_limited")


def test_upstream_unreachable_is_503(gateway: GatewayProcess) -> None:
    status, _, body = _chat(gateway, {**CHAT, "model": "down"})
    assert status == 503
    _assert_openai_error(body, "upstream_unavailable")


def test_upstream_dropped_connection_is_502(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "drop"})
    status, _, body = _chat(gateway, {**CHAT, "model": "sim"})
    assert status == 502
    _assert_openai_error(body, "upstream_disconnected")


def test_upstream_timeout_is_504(gateway: GatewayProcess, sim: UpstreamSimulator) -> None:
    sim.add_faults({"kind": "delay", "ms": 1500})
    status, _, body = _chat(gateway, {**CHAT, "model": "sim-slow"})
    assert status == 504
    _assert_openai_error(body, "upstream_timeout")


def test_stream_broken_midway_ends_with_an_error_event(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "break_stream", "after_chunks": 3})
    client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)
    received = []
    with pytest.raises(openai.APIError, match="broke off"):
        for chunk in client.chat.completions.create(
            model="sim",
            messages=[{"role": "user", "content": "a long answer please"}],
            stream=True,
        ):
            received.append(chunk)
    assert len(received) == 3


def test_stream_error_before_first_byte_is_a_plain_error(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "status", "status": 503})
    status, _, body = _chat(gateway, {**CHAT, "model": "sim", "stream": True})
    assert status == 502
    _assert_openai_error(body)


def test_request_id_is_honoured_or_generated(gateway: GatewayProcess) -> None:
    _, headers, _ = _chat(gateway, CHAT, headers={"x-request-id": "trace-abc.123"})
    assert headers["x-request-id"] == "trace-abc.123"
    _, headers, _ = _chat(gateway, CHAT, headers={"x-request-id": "bad id\twith spaces"})
    assert headers["x-request-id"].startswith("req_")
    status, headers, _ = _chat(gateway, {**CHAT, "model": "nope"})
    assert status == 404 and headers["x-request-id"].startswith("req_")


def test_health_endpoints(gateway: GatewayProcess) -> None:
    assert http("GET", f"{gateway.url}/health/live", key=None)[0] == 200
    status, _, body = http("GET", f"{gateway.url}/health/ready", key=None)
    assert status == 200 and body["status"] == "ok"


def test_stream_that_breaks_before_any_event_is_a_plain_error(
    gateway: GatewayProcess, sim: UpstreamSimulator
) -> None:
    sim.add_faults({"kind": "break_stream", "after_chunks": 0})
    status, _, body = _chat(gateway, {**CHAT, "model": "sim", "stream": True})
    assert status == 502
    _assert_openai_error(body, "upstream_disconnected")
