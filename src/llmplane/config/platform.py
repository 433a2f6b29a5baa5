"""The declarative platform file ``llmplane.yaml``: models and their deployments.

Secrets are ``${ENV}`` references (``${VAR:-default}`` for optional ones),
resolved at load. Every problem is reported as a :class:`~llmplane.errors.ConfigError`
naming the file, the key path (``models[1].deployments[0].api_base``) and the reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from llmplane.config.guardrails import GuardrailsConfig
from llmplane.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

MOCK_PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
DEFAULT_OPENAI_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """An internal price in USD per million tokens (for self-hosted or mock models)."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)
    # Input written to the prompt cache (Anthropic charges 1.25× input); default: input.
    cache_write_per_mtok: float | None = Field(default=None, ge=0)


class HealthCheck(_Strict):
    """An active check of a self-hosted deployment: ``GET path`` (from the server's root,
    e.g. ``/health`` for vLLM and TGI, ``/v1/models``) every ``interval_s``; a deployment
    that fails it gets no calls until it passes again."""

    path: str = Field(default="/health", pattern=r"^/")
    interval_s: float = Field(default=10.0, gt=0)
    timeout_s: float = Field(default=2.0, gt=0)


class LoadMetrics(_Strict):
    """Where a self-hosted server reports its load (vLLM's Prometheus ``/metrics``), read
    every ``interval_s`` for the ``least_busy`` strategy."""

    path: str = Field(default="/metrics", pattern=r"^/")
    interval_s: float = Field(default=2.0, gt=0)
    timeout_s: float = Field(default=1.0, gt=0)


ANTHROPIC_API_BASE = "https://api.anthropic.com"
"""Where ``provider: anthropic`` deployments go when they set no ``api_base``."""


BUNDLED_TOKENIZERS = ("o200k_base", "cl100k_base")


def _check_tokenizer(value: str | None) -> str | None:
    """A bundled encoding's name, or a Hugging Face ``tokenizer.json`` that exists (and the
    optional ``tokenizers`` package to read it)."""
    if value is None or value in BUNDLED_TOKENIZERS:
        return value
    if not Path(value).is_file():
        raise ValueError(
            f"tokenizer must be one of {', '.join(BUNDLED_TOKENIZERS)} or the path of a "
            f"tokenizer.json; no file {value!r}"
        )
    if importlib.util.find_spec("tokenizers") is None:
        raise ValueError(
            "a tokenizer.json needs the tokenizers package: pip install 'llmplane[tokenizers]'"
        )
    return value


class Slo(_Strict):
    """Service-level objectives of a model or one deployment, judged over the last
    ``window_days``: p95 time to first token and p95 latency of successful calls (ms), and
    the share of calls that may fail upstream (``error_rate: 0.01`` is 1 %)."""

    ttft_p95_ms: float | None = Field(default=None, gt=0)
    latency_p95_ms: float | None = Field(default=None, gt=0)
    error_rate: float | None = Field(default=None, gt=0, lt=1)
    window_days: int = Field(default=30, ge=1, le=366)

    @model_validator(mode="after")
    def _some_objective(self) -> Slo:
        if self.ttft_p95_ms is None and self.latency_p95_ms is None and self.error_rate is None:
            raise ValueError("an slo needs at least one of ttft_p95_ms, latency_p95_ms, error_rate")
        return self


class DeploymentConfig(_Strict):
    """One upstream that can serve a model: a provider, its URL, key and upstream model id."""

    provider: Literal["openai", "azure", "anthropic", "litellm", "mock"]
    name: str | None = None
    api_base: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    health_check: HealthCheck | None = None
    load_metrics: LoadMetrics | None = None
    # Azure OpenAI: the resource's deployment name (default: ``model``) and API version.
    azure_deployment: str | None = None
    api_version: str = "2024-10-21"
    # Anthropic: the Messages API version sent as the anthropic-version header.
    anthropic_version: str = "2023-06-01"
    # LiteLLM (``provider: litellm``, ``model: gemini/gemini-2.5-flash``): more of its
    # keyword arguments, e.g. ``aws_region_name`` or ``vertex_project`` (``${ENV}`` refs).
    litellm_params: dict[str, SecretStr | bool | int | float] = Field(default_factory=dict)
    # How ``POST /v1/responses`` reaches this deployment: passed through to its own
    # ``/responses`` (``native``, the default of openai and azure) or translated to chat
    # (``bridge``: the default of mock and litellm, and for OpenAI-compatible servers
    # without the Responses API).
    responses_api: Literal["native", "bridge"] | None = None
    # Objectives of this deployment (default: its model's ``slo``), for ``llmplane report``.
    slo: Slo | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_api_base(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("provider") == "anthropic"
            and not data.get("api_base")
        ):
            return {**data, "api_base": ANTHROPIC_API_BASE}
        return data

    # How prompts are counted for budgets and limits (default: by model name).
    tokenizer: str | None = None

    _tokenizer = field_validator("tokenizer")(_check_tokenizer)

    @model_validator(mode="after")
    def _check_upstream(self) -> DeploymentConfig:
        if self.provider in ("openai", "azure") and not self.api_base:
            raise ValueError(f"api_base is required for provider {self.provider!r}")
        if self.api_base is not None and not re.match(r"^https?://[^/\s]+", self.api_base):
            raise ValueError(f"api_base must be an http(s) URL, got {self.api_base!r}")
        if self.health_check is not None and self.provider not in ("openai", "azure", "anthropic"):
            raise ValueError("health_check is for deployments with their own server (api_base)")
        if self.load_metrics is not None and self.provider not in ("openai", "azure"):
            raise ValueError("load_metrics is for OpenAI-compatible servers (vLLM's /metrics)")
        if self.provider == "litellm":
            if not self.model or "/" not in self.model:
                raise ValueError(
                    "provider 'litellm' needs model: LiteLLM's provider/model string, "
                    "e.g. 'gemini/gemini-2.5-flash'"
                )
        elif self.litellm_params:
            raise ValueError("litellm_params is for provider 'litellm'")
        if self.provider not in ("openai", "azure") and self.responses_api == "native":
            raise ValueError(
                f"provider {self.provider!r} serves the Responses API only as a bridge"
            )
        return self

    @property
    def serves_responses_natively(self) -> bool:
        """Whether ``/v1/responses`` calls are passed through to the upstream's own API."""
        if self.responses_api is not None:
            return self.responses_api == "native"
        return self.provider in ("openai", "azure")

    def upstream_key(self) -> str | None:
        """The provider key to send, or ``None`` (absent, empty or the literal ``none``)."""
        if self.api_key is None:
            return None
        value = self.api_key.get_secret_value()
        return None if value.strip().lower() in ("", "none") else value


Strategy = Literal["weighted", "least_inflight", "least_busy", "lowest_latency", "lowest_cost"]


class Backoff(_Strict):
    """Waits before trying a deployment again: ``base_s * 2**n`` with full jitter, capped at
    ``max_s``; an upstream's ``Retry-After`` is honoured when longer."""

    base_s: float = Field(default=0.25, gt=0)
    max_s: float = Field(default=8.0, gt=0)


class Cooldown(_Strict):
    """A deployment with ``failures`` retryable failures within ``window_s`` is skipped for
    ``cooldown_s`` (or the upstream's ``Retry-After`` if longer); then one probe call at a
    time decides whether it is back."""

    failures: int = Field(default=3, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    cooldown_s: float = Field(default=30.0, gt=0)


class Timeouts(_Strict):
    """Per-model limits; unset ones fall back to the deployment's ``connect_timeout_s`` and
    ``timeout_s``."""

    connect_s: float | None = Field(default=None, gt=0)
    ttft_s: float | None = Field(default=None, gt=0)  # until a stream's first event
    chunk_s: float | None = Field(default=None, gt=0)  # between a stream's events
    total_s: float | None = Field(default=None, gt=0)  # a whole non-streaming call


class ModelConfig(_Strict):
    """A model name clients ask for, the deployments that serve it and how calls are routed,
    retried and failed over."""

    name: str = Field(min_length=1)
    deployments: list[DeploymentConfig] = Field(min_length=1)
    price: Price | None = None
    max_output_tokens: int = Field(default=16_384, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    tokenizer: str | None = None  # for every deployment that does not set its own
    strategy: Strategy = "weighted"
    retries: int = Field(default=2, ge=0, le=10)
    backoff: Backoff = Field(default_factory=Backoff)
    cooldown: Cooldown = Field(default_factory=Cooldown)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    fallbacks: list[str] = Field(default_factory=list)
    context_window_fallbacks: list[str] = Field(default_factory=list)
    content_policy_fallbacks: list[str] = Field(default_factory=list)
    slo: Slo | None = None  # for every deployment that does not set its own

    _tokenizer = field_validator("tokenizer")(_check_tokenizer)


LogBodies = Literal["none", "metadata", "redacted", "full"]


class RequestLogDefaults(_Strict):
    """What a request leaves in the stored request logs when its team sets nothing:
    ``none`` (nothing), ``metadata`` (who, what, how much; no content), ``redacted``
    (bodies with PII and secrets replaced) or ``full`` (bodies as sent)."""

    bodies: LogBodies = "none"
    retention_days: int = Field(default=30, ge=1, le=3650)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)  # per body; longer is truncated


class Defaults(_Strict):
    """Platform-wide defaults: what a request that names no model gets, where OpenAI's API
    lets it name none, and the request-log policy of teams that set none."""

    # ``/v1/moderations`` without ``model`` (OpenAI's default is omni-moderation-latest).
    moderation_model: str | None = None
    request_logs: RequestLogDefaults = Field(default_factory=RequestLogDefaults)


class PlatformConfig(_Strict):
    """The whole ``llmplane.yaml``."""

    models: list[ModelConfig] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    # The file it was read from, for errors found after validation (building detectors).
    _file: str | None = PrivateAttr(default=None)

    @property
    def source_file(self) -> str | None:
        """The file this config was read from (``None`` when built in code)."""
        return self._file

    @model_validator(mode="after")
    def _unique_names(self) -> PlatformConfig:
        seen: set[str] = set()
        for model in self.models:
            if model.name in seen:
                raise ValueError(f"model name {model.name!r} is defined twice")
            seen.add(model.name)
        for model in self.models:
            for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
                for target in getattr(model, kind):
                    if target not in seen:
                        raise ValueError(
                            f"model {model.name!r}: {kind} names {target!r}, which is not a "
                            "configured model"
                        )
                    if target == model.name:
                        raise ValueError(f"model {model.name!r} cannot fall back to itself")
        owners: dict[str, str] = {}
        for model in self.models:
            for index, deployment in enumerate(model.deployments):
                name = deployment.name or f"{model.name}[{index}]"
                if name in owners:
                    raise ValueError(
                        f"deployment name {name!r} is used twice (models {owners[name]!r} and "
                        f"{model.name!r}): it names the deployment in the ledger, metrics and "
                        "x-llmplane-deployment, so it must be unique"
                    )
                owners[name] = model.name
        default = self.defaults.moderation_model
        if default is not None and default not in seen:
            raise ValueError(
                f"defaults.moderation_model names {default!r}, which is not a configured model"
            )
        return self

    def deployment_slos(self) -> dict[str, Slo]:
        """Each deployment's objectives by its ledger name (its own, else its model's)."""
        slos: dict[str, Slo] = {}
        for model in self.models:
            for index, deployment in enumerate(model.deployments):
                slo = deployment.slo or model.slo
                if slo is not None:
                    slos[deployment.name or f"{model.name}[{index}]"] = slo
        return slos

    def model(self, name: str) -> ModelConfig | None:
        """The model called ``name``, if configured."""
        return next((m for m in self.models if m.name == name), None)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _interpolate(value: Any, env: Mapping[str, str], file: str, loc: tuple[int | str, ...]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, file, (*loc, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, file, (*loc, i)) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"environment variable {name} is not set (write ${{{name}:-}} to make it optional)",
            file=file,
            key_path=_key_path(loc),
        )

    return _ENV_REF.sub(substitute, value)


def parse_platform_config(
    raw: Any, *, file: str, env: Mapping[str, str] | None = None
) -> PlatformConfig:
    """Validate already-parsed YAML data (with ``${ENV}`` references) as a platform config."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the file must contain a mapping (e.g. 'models: [...]')", file=file)
    data = _interpolate(raw, os.environ if env is None else env, file, ())
    try:
        config = PlatformConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(part for part in first["loc"] if not str(part).startswith("function-"))
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        raise ConfigError(reason, file=file, key_path=_key_path(loc) or None) from None
    config._file = file
    return config


def load_platform_config(path: Path | None, env: Mapping[str, str] | None = None) -> PlatformConfig:
    """Load ``llmplane.yaml`` from ``path``, or the built-in defaults when ``path`` is ``None``."""
    env = os.environ if env is None else env
    if path is None:
        return default_platform_config(env)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the file ({exc.strerror})", file=str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{where}", file=str(path)) from None
    return parse_platform_config(raw, file=str(path), env=env)


def default_platform_config(env: Mapping[str, str]) -> PlatformConfig:
    """``mock`` and ``mock-embed``, plus OpenAI's common models when ``OPENAI_API_KEY`` is set."""
    models: list[dict[str, Any]] = [
        {"name": "mock", "deployments": [{"provider": "mock"}], "price": MOCK_PRICE},
        {
            "name": "mock-embed",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.0},
        },
    ]
    if env.get("OPENAI_API_KEY"):
        models += [
            {
                "name": name,
                "deployments": [
                    {
                        "provider": "openai",
                        "model": name,
                        "api_base": "${OPENAI_BASE_URL:-https://api.openai.com/v1}",
                        "api_key": "${OPENAI_API_KEY}",
                    }
                ],
            }
            for name in DEFAULT_OPENAI_MODELS
        ]
    return parse_platform_config(
        {"models": models, "defaults": {"moderation_model": "mock"}},
        file="<built-in defaults>",
        env=env,
    )


def config_path_from(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """The config file to use: ``--config``, else ``LLMPLANE_CONFIG``, else none."""
    if explicit is not None:
        return explicit
    value = env.get("LLMPLANE_CONFIG")
    return Path(value) if value else None
