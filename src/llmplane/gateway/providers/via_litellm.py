"""The long tail of providers (Gemini and Vertex AI, Bedrock, Mistral, Cohere, Groq, …)
through LiteLLM's adapters.

A ``provider: litellm`` deployment names LiteLLM's model string (``gemini/gemini-2.5-flash``,
``bedrock/anthropic.claude-…``, ``mistral/mistral-large-latest``); LiteLLM translates the
OpenAI-shaped request to the provider's API and the answer back. It is the slow path
(``bench/providers.py`` measures its CPU per call against the native adapters), so:

- LiteLLM (~4 s to import) is imported on first use, in a worker thread, never at start-up
  of a gateway that has no such deployment; ``LITELLM_LOCAL_MODEL_COST_MAP`` keeps that
  import off the network.
- Only the OpenAI parameters in :data:`CLIENT_PARAMS` are taken from the client's body:
  LiteLLM also reads ``api_base``, ``api_key``, ``aws_*`` and other credentials from its
  keyword arguments, and a client must never choose where a call goes or with which key.
  The deployment's own ``api_base``, ``api_key`` and ``litellm_params`` always win.
- LiteLLM's own retries are off (``num_retries=0``, ``max_retries=0``): the gateway's
  router makes exactly the configured number of attempts, across deployments.
- Its exceptions become the same :mod:`llmplane.errors` as the native adapters', with the
  provider key scrubbed from any message that is passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import orjson

from llmplane.config.platform import DeploymentConfig, Timeouts
from llmplane.errors import (
    LLMPlaneError,
    RateLimitError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from llmplane.gateway.providers.base import Endpoint, UpstreamReply, Usage
from llmplane.secret_scrub import SecretScrubber

#: The OpenAI chat parameters a client may send through LiteLLM (anything else is dropped).
CLIENT_PARAMS = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "seed",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "web_search_options",
        "thinking",  # Anthropic-family extended thinking, understood by LiteLLM
        "top_k",
        # embeddings and rerank
        "input",
        "dimensions",
        "encoding_format",
        "query",
        "documents",
        "top_n",
        "return_documents",
    }
)

_module: ModuleType | None = None


def _import_litellm() -> ModuleType:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_TELEMETRY", "False")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    litellm.turn_off_message_logging = True
    return litellm


async def load_litellm() -> ModuleType:
    """LiteLLM, imported once, in a thread so that the event loop keeps serving meanwhile."""
    global _module
    if _module is None:
        # Concurrent first calls each wait in a thread; Python's import lock makes the
        # module initialise once.
        try:
            _module = await asyncio.to_thread(_import_litellm)
        except ImportError:
            raise UpstreamUnavailableError(
                "This deployment needs LiteLLM, which is not installed: "
                "pip install 'llmplane[providers]'.",
                code="provider_not_installed",
            ) from None
    return _module


def _clean(value: Any) -> Any:
    """LiteLLM's objects as plain OpenAI JSON: its ``provider_specific_fields`` removed."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k != "provider_specific_fields"}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _dump(response: Any) -> dict[str, Any]:
    dumped = response.model_dump() if hasattr(response, "model_dump") else dict(response)
    cleaned: dict[str, Any] = _clean(dumped)
    return cleaned


def _usage(payload: dict[str, Any]) -> Usage | None:
    usage = payload.get("usage")
    if isinstance(usage, dict) and "prompt_tokens" in usage and "completion_tokens" not in usage:
        usage = {**usage, "completion_tokens": 0}  # embeddings
    return Usage.from_openai(usage)


class _LiteLLMEvents:
    """LiteLLM's stream of chunk objects as OpenAI SSE events, one batch per chunk."""

    def __init__(self, stream: Any, provider: LiteLLMProvider) -> None:
        self._stream = stream
        self._provider = provider

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        try:
            async for chunk in self._stream:
                event = chunk.model_dump(exclude_none=True)
                if "usage" in event:
                    # OpenAI's usage chunk has no choices; LiteLLM sends an empty delta.
                    choices = event.get("choices") or ()
                    event["choices"] = [c for c in choices if c.get("delta") or c.get("logprobs")]
                yield [b"data: " + orjson.dumps(_clean(event)) + b"\n\n"]
        except LLMPlaneError:
            raise
        except Exception as exc:  # noqa: BLE001 - every LiteLLM failure becomes ours
            raise self._provider.error_for(exc) from None
        yield [b"data: [DONE]\n\n"]

    async def aclose(self) -> None:
        # Closes the provider's HTTP response, so an abandoned stream stops generating.
        with contextlib.suppress(Exception):  # closing is best effort
            await self._stream.aclose()


class LiteLLMProvider:
    """One deployment served through LiteLLM's adapter for its provider."""

    def __init__(
        self, deployment_id: str, config: DeploymentConfig, timeouts: Timeouts | None = None
    ) -> None:
        assert config.model is not None
        self._id = deployment_id
        key = config.upstream_key()
        limits = timeouts or Timeouts()
        fixed: dict[str, Any] = {
            "model": config.model,
            "timeout": limits.total_s or config.timeout_s,
            "num_retries": 0,
            "max_retries": 0,
        }
        if config.api_base:
            fixed["api_base"] = config.api_base
        if key is not None:
            fixed["api_key"] = key
        if config.headers:
            fixed["extra_headers"] = dict(config.headers)
        for name, value in config.litellm_params.items():
            fixed[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        # Every string the deployment passes (its key among them) but its model and URL
        # may be a credential: none of them may reach a client in an error message.
        public = (config.model, config.api_base)
        self._scrub_secrets = SecretScrubber(
            v for v in fixed.values() if isinstance(v, str) and v not in public
        )
        self._fixed = fixed

    def _arguments(self, body: dict[str, Any]) -> dict[str, Any]:
        arguments = {k: v for k, v in body.items() if k in CLIENT_PARAMS}
        arguments.update(self._fixed)
        return arguments

    def _scrub(self, text: str) -> str:
        return self._scrub_secrets(text)[:1000]

    def error_for(self, exc: BaseException) -> LLMPlaneError:
        """LiteLLM's exception as the gateway's error (the same ones the native adapters raise)."""
        if isinstance(exc, LLMPlaneError):
            return exc
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return UpstreamTimeoutError(f"The upstream of deployment {self._id!r} timed out.")
        status = getattr(exc, "status_code", None)
        name = type(exc).__name__
        message = self._scrub(str(getattr(exc, "message", None) or exc))
        headers = _response_headers(exc)
        retry_after = headers.get("retry-after")
        if name == "Timeout" or status == 408:
            return UpstreamTimeoutError(f"The upstream of deployment {self._id!r} timed out.")
        if status in (401, 403) or name in ("AuthenticationError", "PermissionDeniedError"):
            return UpstreamError(
                f"The upstream of deployment {self._id!r} rejected the platform's credentials; "
                "ask the platform team to check its provider key.",
                code="upstream_auth_failed",
            )
        if status == 429 or name == "RateLimitError":
            return RateLimitError(
                f"The upstream of deployment {self._id!r} is rate limiting: {message}",
                code="upstream_rate_limited",
                headers={"retry-after": retry_after} if retry_after else None,
            )
        if name == "ContextWindowExceededError":
            return UpstreamRejectedError(
                message, upstream_status=400, code="context_length_exceeded"
            )
        if name == "ContentPolicyViolationError":
            return UpstreamRejectedError(
                message, upstream_status=400, code="content_policy_violation"
            )
        if isinstance(status, int) and 400 <= status < 500:
            return UpstreamRejectedError(message, upstream_status=status)
        if name == "APIConnectionError" or status is None:
            return UpstreamUnavailableError(
                f"The upstream of deployment {self._id!r} is unreachable or broke off: {message}"
            )
        return UpstreamError(
            f"The upstream of deployment {self._id!r} failed with HTTP {status}.",
            code="upstream_error",
            headers={"retry-after": retry_after} if retry_after else None,
        )

    async def _call(self, endpoint: Endpoint, body: dict[str, Any], stream: bool) -> Any:
        litellm = await load_litellm()
        arguments = self._arguments(body)
        try:
            if endpoint is Endpoint.CHAT:
                if stream:
                    arguments["stream"] = True
                    arguments["stream_options"] = {"include_usage": True}
                return await litellm.acompletion(**arguments)
            if endpoint is Endpoint.EMBEDDINGS:
                return await litellm.aembedding(**arguments)
            if endpoint is Endpoint.RERANK:
                return await litellm.arerank(**arguments)
        except Exception as exc:  # noqa: BLE001 - every LiteLLM failure becomes ours
            raise self.error_for(exc) from None
        raise UpstreamRejectedError(
            f"Deployment {self._id!r} (through LiteLLM) does not serve {endpoint.value}.",
            upstream_status=400,
            code="unsupported_endpoint",
        )

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Call the provider and return its answer as OpenAI JSON, with its usage."""
        payload = _dump(await self._call(endpoint, body, stream=False))
        return UpstreamReply(orjson.dumps(payload), _usage(payload))

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> _LiteLLMEvents:
        """Start a streaming chat call; LiteLLM raises here when the provider refuses it."""
        if endpoint is not Endpoint.CHAT:
            raise UpstreamRejectedError(
                f"Deployment {self._id!r} streams chat completions only.", upstream_status=400
            )
        return _LiteLLMEvents(await self._call(endpoint, body, stream=True), self)

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """No generic health endpoint across LiteLLM's providers: health comes from calls."""
        return True

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """Hosted providers publish no load metrics."""
        return None

    async def aclose(self) -> None:
        """LiteLLM owns its HTTP clients; nothing of ours to close."""


def _response_headers(exc: BaseException) -> dict[str, str]:
    for attribute in ("litellm_response_headers", "headers"):
        value = getattr(exc, attribute, None)
        if value is not None:
            try:
                return {str(k).lower(): str(v) for k, v in dict(value).items()}
            except (TypeError, ValueError):
                continue
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            return {str(k).lower(): str(v) for k, v in dict(headers).items()}
        except (TypeError, ValueError):
            return {}
    return {}
