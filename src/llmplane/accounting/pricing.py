"""Cost of a call: the model's ``price:`` from config, else the maintained ``genai-prices`` table.

Rates are resolved once per deployment at start-up (``genai-prices``' own lookup
costs ~130 µs, too much for the hot path); computing a cost is then three
multiplications. Costs are integers in nano-USD so that sums are exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from llmplane.config.platform import DeploymentConfig, ModelConfig

log = logging.getLogger(__name__)

NANO_PER_USD = 1_000_000_000  # costs are integers in nano-USD
_NANO_PER_MTOK = 1_000  # 1 USD per million tokens = 1,000 nano-USD per token


@dataclass(frozen=True, slots=True)
class Rates:
    """Nano-USD per token for fresh input, cached input, output and input written to the
    prompt cache (``cache_write``; the input rate where the provider charges nothing more)."""

    input: float
    cached_input: float
    output: float
    source: str
    cache_write: float | None = None

    def cost_nanousd(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int,
        cache_write_tokens: int = 0,
    ) -> int:
        """The cost of one call in nano-USD (cache reads and writes are among the prompt
        tokens)."""
        fresh = max(prompt_tokens - cached_tokens - cache_write_tokens, 0)
        cost = fresh * self.input + cached_tokens * self.cached_input
        if cache_write_tokens:
            write = self.cache_write if self.cache_write is not None else self.input
            cost += cache_write_tokens * write
        return round(cost + completion_tokens * self.output)


def _per_mtok(value: Any) -> float | None:
    if isinstance(value, Decimal | int | float):
        return float(value)
    base = getattr(value, "base", None)  # genai-prices' TieredPrices: the first tier's rate
    return float(base) if isinstance(base, Decimal | int | float) else None


# LiteLLM's provider prefixes (``gemini/gemini-2.5-flash``) as genai-prices' provider ids.
_LITELLM_PROVIDERS = {
    "anthropic": "anthropic",
    "azure": "azure",
    "bedrock": "aws",
    "cerebras": "cerebras",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "fireworks_ai": "fireworks",
    "gemini": "google",
    "groq": "groq",
    "mistral": "mistral",
    "openai": "openai",
    "openrouter": "openrouter",
    "perplexity": "perplexity",
    "together_ai": "together",
    "vertex_ai": "google",
    "xai": "x-ai",
}


def _litellm_ref(model: str) -> tuple[str, str | None]:
    """LiteLLM's ``provider/model`` as genai-prices' model ref and provider id."""
    prefix, _, rest = model.partition("/")
    if prefix == "bedrock" and rest.startswith(("converse/", "invoke/")):
        rest = rest.partition("/")[2]
    return rest, _LITELLM_PROVIDERS.get(prefix)


def _from_table(
    upstream_model: str, api_base: str | None, provider_id: str | None = None
) -> Rates | None:
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=1, output_tokens=1)
    try:
        if provider_id is not None:
            found = calc_price(usage, model_ref=upstream_model, provider_id=provider_id)
        else:
            found = calc_price(usage, model_ref=upstream_model, provider_api_url=api_base)
    except LookupError:
        return None
    price = found.model_price
    input_rate = _per_mtok(price.input_mtok)
    output_rate = _per_mtok(price.output_mtok)
    if input_rate is None or output_rate is None:
        return None
    cached = _per_mtok(price.cache_read_mtok)
    written = _per_mtok(price.cache_write_mtok)
    return Rates(
        input_rate * _NANO_PER_MTOK,
        (cached if cached is not None else input_rate) * _NANO_PER_MTOK,
        output_rate * _NANO_PER_MTOK,
        source=f"genai-prices:{found.provider.id}/{found.model.id}",
        cache_write=written * _NANO_PER_MTOK if written is not None else None,
    )


def resolve_rates(model: ModelConfig, deployment: DeploymentConfig) -> Rates | None:
    """The rates for ``deployment`` of ``model``; ``None`` (cost 0, warned) when unknown."""
    if model.price is not None:
        price = model.price
        cached = price.cached_input_per_mtok
        written = price.cache_write_per_mtok
        return Rates(
            price.input_per_mtok * _NANO_PER_MTOK,
            (cached if cached is not None else price.input_per_mtok) * _NANO_PER_MTOK,
            price.output_per_mtok * _NANO_PER_MTOK,
            source="config",
            cache_write=written * _NANO_PER_MTOK if written is not None else None,
        )
    if deployment.provider == "mock":
        return None
    if deployment.provider == "litellm" and deployment.model:
        ref, provider_id = _litellm_ref(deployment.model)
        rates = _from_table(ref, None, provider_id)
    else:
        rates = _from_table(deployment.model or model.name, deployment.api_base)
    if rates is None:
        log.warning(
            "no price known for model %r (deployment model %r): its calls cost 0 until "
            "'price:' is set in llmplane.yaml",
            model.name,
            deployment.model or model.name,
        )
    return rates
