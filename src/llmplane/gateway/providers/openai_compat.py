"""The fast path: any OpenAI-compatible upstream (OpenAI, Azure OpenAI, vLLM, TGI, Ollama,
llama.cpp).

One pooled aiohttp session per deployment; the body goes out as bytes, the
reply comes back as bytes and is passed on unchanged; streams are cut into
whole SSE events as they arrive. Only the deployment's own URL and key are
ever used: nothing in a client's request can change where a call goes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
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
from llmplane.gateway.providers.base import Endpoint, UpstreamReply
from llmplane.gateway.tokens import extract_usage

_MAX_ERROR_BODY = 64 * 1024
_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.MODERATIONS: "/moderations",
    Endpoint.RERANK: "/rerank",  # vLLM, TEI, Jina and Cohere-style servers
    Endpoint.RESPONSES: "/responses",
}


def _upstream_message(body: bytes) -> tuple[str | None, str | None, str | None]:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None, None, None
    if not isinstance(error, dict):
        return (error if isinstance(error, str) else None), None, None
    message, code, param = error.get("message"), error.get("code"), error.get("param")
    return (
        message[:1000] if isinstance(message, str) else None,
        code[:100] if isinstance(code, str) else None,
        param[:200] if isinstance(param, str) else None,
    )


async def _error_for(response: aiohttp.ClientResponse, deployment: str) -> LLMPlaneError:
    status = response.status
    body = await response.content.read(_MAX_ERROR_BODY)
    message, code, param = _upstream_message(body)
    retry_after = response.headers.get("retry-after")
    if status in (401, 403):
        return UpstreamError(
            f"The upstream of deployment {deployment!r} rejected the platform's credentials; "
            "ask the platform team to check its provider key.",
            code="upstream_auth_failed",
        )
    if status == 429:
        return RateLimitError(
            f"The upstream of deployment {deployment!r} is rate limiting: "
            f"{message or 'too many requests'}",
            code="upstream_rate_limited",
            headers={"retry-after": retry_after} if retry_after else None,
        )
    if status == 408:
        return UpstreamTimeoutError(f"The upstream of deployment {deployment!r} timed out.")
    if 400 <= status < 500:
        return UpstreamRejectedError(
            message or f"The upstream refused the request (HTTP {status}).",
            upstream_status=status,
            code=code,
            param=param,
        )
    return UpstreamError(
        f"The upstream of deployment {deployment!r} failed with HTTP {status}.",
        code="upstream_error",
        headers={"retry-after": retry_after} if retry_after else None,
    )


def _transport_error(exc: BaseException, deployment: str) -> LLMPlaneError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(f"The upstream of deployment {deployment!r} timed out.")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailableError(
            f"The upstream of deployment {deployment!r} is unreachable."
        )
    return UpstreamError(
        f"The connection to the upstream of deployment {deployment!r} broke off.",
        code="upstream_disconnected",
    )


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


class _SSEEvents:
    """Whole SSE events from an upstream response, in the batches they arrive in."""

    def __init__(self, response: aiohttp.ClientResponse, deployment: str) -> None:
        self._response = response
        self._deployment = deployment

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        buffer = b""
        try:
            async for data in self._response.content.iter_any():
                if b"\r" in data:
                    data = data.replace(b"\r\n", b"\n")
                buffer += data
                end = buffer.rfind(b"\n\n")
                if end >= 0:
                    events = buffer[: end + 2].split(b"\n\n")
                    buffer = buffer[end + 2 :]
                    yield [event + b"\n\n" for event in events if event]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, self._deployment) from None
        if buffer.strip():
            yield [buffer.rstrip(b"\n") + b"\n\n"]

    async def aclose(self) -> None:
        # close(), not release(): an abandoned stream must stop the upstream generating.
        self._response.close()


class OpenAICompatibleProvider:
    """Calls one OpenAI-compatible deployment over a pooled aiohttp session."""

    def __init__(
        self, deployment_id: str, config: DeploymentConfig, timeouts: Timeouts | None = None
    ) -> None:
        assert config.api_base is not None
        self._id = deployment_id
        self._base = config.api_base.rstrip("/")
        self._config = config
        self._headers = {"Content-Type": "application/json", **config.headers}
        key = config.upstream_key()
        if config.provider == "azure":
            # Azure OpenAI: the deployment is in the path, the version in the query string,
            # the key in an api-key header.
            deployment = config.azure_deployment or config.model or deployment_id
            root = f"{self._base}/openai/deployments/{deployment}"
            query = f"?api-version={config.api_version}"
            self._urls = {endpoint: root + path + query for endpoint, path in _PATHS.items()}
            # The Responses API lives only on Azure's OpenAI-compatible v1 surface: no
            # deployment in the path, no api-version; the deployment goes in the body's model.
            self._urls[Endpoint.RESPONSES] = f"{self._base}/openai/v1/responses"
            self._azure_deployment: str | None = deployment
            if key is not None:
                self._headers["api-key"] = key
        else:
            self._urls = {endpoint: self._base + path for endpoint, path in _PATHS.items()}
            self._azure_deployment = None
            if key is not None:
                self._headers["Authorization"] = f"Bearer {key}"
        limits = timeouts or Timeouts()
        connect = limits.connect_s or config.connect_timeout_s
        self._timeout = aiohttp.ClientTimeout(
            total=limits.total_s or config.timeout_s, connect=connect
        )
        # A stream's time to first token is the caller's to bound; between events, chunk_s.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_read=limits.chunk_s or config.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._config.max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def _post(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        request_id: str,
        limits: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        if endpoint is Endpoint.RESPONSES and self._azure_deployment is not None:
            body = {**body, "model": self._azure_deployment}
        try:
            response = await self._client().post(
                self._urls[endpoint],
                data=orjson.dumps(body),
                headers={"X-Request-Id": request_id},
                timeout=limits,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, self._id) from None
        if response.status >= 400:
            try:
                raise await _error_for(response, self._id)
            finally:
                response.release()
        return response

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Send the request and return the upstream's body untouched, with its usage."""
        response = await self._post(endpoint, body, request_id, self._timeout)
        try:
            payload = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, self._id) from None
        finally:
            response.release()
        return UpstreamReply(payload, extract_usage(payload))

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> _SSEEvents:
        """Start a streaming request; events are read as the client consumes them."""
        response = await self._post(endpoint, body, request_id, self._stream_timeout)
        return _SSEEvents(response, self._id)

    def _root_url(self, path: str) -> str:
        """``path`` on the upstream server's root (health and metrics live there)."""
        origin = urlsplit(self._base)
        return f"{origin.scheme}://{origin.netloc}{path}"

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """``GET`` ``path`` on the upstream server's root; any answer below 400 is healthy."""
        try:
            async with self._client().get(
                self._root_url(path), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                await response.read()
                return response.status < 400
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """vLLM's ``num_requests_waiting`` and KV-cache usage from its Prometheus text."""
        try:
            async with self._client().get(
                self._root_url(path), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                if response.status >= 400:
                    return None
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None
        return _vllm_load(text)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
