"""The fast path: any OpenAI-compatible upstream (OpenAI, Azure OpenAI, vLLM, TGI, Ollama,
llama.cpp).

One pooled aiohttp session per deployment; the body goes out as bytes, the
reply comes back as bytes and is passed on unchanged; streams are cut into
whole SSE events as they arrive. Only the deployment's own URL and key are
ever used: nothing in a client's request can change where a call goes.
"""

from __future__ import annotations

from typing import Any

from llmplane.config.platform import DeploymentConfig, Timeouts
from llmplane.gateway.providers._http import SSEEvents, UpstreamHTTP
from llmplane.gateway.providers.base import Endpoint, UpstreamReply
from llmplane.gateway.tokens import extract_usage

_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.MODERATIONS: "/moderations",
    Endpoint.RERANK: "/rerank",  # vLLM, TEI, Jina and Cohere-style servers
    Endpoint.RESPONSES: "/responses",
}


_WAITING = ("vllm:num_requests_waiting",)
_KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def _vllm_load(text: str) -> tuple[float, float] | None:
    """Requests waiting (summed over models) and the highest KV-cache usage, from vLLM's
    Prometheus exposition; ``None`` when neither gauge is there."""
    waiting: float | None = None
    kv_cache: float | None = None
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        try:
            value = float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue
        if name in _WAITING:
            waiting = (waiting or 0.0) + value
        elif name in _KV_CACHE:
            kv_cache = max(kv_cache or 0.0, value)
    if waiting is None and kv_cache is None:
        return None
    return waiting or 0.0, kv_cache or 0.0


class OpenAICompatibleProvider:
    """Calls one OpenAI-compatible deployment over a pooled aiohttp session."""

    def __init__(
        self, deployment_id: str, config: DeploymentConfig, timeouts: Timeouts | None = None
    ) -> None:
        assert config.api_base is not None
        base = config.api_base.rstrip("/")
        headers = {"Content-Type": "application/json", **config.headers}
        key = config.upstream_key()
        if config.provider == "azure":
            # Azure OpenAI: the deployment is in the path, the version in the query string,
            # the key in an api-key header.
            deployment = config.azure_deployment or config.model or deployment_id
            root = f"{base}/openai/deployments/{deployment}"
            query = f"?api-version={config.api_version}"
            self._urls = {endpoint: root + path + query for endpoint, path in _PATHS.items()}
            # The Responses API lives only on Azure's OpenAI-compatible v1 surface: no
            # deployment in the path, no api-version; the deployment goes in the body's model.
            self._urls[Endpoint.RESPONSES] = f"{base}/openai/v1/responses"
            self._azure_deployment: str | None = deployment
            if key is not None:
                headers["api-key"] = key
        else:
            self._urls = {endpoint: base + path for endpoint, path in _PATHS.items()}
            self._azure_deployment = None
            if key is not None:
                headers["Authorization"] = f"Bearer {key}"
        self._http = UpstreamHTTP(deployment_id, config, timeouts, headers)

    def _body(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        if endpoint is Endpoint.RESPONSES and self._azure_deployment is not None:
            return {**body, "model": self._azure_deployment}  # Azure's v1 surface
        return body

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Send the request and return the upstream's body untouched, with its usage."""
        response = await self._http.post(
            self._urls[endpoint], self._body(endpoint, body), request_id
        )
        payload = await self._http.read(response)
        return UpstreamReply(payload, extract_usage(payload))

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> SSEEvents:
        """Start a streaming request; events are read as the client consumes them."""
        response = await self._http.post(
            self._urls[endpoint], self._body(endpoint, body), request_id, stream=True
        )
        return SSEEvents(response, self._http.deployment_id)

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """``GET`` ``path`` on the upstream server's root; any answer below 400 is healthy."""
        return await self._http.healthy(path, timeout_s)

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """vLLM's ``num_requests_waiting`` and KV-cache usage from its Prometheus text."""
        text = await self._http.get_text(path, timeout_s)
        return None if text is None else _vllm_load(text)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()
