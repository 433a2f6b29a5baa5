"""The upstream simulator over real HTTP: endpoints, faults, settings and the control API."""

from __future__ import annotations

import asyncio
import base64
import math
import signal
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from multidict import CIMultiDictProxy

from llmplane.testing.upstream import FaultSpecError, UpstreamSimulator

QUESTION = "hello simulator"
ANSWER = "This is a mock reply to: hello simulator"
CHAT = {"model": "sim-model", "messages": [{"role": "user", "content": QUESTION}]}
STREAM = {**CHAT, "stream": True}
STREAM_WITH_USAGE = {**STREAM, "stream_options": {"include_usage": True}}
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(sim: UpstreamSimulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim.url, api_key="x", max_retries=0) as sdk:
        yield sdk


def sse_data(text: str) -> list[str]:
    """The ``data`` of each server-sent event in ``text``."""
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    async with http.post(url, json=body, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


# -- endpoints -------------------------------------------------------------------------


def test_chat_completion_is_answered_by_the_mock_model(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="sim-model", messages=CHAT["messages"])
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == "sim-model"
    assert reply.choices[0].message.content == ANSWER
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_completion_ids_are_unique(client: openai.OpenAI) -> None:
    ids = {client.chat.completions.create(**CHAT).id for _ in range(3)}
    assert len(ids) == 3


def test_stream_ends_with_the_usage_chunk_when_asked(client: openai.OpenAI) -> None:
    with client.chat.completions.create(**STREAM_WITH_USAGE) as stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_is_sse_without_usage_unless_asked(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as resp:
        assert resp.status == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = await resp.text()
    assert text.endswith("data: [DONE]\n\n")
    events = [orjson.loads(data) for data in sse_data(text)[:-1]]
    assert len(events) > 3
    assert all("usage" not in event for event in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"


RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_a_response_is_answered_with_usage(client: openai.OpenAI, sim: UpstreamSimulator) -> None:
    response = client.responses.create(model="sim-model", input=QUESTION)
    assert response.output_text == ANSWER and response.status == "completed"
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert sim.requests[-1]["path"] == "/v1/responses"


def test_a_response_stream_has_the_real_event_sequence(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="sim-model", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 1
    assert [k for i, k in enumerate(kinds) if k != kinds[i - 1] or i == 0] == RESPONSE_EVENTS
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.output_tokens > 0


def test_a_response_can_call_a_function(client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    events = list(
        client.responses.create(
            model="sim-model",
            input="lookup this",
            tools=[tool],  # type: ignore[list-item]
            tool_choice={"type": "function", "name": "lookup"},
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    call = events[-1].response.output[0]  # type: ignore[union-attr]
    assert call.type == "function_call" and call.name == "lookup"


async def test_response_faults_are_those_of_chat(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": "sim-model", "input": QUESTION, "stream": True}
    sim.add_faults({"kind": "status", "status": 503, "path": "/v1/responses"})
    status, reply, _ = await post(http, f"{sim.url}/responses", body)
    assert status == 503 and set(reply["error"]) == ERROR_KEYS
    sim.add_faults({"kind": "no_usage"}, {"kind": "break_stream", "after_chunks": 3})
    async with http.post(f"{sim.url}/responses", json=body) as resp:
        data = [orjson.loads(d) for d in sse_data(await resp.text())]
    assert data[-1]["type"] == "response.completed" and data[-1]["response"]["usage"] is None
    received: list[bytes] = []
    async with http.post(f"{sim.url}/responses", json=body) as resp:
        with pytest.raises(aiohttp.ClientPayloadError):
            async for line in resp.content:
                if line.startswith(b"data: "):
                    received.append(line)
    assert len(received) == 3


async def test_azure_responses_path(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    body = {"model": "my-deployment", "input": QUESTION}
    status, reply, _ = await post(http, f"{sim.base}/openai/v1/responses", body)
    assert status == 200 and reply["output"][0]["content"][0]["text"] == ANSWER
    assert sim.requests[-1]["path"] == "/v1/responses"


async def test_embeddings_as_floats(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    body = {"model": "sim-embed", "input": ["one text", "another"], "encoding_format": "float"}
    status, reply, _ = await post(http, f"{sim.url}/embeddings", body)
    assert status == 200
    assert [item["index"] for item in reply["data"]] == [0, 1]
    vector = reply["data"][0]["embedding"]
    assert len(vector) == 384
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-6)
    assert reply["usage"]["prompt_tokens"] > 0


def test_embeddings_as_base64_which_the_sdk_asks_for(
    sim: UpstreamSimulator, client: openai.OpenAI
) -> None:
    reply = client.embeddings.create(model="sim-embed", input="one text")
    assert sim.requests[-1]["body"]["encoding_format"] == "base64"
    vector = reply.data[0].embedding
    assert len(vector) == 384
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-5)


async def test_base64_embeddings_are_little_endian_float32(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": "sim-embed", "input": "text", "encoding_format": "base64", "dimensions": 8}
    _, reply, _ = await post(http, f"{sim.url}/embeddings", body)
    raw = base64.b64decode(reply["data"][0]["embedding"])
    assert len(struct.unpack("<8f", raw)) == 8


async def test_models_and_health(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.url}/models") as resp:
        models = await resp.json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["sim-model", "sim-embed"]
    assert all(m["object"] == "model" for m in models["data"])
    async with http.get(f"{sim.base}/health") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_errors_are_openai_shaped(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{sim.url}/nowhere") as resp:
        assert resp.status == 404
        assert set((await resp.json())["error"]) == ERROR_KEYS
    async with http.post(f"{sim.url}/chat/completions", data=b"{not json") as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
        assert set(error) == ERROR_KEYS
        assert error["type"] == "invalid_request_error"
    status, reply, _ = await post(http, f"{sim.url}/chat/completions", [1, 2])
    assert status == 400
    status, reply, _ = await post(http, f"{sim.url}/chat/completions", {"model": "m"})
    assert (status, reply["error"]["param"]) == (400, "messages")
    async with http.get(f"{sim.url}/chat/completions") as resp:
        assert resp.status == 405


# -- faults ----------------------------------------------------------------------------


async def test_status_fault_with_retry_after(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "status", "status": 503, "retry_after": 2})
    status, reply, headers = await post(http, f"{sim.url}/chat/completions", CHAT)
    assert status == 503
    assert headers["retry-after"] == "2"
    assert set(reply["error"]) == ERROR_KEYS
    assert reply["error"]["type"] == "server_error"
    status, _, headers = await post(http, f"{sim.url}/chat/completions", CHAT)
    assert status == 200
    assert "retry-after" not in headers


def test_status_fault_reaches_the_sdk_as_its_error(
    sim: UpstreamSimulator, client: openai.OpenAI
) -> None:
    sim.add_faults({"kind": "status", "status": 429, "message": "slow down", "retry_after_ms": 5})
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**CHAT)
    assert caught.value.code == "rate_limit_exceeded"
    assert "slow down" in caught.value.message
    assert caught.value.response.headers["retry-after-ms"] == "5"


async def test_drop_closes_the_connection_without_a_response(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "drop"})
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await post(http, f"{sim.url}/chat/completions", CHAT)
    status, _, _ = await post(http, f"{sim.url}/chat/completions", CHAT)
    assert status == 200


def test_drop_is_a_connection_error_to_the_sdk(
    sim: UpstreamSimulator, client: openai.OpenAI
) -> None:
    sim.add_faults({"kind": "drop"})
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(**CHAT)


async def test_break_stream_cuts_the_transfer_after_n_events(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "break_stream", "after_chunks": 3})
    received: list[bytes] = []
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for line in resp.content:
                if line.startswith(b"data: "):
                    received.append(line)
    assert len(received) == 3
    assert b"[DONE]" not in b"".join(received)


async def test_break_stream_truncates_a_json_reply(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "break_stream"})
    async with http.post(f"{sim.url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_no_usage_hides_usage_even_when_asked(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "no_usage", "count": 2})
    status, reply, _ = await post(http, f"{sim.url}/chat/completions", CHAT)
    assert status == 200
    assert "usage" not in reply
    assert reply["choices"][0]["message"]["content"] == ANSWER
    async with http.post(f"{sim.url}/chat/completions", json=STREAM_WITH_USAGE) as resp:
        data = sse_data(await resp.text())
    assert data[-1] == "[DONE]"
    assert all(orjson.loads(d).get("usage") is None for d in data[:-1])


async def test_delay_fault_adds_latency(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "delay", "ms": 300})
    started = time.perf_counter()
    status, _, _ = await post(http, f"{sim.url}/chat/completions", CHAT)
    assert status == 200
    assert time.perf_counter() - started >= 0.3


async def test_delay_fault_trips_a_client_timeout(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "delay", "ms": 1000})
    with pytest.raises(asyncio.TimeoutError):
        await post(http, f"{sim.url}/chat/completions", CHAT, timeout=aiohttp.ClientTimeout(0.1))


async def test_header_fault_takes_precedence_and_leaves_the_queue(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults({"kind": "status", "status": 500})
    url = f"{sim.url}/chat/completions"
    header = {"x-sim-fault": '{"kind": "status", "status": 429}'}
    assert (await post(http, url, CHAT, headers=header))[0] == 429
    assert (await post(http, url, CHAT))[0] == 500
    assert (await post(http, url, CHAT))[0] == 200


async def test_bad_header_fault_is_refused(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    header = {"x-sim-fault": '{"kind": "explode"}'}
    status, reply, _ = await post(http, f"{sim.url}/chat/completions", CHAT, headers=header)
    assert status == 400
    assert "kind" in reply["error"]["message"]


async def test_count_semantics(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.url}/chat/completions"
    sim.add_faults({"kind": "status", "status": 502, "count": 2})
    assert [(await post(http, url, CHAT))[0] for _ in range(3)] == [502, 502, 200]
    sim.add_faults({"kind": "status", "status": 503, "count": -1})
    assert [(await post(http, url, CHAT))[0] for _ in range(5)] == [503] * 5
    sim.reset()
    assert (await post(http, url, CHAT))[0] == 200


async def test_rules_apply_in_order_to_matching_paths(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.add_faults(
        {"kind": "status", "status": 500, "path": "/v1/embeddings"},
        {"kind": "status", "status": 502},
        {"kind": "status", "status": 504},
    )
    chat, embed = f"{sim.url}/chat/completions", f"{sim.url}/embeddings"
    assert (await post(http, chat, CHAT))[0] == 502
    assert (await post(http, embed, {"input": "x"}))[0] == 500
    assert (await post(http, chat, CHAT))[0] == 504
    assert (await post(http, chat, CHAT))[0] == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "explode"},
        {"kind": "status", "code": 503},
        {"kind": "status", "status": 200},
        {"kind": "delay"},
        {"kind": "drop", "count": 0},
        {"kind": "break_stream", "after_chunks": -1},
        "drop",
    ],
)
def test_bad_rules_are_refused_and_nothing_is_queued(sim: UpstreamSimulator, rule: Any) -> None:
    with pytest.raises(FaultSpecError):
        sim.add_faults({"kind": "drop"}, rule)
    assert sim.app.faults.pending() == []


# -- settings --------------------------------------------------------------------------


async def test_latency_delays_the_reply(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.configure(latency_ms=150)
    started = time.perf_counter()
    assert (await post(http, f"{sim.url}/chat/completions", CHAT))[0] == 200
    assert time.perf_counter() - started >= 0.15


async def test_ttft_delays_the_first_event(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.configure(ttft_ms=200)
    started = time.perf_counter()
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as resp:
        first = await resp.content.readline()
        first_at = time.perf_counter() - started
        await resp.read()
    assert first.startswith(b"data: {")
    assert first_at >= 0.2


async def test_tokens_per_second_paces_the_events(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    sim.configure(tokens_per_second=40)
    started = time.perf_counter()
    async with http.post(f"{sim.url}/chat/completions", json=STREAM) as resp:
        events = sse_data(await resp.text())
    assert events[-1] == "[DONE]"
    assert time.perf_counter() - started >= (len(events) - 1) / 40


def test_bad_settings_are_refused(sim: UpstreamSimulator) -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        sim.configure(latency_ms=-1)
    with pytest.raises(ValueError, match="unknown setting"):
        sim.configure(latency=5)


# -- recording and the control API -----------------------------------------------------


async def test_requests_are_recorded(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    await post(http, f"{sim.url}/chat/completions", CHAT, headers={"X-Trace-Id": "abc"})
    async with http.post(f"{sim.url}/embeddings", data=b"{broken") as resp:
        await resp.read()
    chat, broken = sim.requests
    assert chat["path"] == "/v1/chat/completions"
    assert chat["headers"]["x-trace-id"] == "abc"
    assert chat["body"] == CHAT
    assert broken["body"] is None
    async with http.get(f"{sim.base}/_sim/requests") as resp:
        assert await resp.json() == [chat, broken]
    async with http.delete(f"{sim.base}/_sim/requests") as resp:
        assert resp.status == 200
    assert sim.requests == []


async def test_only_the_last_thousand_requests_are_kept(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    async def probe(index: int) -> None:
        async with http.get(f"{sim.base}/health", headers={"x-index": str(index)}) as resp:
            await resp.read()

    for batch in range(0, 1010, 101):
        await asyncio.gather(*(probe(i) for i in range(batch, batch + 101)))
    recorded = sim.requests
    assert len(recorded) == 1000
    assert {r["headers"]["x-index"] for r in recorded} == {str(i) for i in range(10, 1010)}


async def test_control_api(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    control, chat = f"{sim.base}/_sim", f"{sim.url}/chat/completions"
    rules = {"faults": [{"kind": "status", "status": 500, "count": 2}]}
    status, reply, _ = await post(http, f"{control}/faults", rules)
    assert status == 200
    assert reply["faults"][0]["count"] == 2
    assert (await post(http, chat, CHAT))[0] == 500
    async with http.get(f"{control}/faults") as resp:
        assert (await resp.json())["faults"][0]["count"] == 1
    status, reply, _ = await post(http, f"{control}/config", {"latency_ms": 5})
    assert (status, reply["latency_ms"]) == (200, 5)
    async with http.delete(f"{control}/faults") as resp:
        assert await resp.json() == {"faults": []}
    async with http.get(f"{control}/config") as resp:
        assert (await resp.json())["latency_ms"] == 0
    assert (await post(http, chat, CHAT))[0] == 200
    assert [r["path"] for r in sim.requests] == ["/v1/chat/completions"] * 2


async def test_control_api_refuses_bad_input(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    control = f"{sim.base}/_sim"
    status, reply, _ = await post(http, f"{control}/faults", {"faults": [{"kind": "explode"}]})
    assert status == 400
    assert set(reply["error"]) == ERROR_KEYS
    assert (await post(http, f"{control}/faults", [1]))[0] == 400
    assert (await post(http, f"{control}/config", {"ttft_ms": "slow"}))[0] == 400
    assert (await post(http, f"{control}/nothing", {}))[0] == 404
    assert sim.app.faults.pending() == []


# -- auth, lifecycle, fixtures and the CLI ---------------------------------------------


async def test_api_key_is_required_when_set(http: aiohttp.ClientSession) -> None:
    with UpstreamSimulator(api_key="sekret", models=["only-model"]) as sim:
        url = f"{sim.url}/models"
        async with http.get(url) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_api_key"
        async with http.get(url, headers={"Authorization": "Bearer wrong-key"}) as resp:
            assert resp.status == 401
            assert "wrong-key" not in await resp.text()
        async with http.get(url, headers={"Authorization": "Bearer sekret"}) as resp:
            assert resp.status == 200
            assert [m["id"] for m in (await resp.json())["data"]] == ["only-model"]
        async with http.get(f"{sim.base}/health") as resp:
            assert resp.status == 200


async def test_stopped_simulator_refuses_connections(http: aiohttp.ClientSession) -> None:
    simulator = UpstreamSimulator().start()
    with pytest.raises(RuntimeError, match="already started"):
        simulator.start()
    url = f"{simulator.base}/health"
    simulator.stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await http.get(url)


def test_fixture_shares_one_simulator_and_resets_it(
    upstream_simulator_session: UpstreamSimulator, request: pytest.FixtureRequest
) -> None:
    session = upstream_simulator_session
    session.add_faults({"kind": "drop", "path": "/v1/embeddings"})
    session.configure(latency_ms=10)
    with openai.OpenAI(base_url=session.url, api_key="x", max_retries=0) as sdk:
        sdk.models.list()
    fresh = request.getfixturevalue("upstream_simulator")
    assert fresh is session
    assert (fresh.app.faults.pending(), fresh.requests) == ([], [])
    assert fresh.app.settings()["latency_ms"] == 0


def test_cli_prints_the_url_and_stops_on_ctrl_c() -> None:
    command = "from llmplane.testing.upstream import run_cli; run_cli('127.0.0.1', 0)"
    with subprocess.Popen(
        [sys.executable, "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("upstream simulator listening on http://127.0.0.1:")
        url = line.split()[-1]
        with openai.OpenAI(base_url=url, api_key="x", max_retries=0) as sdk:
            assert sdk.chat.completions.create(**CHAT).choices[0].message.content == ANSWER
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0
    assert errors == ""


async def test_azure_paths_need_an_api_version(
    sim: UpstreamSimulator, http: aiohttp.ClientSession
) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    azure = f"{sim.base}/openai/deployments/prod/chat/completions"
    status, _, _ = await post(http, azure, body)
    assert status == 404
    status, answer, _ = await post(http, f"{azure}?api-version=2024-10-21", body)
    assert status == 200 and answer["choices"][0]["message"]["content"]


async def test_moderations_and_rerank(sim: UpstreamSimulator, http: aiohttp.ClientSession) -> None:
    status, answer, _ = await post(
        http, f"{sim.url}/moderations", {"model": "m", "input": ["fine", "attack"]}
    )
    assert status == 200 and [r["flagged"] for r in answer["results"]] == [False, True]
    status, answer, _ = await post(
        http, f"{sim.url}/rerank", {"model": "r", "query": "cat", "documents": ["dog", "a cat"]}
    )
    assert status == 200 and answer["results"][0]["index"] == 1
    assert "prompt_tokens" not in answer["usage"]  # as vLLM answers


def test_echo_answers_the_last_user_message_verbatim(
    client: openai.OpenAI, sim: UpstreamSimulator
) -> None:
    said = "mail <EMAIL_ADDRESS_1>, then 'quote' & more"
    messages: Any = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": said},
    ]
    sim.add_faults({"kind": "echo", "count": 2, "chunk_chars": 4})
    reply = client.chat.completions.create(model="sim-model", messages=messages)
    assert reply.choices[0].message.content == said
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    pieces = [
        chunk.choices[0].delta.content
        for chunk in client.chat.completions.create(
            model="sim-model", messages=messages, stream=True
        )
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert "".join(pieces) == said
    assert all(len(piece) <= 4 for piece in pieces) and len(pieces) == math.ceil(len(said) / 4)
    # Used up: the next request gets the mock's own reply again.
    again = client.chat.completions.create(model="sim-model", messages=messages)
    assert again.choices[0].message.content != said
