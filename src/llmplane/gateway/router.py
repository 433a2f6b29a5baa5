"""Model names to deployments: what clients ask for, and which upstream serves it.

Retries, fallbacks, cooldowns and load balancing (the next issues) wrap
:meth:`ModelRouter.pick`; today each model is served by its deployments in
turn (round robin).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from llmplane.accounting.pricing import Rates, resolve_rates
from llmplane.config.platform import DeploymentConfig, ModelConfig, PlatformConfig
from llmplane.errors import NotFoundError
from llmplane.gateway.providers.base import Provider
from llmplane.gateway.providers.mock import MockProvider
from llmplane.gateway.providers.openai_compat import OpenAICompatibleProvider


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream of a model, ready to call."""

    id: str
    provider_name: str
    upstream_model: str
    provider: Provider
    rates: Rates | None
    max_output_tokens: int


def _build(model: ModelConfig, index: int, config: DeploymentConfig) -> Deployment:
    deployment_id = config.name or f"{model.name}[{index}]"
    provider: Provider = (
        MockProvider()
        if config.provider == "mock"
        else OpenAICompatibleProvider(deployment_id, config)
    )
    return Deployment(
        id=deployment_id,
        provider_name=config.provider,
        upstream_model=config.model or model.name,
        provider=provider,
        rates=resolve_rates(model, config),
        max_output_tokens=model.max_output_tokens,
    )


class ModelRouter:
    """Resolves a requested model name to the deployment that will serve this call."""

    def __init__(self, platform: PlatformConfig) -> None:
        self._deployments = {
            model.name: [_build(model, i, d) for i, d in enumerate(model.deployments)]
            for model in platform.models
        }
        self._turns: dict[str, Iterator[Deployment]] = {
            name: itertools.cycle(deployments) for name, deployments in self._deployments.items()
        }

    @property
    def model_names(self) -> list[str]:
        """Every model clients can ask for, in config order."""
        return list(self._deployments)

    def require(self, model: str) -> None:
        """Raise :class:`NotFoundError` unless ``model`` is configured."""
        if model not in self._turns:
            raise NotFoundError(
                f"The model '{model}' does not exist; GET /v1/models lists the models you can use.",
                param="model",
            )

    def pick(self, model: str) -> Deployment:
        """The deployment for the next call to ``model``."""
        self.require(model)
        return next(self._turns[model])

    async def aclose(self) -> None:
        """Close every deployment's connections."""
        for deployments in self._deployments.values():
            for deployment in deployments:
                await deployment.provider.aclose()
