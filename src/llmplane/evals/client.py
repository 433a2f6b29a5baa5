"""The harness's client of the gateway: model calls (so they are budgeted, attributed
and tagged as eval spend) and the eval-run API that stores results.

Every model call carries ``x-llmplane-tags: purpose=eval, eval_suite=…, eval_run=…``,
which the ledger keeps on its rows, so eval spend can be told apart from production's.
A 429 or 503 with a short ``retry-after`` is retried (three times at most); anything
else is the case's error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

_RETRIES = 3
_MAX_RETRY_WAIT_S = 10.0


class GatewayError(Exception):
    """The gateway refused or failed a call (its OpenAI-shaped message and status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A chat completion's text, whole body, cost (from ``x-llmplane-cost-usd``) and
    latency (request sent to body read)."""

    text: str
    raw: dict[str, Any]
    cost_usd: float
    latency_ms: float


def _tags_header(tags: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v.replace(',', ' ')}" for k, v in tags.items())


def _message(data: bytes, status: int) -> str:
    try:
        return str(orjson.loads(data)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"HTTP {status}"


class GatewayClient:
    """One HTTP session to the gateway at ``base_url`` (its root, as ``LLMPLANE_URL``),
    with the caller's key; implements :class:`llmplane.evals.scoring.ScoringContext`."""

    def __init__(self, base_url: str, key: str, *, timeout_s: float = 120) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.tags: dict[str, str] = {"purpose": "eval"}

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """One call with retries of short 429/503 waits; (status, body, headers)."""
        data = orjson.dumps(body) if body is not None else None
        for attempt in range(_RETRIES + 1):
            async with self._http().request(
                method,
                self.base_url + path,
                data=data,
                headers={**self._headers, **(headers or {})},
            ) as response:
                payload = await response.read()
                if response.status in (429, 503) and attempt < _RETRIES:
                    wait = response.headers.get("retry-after", "1")
                    seconds = float(wait) if wait.replace(".", "", 1).isdigit() else 1.0
                    if seconds <= _MAX_RETRY_WAIT_S:
                        await asyncio.sleep(seconds)
                        continue
                return response.status, payload, response.headers
        raise AssertionError("unreachable")  # pragma: no cover

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call of the gateway's API; :class:`GatewayError` unless 2xx."""
        status, payload, _ = await self.request(method, path, body)
        if not 200 <= status < 300:
            raise GatewayError(status, _message(payload, status))
        return orjson.loads(payload) if payload else None

    async def chat_completion(self, body: Mapping[str, Any]) -> ChatResult:
        """``POST /v1/chat/completions`` with the eval tags."""
        started = time.perf_counter()
        status, payload, headers = await self.request(
            "POST",
            "/v1/chat/completions",
            body,
            {"x-llmplane-tags": _tags_header(self.tags)},
        )
        latency_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise GatewayError(status, _message(payload, status))
        raw = orjson.loads(payload)
        try:
            message = raw["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise GatewayError(status, "the answer has no choices[0].message") from None
        text = message.get("content")
        if text is None and message.get("tool_calls"):
            text = orjson.dumps(message["tool_calls"]).decode()
        cost = float(headers.get("x-llmplane-cost-usd", "0") or 0)
        return ChatResult(text or "", raw, cost, latency_ms)

    async def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> str:
        """The answer's text (for scorers such as an LLM judge)."""
        result = await self.chat_completion({**params, "model": model, "messages": messages})
        return result.text

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """One embedding per text, through ``/v1/embeddings``."""
        status, payload, _ = await self.request(
            "POST",
            "/v1/embeddings",
            {"model": model, "input": list(texts)},
            {"x-llmplane-tags": _tags_header(self.tags)},
        )
        if status != 200:
            raise GatewayError(status, _message(payload, status))
        data = sorted(orjson.loads(payload)["data"], key=lambda item: item["index"])
        return [list(item["embedding"]) for item in data]

    async def get_prompt(self, name: str, label: str | None, version: int | None) -> Any:
        """A registered prompt's version (``GET /v1/prompts/{name}``)."""
        query = urlencode(
            {"version": version} if version is not None else {"label": label or "production"}
        )
        return await self.api("GET", f"/v1/prompts/{quote(name, safe='')}?{query}")
