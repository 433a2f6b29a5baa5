"""Budgets and token limits reserve the counted prompt, through a real gateway process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import GatewayProcess, cli, http, reserved_prompt_tokens, simulator_model

IN_NANO, OUT_NANO = 1_000, 2_000  # $1 / $2 per million tokens
MAX_TOKENS = 10


@pytest.fixture(scope="module")
def counted(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    """A gateway whose ``gpt-4o`` (served by the simulator) counts with o200k_base."""
    models = [simulator_model("gpt-4o", upstream_simulator_session.url, model="gpt-4o")]
    with GatewayProcess(tmp_path_factory.mktemp("counted"), models) as process:
        yield process


def _chat(content: Any) -> bytes:
    return json.dumps(
        {
            "model": "gpt-4o",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": content}],
        }
    ).encode()


def test_budget_admits_what_the_count_fits_and_reserves_images(counted: GatewayProcess) -> None:
    text = " ".join(["hello world"] * 300)
    body = _chat(text)
    prompt = reserved_prompt_tokens(body, "openai", "gpt-4o")
    assert prompt == 3 + 3 + 1 + 600  # 300 x "hello", " world"
    budget_nano = (prompt + 100) * IN_NANO + MAX_TOKENS * OUT_NANO
    assert len(body) * IN_NANO + MAX_TOKENS * OUT_NANO > budget_nano  # bytes would refuse
    key = json.loads(
        cli(
            "keys",
            "create",
            "--name",
            "counted",
            "--json",
            "--budget-usd",
            repr(budget_nano / 1e9),
            "--tpm",
            "100000",
            url=counted.url,
        ).stdout
    )["key"]

    status, headers, _ = http("POST", f"{counted.base_url}/chat/completions", body, key=key)
    assert status == 200
    # The token limit held the counted prompt plus max_tokens, not the body's bytes.
    assert int(headers["x-ratelimit-remaining-tokens"]) == 100_000 - prompt - MAX_TOKENS

    # About $0.0001 is left: an image's worst case (1,445 tokens) does not fit, but the
    # same few words without it do.
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with_image = _chat([{"type": "text", "text": "what is this?"}, image])
    status, _, answer = http("POST", f"{counted.base_url}/chat/completions", with_image, key=key)
    assert status == 429 and answer["error"]["code"] == "budget_exceeded"
    status, _, _ = http(
        "POST", f"{counted.base_url}/chat/completions", _chat("what is this?"), key=key
    )
    assert status == 200
