"""The harness's client of the gateway: the scorers' :class:`GatewayClient` (model calls
with the key, budgeted and attributed like any other) plus what a run needs besides —
the eval-run API that stores results, registered prompts, and a retry of short 429/503
waits (a rate limit of the eval key is worth waiting out; the gateway's routing already
retries upstream failures).

Every call of a run (the target's and the scorers') carries ``x-llmplane-tags:
purpose=eval, eval_suite=…, eval_run=…``, which the ledger keeps on its rows, so eval
spend can be told apart from production's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from llmplane.evals.gateway_client import (
    TAGS_HEADER,
    GatewayCallError,
    GatewayClient,
    tags_header,
)

_RETRIES = 3
_MAX_RETRY_WAIT_S = 10.0
_TAG_UNSAFE = re.compile(r"[,=\r\n]")
EVAL_TAGS: Mapping[str, str] = {"purpose": "eval"}


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A chat completion's text, whole body, cost (from ``x-llmplane-cost-usd``; 0 when
    the model has no price) and latency."""

    text: str
    raw: dict[str, Any]
    cost_usd: float
    latency_ms: float


def _answer_text(reply: Mapping[str, Any]) -> str:
    try:
        message = reply["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise GatewayCallError("the answer has no choices[0].message") from None
    text = message.get("content")
    if text is None and message.get("tool_calls"):
        return orjson.dumps(message["tool_calls"]).decode()
    return text if isinstance(text, str) else ""


class HarnessClient(GatewayClient):
    """A :class:`GatewayClient` (so it is also the scorers' context) for one eval run."""

    def __init__(self, base_url: str, api_key: str, *, max_connections: int = 256) -> None:
        super().__init__(base_url, api_key, tags=EVAL_TAGS, max_connections=max_connections)
        self.tags: dict[str, str] = dict(EVAL_TAGS)

    async def __aenter__(self) -> HarnessClient:
        return self

    def tag_run(self, suite: str, run_id: str) -> None:
        """Tag every later call with the suite and the run."""
        self.tags.update({"eval_suite": _TAG_UNSAFE.sub(" ", suite)[:100], "eval_run": run_id})
        self._headers[TAGS_HEADER] = tags_header(self.tags)

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        data = orjson.dumps(body) if body is not None else None
        url = self.base_url + path
        for attempt in range(_RETRIES + 1):
            try:
                async with self._client().request(
                    method, url, data=data, headers=self._headers
                ) as reply:
                    payload = await reply.read()
                    wait = reply.headers.get("retry-after", "1")
                    status = reply.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                raise GatewayCallError(f"could not reach the gateway at {url}: {kind}") from None
            seconds = float(wait) if wait.replace(".", "", 1).isdigit() else 1.0
            if status in (429, 503) and attempt < _RETRIES and seconds <= _MAX_RETRY_WAIT_S:
                await asyncio.sleep(seconds)
                continue
            return status, payload
        raise AssertionError("unreachable")  # pragma: no cover

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call of the gateway's API; :class:`GatewayCallError` unless 2xx."""
        status, payload = await self._request(method, path, body)
        if not 200 <= status < 300:
            try:
                error = orjson.loads(payload)["error"]
                message, code = str(error["message"]), error.get("code")
            except (orjson.JSONDecodeError, KeyError, TypeError):
                message, code = f"HTTP {status}", None
            raise GatewayCallError(f"{message} (HTTP {status})", status, code)
        return orjson.loads(payload) if payload else None

    async def chat_completion(self, body: Mapping[str, Any]) -> ChatResult:
        """One chat completion with the run's tags, waiting out short rate limits."""
        for attempt in range(_RETRIES + 1):
            try:
                reply, cost, seconds = await self.complete(body)
            except GatewayCallError as exc:
                if exc.status in (429, 503) and attempt < _RETRIES:
                    await asyncio.sleep(1.0)
                    continue
                raise
            return ChatResult(_answer_text(reply), reply, cost or 0.0, seconds * 1000)
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_prompt(self, name: str, label: str | None, version: int | None) -> Any:
        """A registered prompt's version (``GET /v1/prompts/{name}``)."""
        selector = {"version": version} if version is not None else {"label": label or "production"}
        return await self.api("GET", f"/v1/prompts/{quote(name, safe='')}?{urlencode(selector)}")
