"""A Python target for the harness's tests: a two-step pipeline through the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


async def answer(case_input: Mapping[str, Any], client: Any) -> str:
    """Ask the model twice (a draft, then a final answer) and return the final text."""
    draft = await client.chat("mock", [{"role": "user", "content": f"draft {case_input['topic']}"}])
    return str(await client.chat("mock", [{"role": "user", "content": f"final {draft}"}]))


def broken(case_input: Mapping[str, Any], client: Any) -> str:
    """A pipeline with a bug on one input."""
    if case_input["topic"] == "topic1":
        raise KeyError("no retriever")
    return f"sync {case_input['topic']}"


_calls: dict[str, int] = {}


def alternating(case_input: Mapping[str, Any], client: Any) -> str:
    """Right on every other call for ``topic0`` (a flaky case), always right otherwise."""
    topic = str(case_input["topic"])
    _calls[topic] = _calls.get(topic, 0) + 1
    return "wrong" if topic == "topic0" and _calls[topic] % 2 == 0 else topic
