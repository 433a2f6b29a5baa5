"""Prompt and completion content in spans, as each team's policy allows: ``full`` keeps it
(never a platform key), ``redacted`` replaces PII and secrets, ``metadata`` and ``none``
keep none, and ``LLMPLANE_OTEL_CONTENT=false`` turns it off for everyone. Spans the
collector does not take are counted in the metrics."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from tests.helpers import ADMIN_KEY, GatewayProcess, http
from tests.telemetry.otlp import HttpReceiver, attributes

EMAIL = "jane.doe@example.com"
PROMPT = f"Mail {EMAIL} the summary."


def _team(gateway: GatewayProcess, bodies: str | None) -> str:
    name = f"spans-{bodies or 'default'}"
    body: dict[str, Any] = {"name": name}
    if bodies is not None:
        body["log_bodies"] = bodies
    status, _, team = http("POST", f"{gateway.url}/admin/teams", body)
    assert status == 201, team
    status, _, key = http("POST", f"{gateway.url}/admin/keys", {"name": name, "team": name})
    assert status == 201, key
    return str(key["key"])


def _call(gateway: GatewayProcess, key: str, request_id: str, *, stream: bool = False) -> str:
    body = {
        "model": "mock",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"{PROMPT} My key is {key}."},
        ],
        "stream": stream,
    }
    status, _, answer = http(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        body,
        key=key,
        headers={"x-request-id": request_id},
    )
    assert status == 200, answer
    if stream:
        chunks = [
            json.loads(line[6:]) for line in str(answer).splitlines() if line.startswith("data: {")
        ]
        return "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
    return str(answer["choices"][0]["message"]["content"])


def _spans_by_request(collector: HttpReceiver, count: int) -> dict[str, dict[str, Any]]:
    spans = collector.wait_for(count)
    found = {}
    for span in spans:
        attrs = attributes(span)
        found[attrs["llmplane.request_id"]] = attrs
    return found


def test_span_content_follows_each_teams_policy(tmp_path: Path) -> None:
    with HttpReceiver() as collector:
        gateway = GatewayProcess(tmp_path, env={"LLMPLANE_OTEL_ENDPOINT": collector.url})
        with gateway:
            keys = {bodies: _team(gateway, bodies) for bodies in ("full", "redacted", "metadata")}
            keys["none"] = _team(gateway, None)
            answers = {bodies: _call(gateway, key, f"c-{bodies}") for bodies, key in keys.items()}
            answers["stream"] = _call(gateway, keys["full"], "c-stream", stream=True)
        spans = _spans_by_request(collector, 5)

    full = spans["c-full"]
    assert json.loads(full["gen_ai.input.messages"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"{PROMPT} My key is <API_KEY>."},
    ]
    output = json.loads(full["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant"
    # The mock echoes the prompt: the key it repeats (spaced out) is scrubbed too.
    said, _, _ = answers["full"].partition("sk - lp")
    assert "example" in said
    assert output[0]["content"] == said + "<API_KEY> ."
    # A stream's answer is assembled into the same shape.
    streamed = json.loads(spans["c-stream"]["gen_ai.output.messages"])
    assert streamed[0]["content"] == answers["stream"].partition("sk - lp")[0] + "<API_KEY> ."

    redacted = json.loads(spans["c-redacted"]["gen_ai.input.messages"])
    assert redacted[1]["content"] == "Mail <EMAIL_ADDRESS> the summary. My key is <API_KEY>."
    for bodies in ("metadata", "none"):
        attrs = spans[f"c-{bodies}"]
        assert not any(name.startswith("gen_ai.input") for name in attrs), bodies
        assert "gen_ai.output.messages" not in attrs
        assert attrs["gen_ai.usage.input_tokens"] > 0  # the span itself is there
    everything = json.dumps(spans)
    for key in keys.values():
        assert key not in everything
    # In the prompts of the full call and the stream; never in the redacted one.
    assert everything.count(EMAIL) == 2


def test_content_can_be_kept_out_of_spans_for_everyone(tmp_path: Path) -> None:
    with HttpReceiver() as collector:
        env = {"LLMPLANE_OTEL_ENDPOINT": collector.url, "LLMPLANE_OTEL_CONTENT": "false"}
        with GatewayProcess(tmp_path, env=env) as gateway:
            _call(gateway, _team(gateway, "full"), "c-off")
            # The team's stored log still has the body: only spans leave it out.
            http("GET", f"{gateway.url}/admin/spend")
        attrs = _spans_by_request(collector, 1)["c-off"]
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_spans_the_collector_does_not_take_are_counted(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {
        "LLMPLANE_OTEL_ENDPOINT": dead,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    with GatewayProcess(tmp_path, env=env) as gateway:
        key = _team(gateway, None)
        for n in range(3):
            _call(gateway, key, f"dead-{n}")
        failed = 0.0
        for _ in range(100):
            status, _, text = http("GET", f"{gateway.url}/metrics", key=ADMIN_KEY)
            assert status == 200
            failed = _metric(str(text), "llmplane_spans_failed")
            if failed >= 3:
                break
            time.sleep(0.1)
        assert failed >= 3  # the calls and the admin requests before them
        assert _metric(str(text), "llmplane_spans_dropped") == 0
        assert _metric(str(text), "llmplane_spans_queue_depth") == 0
