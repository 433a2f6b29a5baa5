"""The built-in deterministic ``mock`` model, so that the platform answers with no keys.

The same request always gets the same answer. Chat replies echo the last user
message; a tool offered and named in the last user message (or forced by
``tool_choice``) is called with arguments built from its JSON schema, so that
tool loops can be tested; ``response_format`` yields valid JSON (matching a
``json_schema``'s shape); ``max_tokens`` and ``stop`` cut the reply as a real
model would. Embeddings are feature-hashed bag-of-words unit vectors: equal
texts give equal vectors and texts sharing words give similar ones.

The pure functions here are also what the upstream simulator
(:mod:`llmplane.testing.upstream`) serves over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from llmplane.gateway.providers.base import Endpoint, UpstreamReply, Usage
from llmplane.gateway.tokens import TOKEN_PATTERN, content_text, count_tokens, prompt_text

_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\s*\S+")
DEFAULT_EMBEDDING_DIMENSIONS = 384
_SNIPPET_TOKENS = 48


def schema_instance(schema: Any, depth: int = 0) -> Any:
    """A small value that satisfies the common JSON-schema keywords of ``schema``."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema_instance(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {name: schema_instance(sub, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [schema_instance(schema.get("items"), depth + 1)] if schema.get("items") else []
    if kind == "string":
        return "mock"
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    return None


@dataclass(slots=True)
class MockChoice:
    """What the mock answers for one request (the same for every ``n``)."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def _truncate(text: str, max_tokens: int) -> str:
    for index, match in enumerate(TOKEN_PATTERN.finditer(text)):
        if index + 1 == max_tokens:
            return text[: match.end()]
    return text


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        name = tool["function"].get("name")
        return name if isinstance(name, str) else None
    return None


def _chosen_tool(body: dict[str, Any], last: dict[str, Any]) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = [t for t in body.get("tools") or () if _tool_name(t)]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((t for t in tools if _tool_name(t) == wanted), None)
    if last.get("role") == "tool":
        return None
    text = content_text(last.get("content")).lower()
    words = set(_WORD.findall(text))
    named = next((t for t in tools if str(_tool_name(t)).lower() in words), None)
    if named is None and choice == "required":
        return tools[0]
    return named


def plan_reply(body: dict[str, Any]) -> MockChoice:
    """Decide the mock's reply to a chat request."""
    messages: list[Any] = body.get("messages") or []
    prompt_tokens = count_tokens(prompt_text(messages)) + 3 * len(messages)
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    tool = _chosen_tool(body, last)
    if tool is not None:
        function = tool["function"]
        arguments = orjson.dumps(schema_instance(function.get("parameters")) or {}).decode()
        digest = hashlib.sha256(orjson.dumps(messages) + function["name"].encode()).hexdigest()
        call = {
            "id": f"call_{digest[:24]}",
            "type": "function",
            "function": {"name": function["name"], "arguments": arguments},
        }
        tokens = count_tokens(function["name"] + arguments)
        return MockChoice(None, [call], "tool_calls", prompt_tokens, tokens)

    said = " ".join(TOKEN_PATTERN.findall(content_text(last.get("content")))[:_SNIPPET_TOKENS])
    if last.get("role") == "tool":
        text = f"The tool returned: {said}" if said else "The tool returned nothing."
    else:
        text = f"This is a mock reply to: {said}" if said else "This is a mock reply."

    finish = "stop"
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        text = orjson.dumps(schema_instance(schema) if schema else {}).decode()
    elif kind == "json_object":
        text = orjson.dumps({"reply": text}).decode()
    else:
        stops = body.get("stop")
        for stop in [stops] if isinstance(stops, str) else stops or ():
            if isinstance(stop, str) and stop and stop in text:
                text = text[: text.index(stop)]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < count_tokens(text):
            text, finish = _truncate(text, limit), "length"
    return MockChoice(text, None, finish, prompt_tokens, count_tokens(text))


def _n(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and n > 0 else 1


def _usage(plan: MockChoice, n: int) -> dict[str, Any]:
    completion = plan.completion_tokens * n
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": plan.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def chat_completion(body: dict[str, Any], completion_id: str, created: int) -> dict[str, Any]:
    """A complete ``chat.completion`` object for ``body``."""
    plan = plan_reply(body)
    message: dict[str, Any] = {"role": "assistant", "content": plan.content, "refusal": None}
    if plan.tool_calls:
        message["tool_calls"] = plan.tool_calls
    n = _n(body)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.get("model", "mock"),
        "system_fingerprint": "fp_mock",
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}
            for i in range(n)
        ],
        "usage": _usage(plan, n),
    }


def chat_chunks(body: dict[str, Any], completion_id: str, created: int) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, usage chunk last if asked."""
    plan = plan_reply(body)
    n = _n(body)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    base = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": body.get("model", "mock"),
        "system_fingerprint": "fp_mock",
    }
    if include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    for i in range(n):
        yield chunk(i, {"role": "assistant", "content": "" if plan.tool_calls is None else None})
        if plan.tool_calls:
            for position, call in enumerate(plan.tool_calls):
                function = call["function"]
                yield chunk(
                    i,
                    {
                        "tool_calls": [
                            {
                                "index": position,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": function["name"], "arguments": ""},
                            }
                        ]
                    },
                )
                yield chunk(
                    i,
                    {
                        "tool_calls": [
                            {"index": position, "function": {"arguments": function["arguments"]}}
                        ]
                    },
                )
        else:
            for piece in _PIECE.findall(plan.content or ""):
                yield chunk(i, {"content": piece})
        yield chunk(i, {}, plan.finish_reason)
    if include_usage:
        yield {**base, "choices": [], "usage": _usage(plan, n)}


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    return []


def embed_text(text: str, dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats from the words of ``text`` (feature hashing)."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()) or ["\0empty"]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        slot = int.from_bytes(digest[:4], "little") % dimensions
        vector[slot] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``embeddings`` response (float lists, or base64 float32 when asked)."""
    texts = _embedding_inputs(body.get("input"))
    dims = body.get("dimensions")
    dimensions = dims if isinstance(dims, int) and dims > 0 else DEFAULT_EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector = embed_text(text, dimensions)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            if as_base64
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(t) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model", "mock-embed"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# The mock moderator flags these words (and nothing else), so tests can trigger it.
MODERATION_WORDS = {"violence": ("kill", "attack"), "harassment": ("idiot", "stupid")}
_MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def moderation(body: dict[str, Any], moderation_id: str) -> dict[str, Any]:
    """An OpenAI ``moderations`` response: flags the words of :data:`MODERATION_WORDS`."""
    texts = _embedding_inputs(body.get("input"))
    results = []
    for text in texts:
        words = set(_WORD.findall(text.lower()))
        hits = {c for c, listed in MODERATION_WORDS.items() if words & set(listed)}
        results.append(
            {
                "flagged": bool(hits),
                "categories": {c: c in hits for c in _MODERATION_CATEGORIES},
                "category_scores": {
                    c: 0.99 if c in hits else 0.001 for c in _MODERATION_CATEGORIES
                },
            }
        )
    tokens = sum(count_tokens(t) for t in texts)
    return {
        "id": moderation_id,
        "model": body.get("model", "mock-moderation"),
        "results": results,
        "usage": {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens},
    }


def rerank(body: dict[str, Any], rerank_id: str) -> dict[str, Any]:
    """A rerank response (vLLM/Cohere shape): documents by the share of the query's words
    they contain, best first."""
    query = set(_WORD.findall(str(body.get("query", "")).lower()))
    documents = [d if isinstance(d, str) else str(d) for d in body.get("documents") or ()]
    ranked: list[tuple[float, int, str]] = []
    for index, document in enumerate(documents):
        words = set(_WORD.findall(document.lower()))
        score = len(query & words) / len(query) if query else 0.0
        ranked.append((-round(score, 6), index, document))
    scored = [
        {"index": index, "relevance_score": -negated, "document": {"text": document}}
        for negated, index, document in sorted(ranked)
    ]
    top_n = body.get("top_n")
    if isinstance(top_n, int) and top_n > 0:
        scored = scored[:top_n]
    tokens = sum(count_tokens(str(body.get("query", ""))) + count_tokens(d) for d in documents)
    return {
        "id": rerank_id,
        "model": body.get("model", "mock-rerank"),
        "results": scored,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def sse_event(payload: dict[str, Any] | str) -> bytes:
    """One server-sent event carrying ``payload`` (``[DONE]`` as a plain string)."""
    data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
    return b"data: " + data + b"\n\n"


class _MockStream:
    def __init__(self, events: list[bytes]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[list[bytes]]:
        if self._events:
            yield self._events

    async def aclose(self) -> None:
        self._events = []


class MockProvider:
    """The in-process mock deployment: no network, instant, deterministic."""

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Answer a chat or embeddings request."""
        if endpoint is Endpoint.EMBEDDINGS:
            reply = embeddings(body)
        elif endpoint is Endpoint.MODERATIONS:
            reply = moderation(body, f"modr-{request_id}")
        elif endpoint is Endpoint.RERANK:
            reply = rerank(body, f"rerank-{request_id}")
        else:
            reply = chat_completion(body, f"chatcmpl-{request_id}", int(time.time()))
        return UpstreamReply(orjson.dumps(reply), Usage.from_openai(reply["usage"]))

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> _MockStream:
        """Stream a chat reply as SSE events, ending with ``[DONE]``."""
        chunks = chat_chunks(body, f"chatcmpl-{request_id}", int(time.time()))
        return _MockStream([*map(sse_event, chunks), sse_event("[DONE]")])

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """The mock is always up."""
        return True

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """The mock is never busy."""
        return 0.0, 0.0

    async def aclose(self) -> None:
        """Nothing to release."""
