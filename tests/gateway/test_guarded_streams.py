"""The stream window's promise, over many random ways a stream can be split: a match no
longer than the window is rewritten exactly as in a whole answer, or stops the stream
before any of it is released."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from llmplane.config.guardrails import GuardrailsConfig
from llmplane.errors import OutputBlockedError
from llmplane.gateway.guarded_streams import ChatStreamGuard
from llmplane.guardrails.engine import GuardrailEngine

WINDOW = 16
TERM = "top secret plan"  # 15 characters: fits the window


@pytest.fixture
def engine() -> Iterator[GuardrailEngine]:
    rule = {"detector": "blocklist", "options": {"terms": [TERM]}}
    config = GuardrailsConfig.model_validate(
        {
            "policies": {
                action: {"output": [{**rule, "action": action}], "stream_window_chars": WINDOW}
                for action in ("redact", "block")
            }
        }
    )
    built = GuardrailEngine.from_config(config)
    yield built
    built.close()


def _events(text: str, rng: random.Random) -> list[bytes]:
    """``text`` as chat chunk events split at random places, in random batches."""
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    position = 0
    while position < len(text):
        size = rng.randint(1, 9)
        events.append(
            {"choices": [{"index": 0, "delta": {"content": text[position : position + size]}}]}
        )
        position += size
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    encoded = [b"data: " + orjson.dumps({"id": "c", **e}) + b"\n\n" for e in events]
    encoded.append(b"data: [DONE]\n\n")
    batches, index = [], 0
    while index < len(encoded):
        size = rng.randint(1, 3)
        batches.append(b"".join(encoded[index : index + size]))
        index += size
    return batches


def _text(data: bytes) -> str:
    out = []
    for event in data.split(b"\n\n"):
        payload = event.removeprefix(b"data: ")
        if not payload or payload == b"[DONE]":
            continue
        parsed: Any = orjson.loads(payload)
        for choice in parsed["choices"]:
            out.append(choice["delta"].get("content") or "")
    return "".join(out)


async def _run(guard: ChatStreamGuard, batches: list[bytes]) -> tuple[str, bool]:
    released = []
    try:
        for batch in batches:
            released.append(await guard.feed(batch))
        released.append(await guard.end())
    except OutputBlockedError:
        return _text(b"".join(released)), True
    return _text(b"".join(released)), False


def _answer(rng: random.Random) -> str:
    words = ["alpha", "beta", "top", "secret", "plan", "gamma", TERM, "delta", "TOP SECRET PLAN"]
    return " ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))


def test_redaction_in_a_stream_equals_redaction_of_the_whole(engine: GuardrailEngine) -> None:
    rng = random.Random(7)
    for _ in range(200):
        answer = _answer(rng)
        whole = asyncio.run(engine.guard("redact", None).check_output([answer]))
        expected = whole[0] if whole else answer
        released, blocked = asyncio.run(
            _run(ChatStreamGuard(engine.guard("redact", None)), _events(answer, rng))
        )
        assert not blocked
        assert released == expected


def test_a_blocked_stream_released_nothing_of_the_match(engine: GuardrailEngine) -> None:
    rng = random.Random(11)
    blocked_runs = 0
    for _ in range(200):
        answer = _answer(rng)
        released, blocked = asyncio.run(
            _run(ChatStreamGuard(engine.guard("block", None)), _events(answer, rng))
        )
        first = answer.lower().find(TERM)
        assert blocked == (first >= 0)
        if blocked:
            blocked_runs += 1
            assert answer.startswith(released)
            assert len(released) <= first  # not one character of the match went out
        else:
            assert released == answer
    assert blocked_runs > 50
