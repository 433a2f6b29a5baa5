"""Moderations and rerank through the gateway: governed like chat, mock and upstream alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, GatewayProcess, cli, http, openai_client


def test_moderations_with_the_openai_sdk(gateway: GatewayProcess) -> None:
    with openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0) as client:
        for model in ("mock", "sim"):
            result = client.moderations.create(
                model=model, input=["have a nice day", "I will attack you, idiot"]
            )
            assert [r.flagged for r in result.results] == [False, True]
            assert result.results[1].categories.violence
            assert result.results[1].categories.harassment


def test_moderations_without_a_model_use_the_platforms_default(tmp_path: Path) -> None:
    """OpenAI's API lets a moderation name no model; the built-in config's default is mock."""
    with GatewayProcess(tmp_path) as gateway:
        with openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0) as client:
            result = client.moderations.create(input="I will attack you")
        assert result.results[0].flagged
        http("GET", f"{gateway.url}/admin/spend")  # waits for the ledger
        assert gateway.sql("SELECT model, endpoint FROM usage_ledger") == [("mock", "moderations")]


def test_without_a_default_moderation_model_the_model_is_required(
    gateway: GatewayProcess,
) -> None:
    status, _, answer = http("POST", f"{gateway.base_url}/moderations", {"input": "hello"})
    assert status == 400
    assert answer["error"]["param"] == "model"
    assert "defaults.moderation_model" in answer["error"]["message"]


@pytest.mark.parametrize("model", ["mock", "sim"])
def test_rerank_orders_documents_and_is_billed(
    gateway: GatewayProcess, sim: UpstreamSimulator, model: str
) -> None:
    key = json.loads(
        cli("keys", "create", "--name", f"rerank-{model}", "--json", url=gateway.url).stdout
    )
    status, headers, answer = http(
        "POST",
        f"{gateway.base_url}/rerank",
        {
            "model": model,
            "query": "red apple pie",
            "documents": ["a blue car", "apple pie with red apple", "red car"],
            "top_n": 2,
        },
        key=key["key"],
    )
    assert status == 200, answer
    assert [r["index"] for r in answer["results"]] == [1, 2]
    assert float(headers["x-llmplane-cost-usd"]) > 0
    http("GET", f"{gateway.url}/admin/spend")  # waits for the ledger
    rows = gateway.sql(
        "SELECT endpoint, prompt_tokens, usage_estimated FROM usage_ledger WHERE key_id = :k",
        k=key["id"],
    )
    assert len(rows) == 1 and rows[0][0] == "rerank" and rows[0][1] > 0
    assert bool(rows[0][2]) == (model == "sim")  # the upstream sent no prompt_tokens


def test_rerank_and_moderation_inputs_are_checked(gateway: GatewayProcess) -> None:
    for path, body, param in (
        ("/rerank", {"model": "mock", "query": "", "documents": ["a"]}, "query"),
        ("/rerank", {"model": "mock", "query": "q", "documents": []}, "documents"),
        ("/rerank", {"model": "mock", "query": "q", "documents": ["a"], "top_n": 5}, "top_n"),
        ("/moderations", {"model": "mock", "input": 3}, "input"),
    ):
        status, _, answer = http("POST", f"{gateway.base_url}{path}", body)
        assert status == 400 and answer["error"]["param"] == param, (path, answer)
