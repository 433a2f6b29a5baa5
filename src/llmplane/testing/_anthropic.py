"""Anthropic's Messages API in the upstream simulator: replies, stream events and errors.

There is one generation logic: a Messages request is translated into a chat
request by the gateway's own bridge (:mod:`llmplane.gateway.anthropic`), answered
by the mock model (:mod:`llmplane.gateway.providers.mock`) and translated back.
What the simulator adds is what the real API does and the bridge does not need:
``msg_`` ids, usage with input tokens from the first event on, and prompt caching
(:class:`PromptCache`: the text up to the last block carrying ``cache_control`` is
written to the cache by the first request that sends it,
``cache_creation_input_tokens``, and read by the later ones,
``cache_read_input_tokens``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import orjson

from llmplane.gateway.anthropic import (
    ERROR_TYPES,
    StreamTranslator,
    anthropic_usage,
    from_chat_reply,
)
from llmplane.gateway.providers.mock import chat_chunks, chat_completion, sse_event
from llmplane.gateway.tokens import count_tokens
from llmplane.testing._asgi import Headers, Send, send_json

__all__ = [
    "MESSAGES_PATH",
    "error_event",
    "error_payload",
    "message_events",
    "message_reply",
    "send_error",
]

MESSAGES_PATH = "/v1/messages"

_ERROR_TYPES = {**ERROR_TYPES, 529: "overloaded_error"}


def error_payload(status: int, message: str) -> bytes:
    """An Anthropic-shaped error body for an HTTP ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


async def send_error(send: Send, status: int, message: str, headers: Headers = ()) -> None:
    """A complete Anthropic-shaped error reply."""
    await send_json(send, status, error_payload(status, message), headers)


def error_event(status: int, message: str) -> bytes:
    """The ``error`` event with which Anthropic ends a stream that failed midway."""
    return b"event: error\ndata: " + error_payload(status, message) + b"\n\n"


def _block_texts(content: Any) -> Iterable[tuple[str, bool]]:
    if isinstance(content, str):
        yield content, False
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict):
                text = block.get("text") or block.get("content") or ""
                yield (text if isinstance(text, str) else ""), "cache_control" in block


def _cached_prefix(body: dict[str, Any]) -> tuple[int, str]:
    """Tokens and text of the prompt up to its last ``cache_control`` breakpoint (system
    first)."""
    counted = cached = 0
    seen: list[str] = []
    prefix = ""
    sources = [body.get("system"), *(m.get("content") for m in body.get("messages") or ())]
    for content in sources:
        for text, breakpoint in _block_texts(content):
            counted += count_tokens(text)
            seen.append(text)
            if breakpoint:
                cached, prefix = counted, "\x00".join(seen)
    return cached, prefix


class PromptCache:
    """Anthropic's prompt cache, as the client sees it: the first request with a given
    cached prefix writes it (``cache_creation_input_tokens``), later ones read it."""

    def __init__(self) -> None:
        self._prefixes: set[str] = set()
        self._lock = threading.Lock()

    def split(self, body: dict[str, Any]) -> tuple[int, int]:
        """Tokens read from and written to the cache by ``body``."""
        tokens, prefix = _cached_prefix(body)
        if not tokens:
            return 0, 0
        with self._lock:
            if prefix in self._prefixes:
                return tokens, 0
            self._prefixes.add(prefix)
        return 0, tokens

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._prefixes.clear()


def _with_cache(usage: dict[str, Any], cache: tuple[int, int]) -> dict[str, Any]:
    prompt = int(usage.get("prompt_tokens") or 0)
    read = min(cache[0], prompt)
    written = min(cache[1], prompt - read)
    return {
        **usage,
        "prompt_tokens_details": {"cached_tokens": read},
        "cache_creation_input_tokens": written,
    }


def message_reply(
    body: dict[str, Any], chat: dict[str, Any], completion_id: str, cache: PromptCache
) -> bytes:
    """The Messages reply to ``body`` (``chat`` is its chat translation)."""
    completion = chat_completion(chat, completion_id, int(time.time()))
    completion["usage"] = _with_cache(completion["usage"], cache.split(body))
    return orjson.dumps(from_chat_reply(orjson.dumps(completion), str(body["model"])))


def message_events(
    body: dict[str, Any], chat: dict[str, Any], completion_id: str, cache: PromptCache
) -> list[bytes]:
    """The stream events of the Messages reply to ``body``, ``message_stop`` last."""
    stream = {**chat, "stream_options": {"include_usage": True}}
    chunks = list(chat_chunks(stream, completion_id, int(time.time())))
    final = chunks[-1]
    final["usage"] = _with_cache(final["usage"], cache.split(body))
    # message_start carries the input tokens and, like the real API, one output token.
    start = anthropic_usage({**final["usage"], "completion_tokens": 1})
    translator = StreamTranslator(
        str(body["model"]), completion_id.removeprefix("chatcmpl-"), start
    )
    events = [e for chunk in chunks for e in translator.feed_events(sse_event(chunk))]
    return events + translator.feed_events(sse_event("[DONE]"))
