"""The upstream simulator's ASGI app: the OpenAI endpoints (``/v1/responses`` through the
gateway's Responses bridge) and Anthropic's Messages API, answered by the mock model.

Every request goes the same way: read the body, record the request, pick a
fault (the ``x-sim-fault`` header, else the first matching queued rule), wait
``latency_ms`` (plus a ``delay`` fault), then drop, fail or answer. Answers come
from the pure functions of :mod:`llmplane.gateway.providers.mock`; this module
adds the checks and the routing; :mod:`llmplane.testing._wire` puts replies on
the wire (pacing, usage hiding and broken transfers).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import orjson

from llmplane.errors import InvalidRequestError, LLMPlaneError
from llmplane.gateway.anthropic import to_chat_request as messages_to_chat
from llmplane.gateway.providers.mock import (
    chat_chunks,
    chat_completion,
    embeddings,
    moderation,
    rerank,
    sse_event,
)
from llmplane.gateway.responses import StreamTranslator, from_chat_reply
from llmplane.gateway.responses import to_chat_request as responses_to_chat
from llmplane.gateway.tokens import content_text, count_tokens
from llmplane.testing import _anthropic
from llmplane.testing._asgi import (
    Receive,
    Scope,
    Send,
    abort_connection,
    read_body,
    send_error,
    serve_lifespan,
)
from llmplane.testing._control import handle_control
from llmplane.testing._faults import Fault, FaultQueue, FaultSpecError
from llmplane.testing._wire import Behaviour, Exchange, send_status_fault

__all__ = ["DEFAULT_MODELS", "RECORDED_REQUESTS", "Behaviour", "SimulatorApp"]

DEFAULT_MODELS = ("sim-model", "sim-embed")
RECORDED_REQUESTS = 1000
"""How many of the latest requests are kept for ``GET /_sim/requests``."""

_HEALTH = orjson.dumps({"status": "ok"})
_Handler = Callable[[Exchange], Awaitable[None]]
_Recorded = tuple[str, str, list[tuple[bytes, bytes]], Any, float]


class SimulatorApp:
    """An OpenAI-compatible upstream with scripted faults, as a raw ASGI app."""

    def __init__(
        self,
        *,
        latency_ms: float = 0,
        ttft_ms: float = 0,
        tokens_per_second: float = 0,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
    ) -> None:
        self._base = Behaviour().updated(
            {"latency_ms": latency_ms, "ttft_ms": ttft_ms, "tokens_per_second": tokens_per_second}
        )
        self._overrides: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.behaviour = self._base
        self.faults = FaultQueue()
        self._recorded: deque[_Recorded] = deque(maxlen=RECORDED_REQUESTS)
        # (path, time.time()) of clients that left while a request was delayed
        self.disconnects: deque[tuple[str, float]] = deque(maxlen=RECORDED_REQUESTS)
        self._authorization = None if api_key is None else b"Bearer " + api_key.encode()
        self.models = list(DEFAULT_MODELS if models is None else models)
        listing = [
            {"id": model, "object": "model", "created": 1700000000, "owned_by": "llmplane-sim"}
            for model in self.models
        ]
        self._models_payload = orjson.dumps({"object": "list", "data": listing})
        self._ids = itertools.count(1)
        self.prompt_cache = _anthropic.PromptCache()
        self._id_prefix = secrets.token_hex(4)
        self._routes: dict[tuple[str, str], _Handler] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", _anthropic.MESSAGES_PATH): self._messages,
            ("POST", "/v1/responses"): self._responses,
            ("POST", "/v1/embeddings"): self._embeddings,
            ("POST", "/v1/moderations"): self._moderations,
            ("POST", "/v1/rerank"): self._rerank,
            ("GET", "/v1/models"): self._models,
            ("GET", "/health"): self._health,
            ("GET", "/metrics"): self._metrics,
        }
        self._paths = {path for _, path in self._routes}

    # -- state, safe to call from any thread ------------------------------------------

    def add_faults(self, *faults: Mapping[str, Any] | Fault) -> None:
        """Queue fault rules after those already queued (all validated before any is added)."""
        self.faults.add([Fault.parse(fault) for fault in faults])

    def configure(self, **settings: Any) -> None:
        """Override behaviour settings (``latency_ms``, ``ttft_ms``, ``tokens_per_second``)."""
        with self._lock:
            overrides = {**self._overrides, **settings}
            self.behaviour = self._base.updated(overrides)
            self._overrides = overrides

    def settings(self) -> dict[str, float]:
        """The behaviour in force."""
        return asdict(self.behaviour)

    def reset_behaviour(self) -> None:
        """Clear queued faults and setting overrides."""
        with self._lock:
            self.faults.clear()
            self._overrides = {}
            self.behaviour = self._base

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self._recorded.clear()

    def reset(self) -> None:
        """Back to as constructed: no faults, no overrides, no recorded requests, an empty
        prompt cache."""
        self.reset_behaviour()
        self.clear_requests()
        self.disconnects.clear()
        self.prompt_cache.clear()

    async def _wait_unless_gone(self, receive: Receive, seconds: float, path: str) -> bool:
        """Sleep ``seconds`` before answering; ``False`` (and the time recorded in
        :attr:`disconnects`) if the client closed the connection meanwhile."""

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(gone())
        try:
            await asyncio.wait_for(asyncio.shield(watcher), seconds)
        except TimeoutError:
            watcher.cancel()
            return True
        self.disconnects.append((path, time.time()))
        return False

    def recorded_requests(self) -> list[dict[str, Any]]:
        """The latest requests, oldest first, with lower-cased header names and parsed bodies."""
        return [
            {
                "method": method,
                "path": path,
                "headers": {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers},
                "body": body,
                "at": at,  # time.time() when the request arrived
            }
            for method, path, headers, body, at in list(self._recorded)
        ]

    # -- the ASGI app ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (or the lifespan, when the server runs one)."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await serve_lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        raw = await read_body(receive)
        if path.startswith("/_sim/"):
            await handle_control(self, method, path, raw, send)
            return

        headers: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = fault_header = version = None
        for name, value in headers:
            if name == b"authorization":
                authorization = value
            elif name in (b"api-key", b"x-api-key"):  # Azure OpenAI's and Anthropic's header
                authorization = b"Bearer " + value
            elif name == b"anthropic-version":
                version = value
            elif name == b"x-sim-fault":
                fault_header = value
        if path.startswith("/openai/deployments/"):
            # Azure OpenAI: /openai/deployments/{name}/chat/completions?api-version=…
            if b"api-version=" not in scope.get("query_string", b""):
                await send_error(send, 404, "Resource not found (no api-version).")
                return
            path = "/v1/" + path.split("/", 4)[4]
        elif path.startswith("/openai/v1/"):
            path = path[len("/openai") :]  # Azure OpenAI's v1 surface (the Responses API)
        body: Any = None
        malformed = False
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                malformed = True
        self._recorded.append((method, path, headers, body, time.time()))

        if fault_header is None:
            fault = self.faults.take(path, body.get("model") if isinstance(body, dict) else None)
        else:
            try:
                fault = Fault.parse(orjson.loads(fault_header))
            except (orjson.JSONDecodeError, FaultSpecError) as exc:
                message = f"Invalid x-sim-fault header: {exc}"
                await self._error(send, path, 400, message, param="x-sim-fault")
                return
        behaviour = self.behaviour
        delay_ms = behaviour.latency_ms
        if fault is not None and fault.kind == "delay":
            delay_ms += fault.ms
        if delay_ms and not await self._wait_unless_gone(receive, delay_ms / 1000, path):
            return
        if fault is not None:
            if fault.kind == "drop":
                await abort_connection(scope, receive)
                return
            if fault.kind == "status":
                await send_status_fault(send, fault, anthropic=path == _anthropic.MESSAGES_PATH)
                return

        expected = self._authorization
        if (
            expected is not None
            and path.startswith("/v1/")
            and not hmac.compare_digest(authorization or b"", expected)
        ):
            message = "Incorrect API key provided."
            await self._error(send, path, 401, message, code="invalid_api_key")
            return
        handler = self._routes.get((method, path))
        if handler is None:
            if path in self._paths:
                await send_error(send, 405, f"Method {method} not allowed on {path}.")
            else:
                await send_error(send, 404, f"Unknown path {path}.", code="unknown_url")
            return
        if method == "POST" and (malformed or not isinstance(body, dict)):
            message = "We could not parse the JSON body of your request: expected a JSON object."
            await self._error(send, path, 400, message)
            return
        if path == _anthropic.MESSAGES_PATH and version is None:
            await _anthropic.send_error(send, 400, "anthropic-version: header is required")
            return
        await handler(Exchange(scope, receive, send, body, fault, behaviour))

    @staticmethod
    async def _error(
        send: Send,
        path: str,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        """An error in the shape of the API that ``path`` belongs to."""
        if path == _anthropic.MESSAGES_PATH:
            await _anthropic.send_error(send, status, message)
        else:
            await send_error(send, status, message, code=code, param=param)

    # -- handlers ----------------------------------------------------------------------

    async def _chat(self, exchange: Exchange) -> None:
        body = exchange.body
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            message = "'messages' must be a non-empty array."
            await send_error(exchange.send, 400, message, param="messages")
            return
        completion_id = f"chatcmpl-{self._id_prefix}{next(self._ids):06x}"
        created = int(time.time())
        fault = exchange.fault
        if fault is not None and fault.kind == "echo":
            await self._echo(exchange, completion_id, created, fault.chunk_chars)
            return
        if body.get("stream") is True:
            source = {**body, "stream_options": None} if exchange.hides_usage else body
            chunks = chat_chunks(source, completion_id, created)
            if await exchange.stream([sse_event(chunk) for chunk in chunks]):
                self.disconnects.append((exchange.scope["path"], time.time()))
            return
        reply = chat_completion(body, completion_id, created)
        if exchange.hides_usage:
            del reply["usage"]
        await exchange.reply(orjson.dumps(reply))

    async def _echo(
        self, exchange: Exchange, completion_id: str, created: int, chunk_chars: int
    ) -> None:
        """The ``echo`` fault: the last user message, verbatim, as the answer."""
        body = exchange.body
        text = next(
            (
                content_text(m.get("content"))
                for m in reversed(body["messages"])
                if isinstance(m, dict) and m.get("role") == "user"
            ),
            "",
        )
        reply = chat_completion({**body, "tools": None}, completion_id, created)
        usage = reply["usage"]
        usage["completion_tokens"] = count_tokens(text)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream") is not True:
            reply["choices"][0]["message"]["content"] = text
            del reply["choices"][1:]
            await exchange.reply(orjson.dumps(reply))
            return
        base = {k: reply[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse_event({**base, "choices": [choice]})

        events = [chunk({"role": "assistant", "content": ""})]
        events += [
            chunk({"content": text[i : i + chunk_chars]}) for i in range(0, len(text), chunk_chars)
        ]
        events.append(chunk({}, "stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            events.append(sse_event({**base, "choices": [], "usage": usage}))
        await exchange.stream(events)

    async def _messages(self, exchange: Exchange) -> None:
        """Anthropic's Messages API (see :mod:`llmplane.testing._anthropic`)."""
        body = exchange.body
        try:
            chat = messages_to_chat(body)
        except LLMPlaneError as exc:
            await _anthropic.send_error(exchange.send, 400, exc.message)
            return
        completion_id = f"chatcmpl-{self._id_prefix}{next(self._ids):06x}"
        if body.get("stream") is True:
            events = _anthropic.message_events(body, chat, completion_id, self.prompt_cache)
            if await exchange.stream(events, anthropic=True):
                self.disconnects.append((exchange.scope["path"], time.time()))
            return
        await exchange.reply(_anthropic.message_reply(body, chat, completion_id, self.prompt_cache))

    async def _responses(self, exchange: Exchange) -> None:
        """The Responses API, generated as chat and translated by the gateway's own bridge
        (one generation logic): the same text, tools, usage and faults as chat. Stateless:
        a ``previous_response_id`` is recorded and otherwise ignored."""
        body = exchange.body
        try:
            chat = responses_to_chat({**body, "previous_response_id": None})
        except InvalidRequestError as exc:
            await send_error(exchange.send, 400, exc.message, param=exc.param)
            return
        request_id = f"{self._id_prefix}{next(self._ids):06x}"
        created = int(time.time())
        if body.get("stream") is True:
            if not exchange.hides_usage:
                chat["stream_options"] = {"include_usage": True}
            translator = StreamTranslator(chat["model"], body, request_id)
            events = [
                e
                for c in chat_chunks(chat, request_id, created)
                for e in translator.feed_events(sse_event(c))
            ]
            events += translator.end()
            if await exchange.stream(events, done=False):
                self.disconnects.append((exchange.scope["path"], time.time()))
            return
        reply = from_chat_reply(
            orjson.dumps(chat_completion(chat, request_id, created)),
            chat["model"],
            body,
            request_id,
        )
        if exchange.hides_usage:
            del reply["usage"]
        await exchange.reply(orjson.dumps(reply))

    async def _embeddings(self, exchange: Exchange) -> None:
        if exchange.body.get("input") is None:
            await send_error(exchange.send, 400, "'input' is a required property.", param="input")
            return
        reply = embeddings(exchange.body)
        if exchange.hides_usage:
            del reply["usage"]
        await exchange.reply(orjson.dumps(reply))

    async def _moderations(self, exchange: Exchange) -> None:
        if exchange.body.get("input") is None:
            await send_error(exchange.send, 400, "'input' is a required property.", param="input")
            return
        reply = moderation(exchange.body, f"modr-{self._id_prefix}{next(self._ids):06x}")
        await exchange.reply(orjson.dumps(reply))

    async def _rerank(self, exchange: Exchange) -> None:
        if not exchange.body.get("query") or not exchange.body.get("documents"):
            await send_error(exchange.send, 400, "'query' and 'documents' are required.")
            return
        reply = rerank(exchange.body, f"rerank-{self._id_prefix}{next(self._ids):06x}")
        # Like vLLM: usage without prompt_tokens, so the gateway has to estimate.
        reply["usage"] = {"total_tokens": reply["usage"]["total_tokens"]}
        await exchange.reply(orjson.dumps(reply))

    async def _models(self, exchange: Exchange) -> None:
        await exchange.reply(self._models_payload)

    async def _metrics(self, exchange: Exchange) -> None:
        """vLLM's load gauges (Prometheus text), from the behaviour settings."""
        behaviour = exchange.behaviour
        text = (
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="sim"}} {behaviour.waiting_requests}\n'
            "# TYPE vllm:gpu_cache_usage_perc gauge\n"
            f'vllm:gpu_cache_usage_perc{{model_name="sim"}} {behaviour.kv_cache_usage}\n'
        )
        await exchange.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; version=0.0.4")],
            }
        )
        await exchange.send({"type": "http.response.body", "body": text.encode()})

    async def _health(self, exchange: Exchange) -> None:
        await exchange.reply(_HEALTH)
