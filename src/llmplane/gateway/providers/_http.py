"""The HTTP plumbing every network provider shares: pooled session, timeouts, errors, SSE.

A provider says what its wire format is (URLs, headers, how its error bodies read);
this module does the rest the same way for all of them: one pooled aiohttp session
per deployment, the model's timeouts, upstream statuses and transport failures
mapped onto :mod:`llmplane.errors`, streams cut into whole SSE events, and the
health probe.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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

_MAX_ERROR_BODY = 64 * 1024

ErrorDetails = tuple[str | None, str | None, str | None]
"""What an upstream error body says: message, code, param (each ``None`` when absent)."""

ReadError = Callable[[bytes], ErrorDetails]


def _text(value: Any, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def openai_error_details(body: bytes) -> ErrorDetails:
    """Message, code and param of an OpenAI-shaped error body."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return None, None, None
    if not isinstance(error, dict):
        return _text(error, 1000), None, None
    return (
        _text(error.get("message"), 1000),
        _text(error.get("code"), 100),
        _text(error.get("param"), 200),
    )


def upstream_error(
    status: int, details: ErrorDetails, retry_after: str | None, deployment: str
) -> LLMPlaneError:
    """The error of an upstream's HTTP ``status``; never says anything about its key."""
    message, code, param = details
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
    headers = {"retry-after": retry_after} if retry_after else None
    if status == 529:  # Anthropic's "overloaded": busy, not broken
        return UpstreamUnavailableError(
            f"The upstream of deployment {deployment!r} is overloaded.", headers=headers
        )
    return UpstreamError(
        f"The upstream of deployment {deployment!r} failed with HTTP {status}.",
        code="upstream_error",
        headers=headers,
    )


def transport_error(exc: BaseException, deployment: str) -> LLMPlaneError:
    """The error of a connection that failed, timed out or broke off."""
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


class SSEEvents:
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
            raise transport_error(exc, self._deployment) from None
        if buffer.strip():
            yield [buffer.rstrip(b"\n") + b"\n\n"]

    async def aclose(self) -> None:
        # close(), not release(): an abandoned stream must stop the upstream generating.
        self._response.close()


class UpstreamHTTP:
    """One deployment's pooled connection to its upstream, with its timeouts.

    ``headers`` go on every request (the provider's auth and version headers);
    ``read_error`` reads the provider's error bodies."""

    def __init__(
        self,
        deployment_id: str,
        config: DeploymentConfig,
        timeouts: Timeouts | None,
        headers: dict[str, str],
        read_error: ReadError = openai_error_details,
    ) -> None:
        assert config.api_base is not None
        self.deployment_id = deployment_id
        self.base = config.api_base.rstrip("/")
        self._headers = headers
        self._read_error = read_error
        self._max_connections = config.max_connections
        limits = timeouts or Timeouts()
        connect = limits.connect_s or config.connect_timeout_s
        self.timeout = aiohttp.ClientTimeout(
            total=limits.total_s or config.timeout_s, connect=connect
        )
        # A stream's time to first token is the caller's to bound; between events, chunk_s.
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_read=limits.chunk_s or config.timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        """The pooled session, made on first use (inside the server's event loop)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def post(
        self, url: str, body: dict[str, Any], request_id: str, *, stream: bool = False
    ) -> aiohttp.ClientResponse:
        """``POST`` ``body`` as JSON; an upstream error status is raised as an error."""
        try:
            response = await self.client().post(
                url,
                data=orjson.dumps(body),
                headers={"X-Request-Id": request_id},
                timeout=self.stream_timeout if stream else self.timeout,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, self.deployment_id) from None
        if response.status >= 400:
            try:
                payload = await response.content.read(_MAX_ERROR_BODY)
                raise upstream_error(
                    response.status,
                    self._read_error(payload),
                    response.headers.get("retry-after"),
                    self.deployment_id,
                )
            finally:
                response.release()
        return response

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body of a successful response."""
        try:
            return await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, self.deployment_id) from None
        finally:
            response.release()

    def root_url(self, path: str) -> str:
        """``path`` on the upstream server's root (health and metrics live there)."""
        origin = urlsplit(self.base)
        return f"{origin.scheme}://{origin.netloc}{path}"

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """``GET`` ``path`` on the upstream server's root; any answer below 400 is healthy."""
        try:
            async with self.client().get(
                self.root_url(path), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                await response.read()
                return response.status < 400
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def get_text(self, path: str, timeout_s: float) -> str | None:
        """The text at ``path`` on the server's root, or ``None`` if it cannot be read."""
        try:
            async with self.client().get(
                self.root_url(path), timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                if response.status >= 400:
                    return None
                return await response.text()
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None
