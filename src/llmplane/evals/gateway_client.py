"""The eval harness's client of the gateway: chat completions and embeddings over the
OpenAI-compatible API with a key, so that eval traffic (the runner's model calls and the
scorers' judge and embedding calls) is budgeted, rate-limited and attributed like any
other, and tagged (``x-llmplane-tags``, default ``purpose=eval-judge``) so that
``llmplane spend --by tag`` shows what evals cost.

It implements :class:`~llmplane.evals.scoring.ScoringContext`::

    async with GatewayClient("http://localhost:4000", key) as gateway:
        score = await build_scorer("llm_judge", {...}).score(case, output, gateway)
        reply, cost_usd, latency_s = await gateway.complete({"model": "gpt-4o", ...})

It makes no retries of its own: the gateway's routing already retries and falls back.
Errors are :class:`GatewayCallError` with the gateway's status and message (never the key).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp
import orjson

__all__ = ["COST_HEADER", "DEFAULT_TAGS", "GatewayCallError", "GatewayClient"]

COST_HEADER = "x-llmplane-cost-usd"
"""What the gateway says a call cost, in US dollars (absent when the model has no price)."""
TAGS_HEADER = "x-llmplane-tags"
DEFAULT_TAGS: Mapping[str, str] = {"purpose": "eval-judge"}
_MAX_TAGS = 20


class GatewayCallError(Exception):
    """A call the gateway refused or failed (``status`` 0: it could not be reached)."""

    def __init__(self, message: str, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def tags_header(tags: Mapping[str, str]) -> str:
    """``purpose=eval-judge, suite=support`` as the gateway reads it."""
    if len(tags) > _MAX_TAGS:
        raise ValueError(f"at most {_MAX_TAGS} tags")
    for name, value in tags.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("tag names and values must be strings")
        if not name.strip() or any(c in name + value for c in ",=\r\n"):
            raise ValueError(f"tag {name!r}: names and values must not hold ',', '=' or newlines")
    return ", ".join(f"{name}={value}" for name, value in tags.items())


def _error_message(status: int, raw: bytes) -> tuple[str, str | None]:
    try:
        error = orjson.loads(raw).get("error") or {}
        message, code = str(error.get("message") or ""), error.get("code")
    except (orjson.JSONDecodeError, AttributeError):
        message, code = "", None
    shown = message[:500] if message else raw[:200].decode("utf-8", "replace")
    return f"the gateway answered {status}: {shown}", code if isinstance(code, str) else None


class GatewayClient:
    """Chat, embeddings and raw completions through the gateway at ``base_url`` (with or
    without the ``/v1``), with ``api_key`` and ``tags`` on every call."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        tags: Mapping[str, str] | None = DEFAULT_TAGS,
        timeout_s: float = 300.0,
        max_connections: int = 100,
    ) -> None:
        root = base_url.rstrip("/")
        self.base_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self._headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
        if tags:
            self._headers[TAGS_HEADER] = tags_header(tags)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the key
        return f"GatewayClient({self.base_url!r})"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def _post(
        self, path: str, body: Mapping[str, Any], tags: Mapping[str, str] | None
    ) -> tuple[dict[str, Any], float | None, float]:
        headers = self._headers
        if tags is not None:
            headers = {**headers, TAGS_HEADER: tags_header(tags)}
        url = f"{self.base_url}{path}"
        started = time.perf_counter()
        try:
            async with self._client().post(url, data=orjson.dumps(body), headers=headers) as reply:
                raw = await reply.read()
                cost = reply.headers.get(COST_HEADER)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise GatewayCallError(f"could not reach the gateway at {url}: {kind}") from None
        latency = time.perf_counter() - started
        if status >= 400:
            message, code = _error_message(status, raw)
            raise GatewayCallError(message, status, code)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise GatewayCallError(f"the gateway answered {status} with no JSON", status) from None
        if not isinstance(answer, dict):
            raise GatewayCallError(f"the gateway answered {status} with no JSON object", status)
        return answer, None if cost is None else float(cost), latency

    async def complete(
        self, body: Mapping[str, Any], *, tags: Mapping[str, str] | None = None
    ) -> tuple[dict[str, Any], float | None, float]:
        """One chat completion: (the reply's JSON, its cost in USD when the model is priced,
        seconds it took); ``tags`` replace the client's for this call."""
        return await self._post("/v1/chat/completions", body, tags)

    async def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> str:
        """The answer's text of one chat completion (``params``: temperature, …)."""
        reply, _, _ = await self.complete({"model": model, "messages": list(messages), **params})
        try:
            content = reply["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise GatewayCallError(f"{model} answered with no choices") from None
        return content if isinstance(content, str) else ""

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """One embedding per text, in order."""
        reply, _, _ = await self._post(
            "/v1/embeddings", {"model": model, "input": list(texts)}, None
        )
        try:
            data = sorted(reply["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (KeyError, TypeError, ValueError):
            raise GatewayCallError(f"{model} answered with no embeddings") from None
        if len(vectors) != len(texts):
            raise GatewayCallError(
                f"{model} answered {len(vectors)} embeddings for {len(texts)} texts"
            )
        return vectors

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
