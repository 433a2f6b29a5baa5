"""Prices: config first, then the maintained genai-prices table, else unknown (cost 0)."""

from __future__ import annotations

import pytest

from llmplane.accounting.pricing import resolve_rates
from llmplane.config.platform import parse_platform_config


def _model(entry: dict[str, object]):
    return parse_platform_config({"models": [entry]}, file="test", env={}).models[0]


def test_config_price_wins() -> None:
    model = _model(
        {
            "name": "local",
            "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
            "deployments": [
                {"provider": "openai", "api_base": "http://127.0.0.1:8000/v1", "model": "llama"}
            ],
        }
    )
    rates = resolve_rates(model, model.deployments[0])
    assert rates is not None and rates.source == "config"
    # 1M prompt tokens at $0.05 + 1M completion tokens at $0.10 = $0.15
    assert rates.cost_nanousd(1_000_000, 1_000_000, 0) == 150_000_000


def test_openai_price_from_genai_prices() -> None:
    model = _model(
        {
            "name": "gpt-4o-mini",
            "deployments": [
                {
                    "provider": "openai",
                    "api_base": "https://api.openai.com/v1",
                    "model": "gpt-4o-mini",
                }
            ],
        }
    )
    rates = resolve_rates(model, model.deployments[0])
    assert rates is not None and rates.source.startswith("genai-prices:openai")
    fresh = rates.cost_nanousd(1_000_000, 0, 0)
    cached = rates.cost_nanousd(1_000_000, 0, 1_000_000)
    assert fresh > cached > 0


def test_unknown_self_hosted_model_costs_nothing_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = _model(
        {
            "name": "mystery",
            "deployments": [
                {
                    "provider": "openai",
                    "api_base": "http://127.0.0.1:8000/v1",
                    "model": "my-finetune-7",
                }
            ],
        }
    )
    assert resolve_rates(model, model.deployments[0]) is None
    assert "price:" in caplog.text


@pytest.mark.parametrize(
    ("litellm_model", "source"),
    [
        ("anthropic/claude-sonnet-4-5", "genai-prices:anthropic/claude-sonnet-4-5"),
        ("gemini/gemini-2.5-flash", "genai-prices:google/gemini-2.5-flash"),
        ("vertex_ai/gemini-2.5-flash", "genai-prices:google/gemini-2.5-flash"),
        ("mistral/mistral-large-latest", "genai-prices:mistral/mistral-large"),
    ],
)
def test_litellm_models_are_priced_by_their_provider_prefix(
    litellm_model: str, source: str
) -> None:
    model = _model({"name": "m", "deployments": [{"provider": "litellm", "model": litellm_model}]})
    rates = resolve_rates(model, model.deployments[0])
    assert rates is not None and rates.source == source
    assert rates.output > rates.input > 0


def test_cache_writes_cost_their_own_price() -> None:
    """Anthropic bills input written to its prompt cache at 1.25x input: genai-prices knows
    it, and a config price may say it."""
    model = _model(
        {"name": "c", "deployments": [{"provider": "anthropic", "model": "claude-sonnet-4-5"}]}
    )
    rates = resolve_rates(model, model.deployments[0])
    assert rates is not None and rates.cache_write == 3_750  # nano-USD per token
    # 1,000 prompt tokens: 100 read from the cache, 600 written to it, 300 fresh.
    assert rates.cost_nanousd(1_000, 0, 100, 600) == 300 * 3_000 + 100 * 300 + 600 * 3_750
    priced = _model(
        {
            "name": "p",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 1, "output_per_mtok": 2, "cache_write_per_mtok": 5},
        }
    )
    config_rates = resolve_rates(priced, priced.deployments[0])
    assert config_rates is not None
    assert config_rates.cost_nanousd(10, 0, 0, 4) == 6 * 1_000 + 4 * 5_000
    plain = _model(
        {
            "name": "q",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 1, "output_per_mtok": 2},
        }
    )
    plain_rates = resolve_rates(plain, plain.deployments[0])
    assert plain_rates is not None and plain_rates.cost_nanousd(10, 0, 0, 4) == 10 * 1_000
