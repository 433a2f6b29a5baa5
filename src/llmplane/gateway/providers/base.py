"""The one interface every upstream implements, and the values it returns.

A provider turns an already-validated OpenAI-shaped request body into either a
complete response (:class:`UpstreamReply`) or a stream of complete SSE events
(:class:`EventStream`). Everything else — auth, budgets, retries, usage
accounting, hiding the usage chunk — wraps this interface, so streaming and
non-streaming share one post-processing path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Endpoint(StrEnum):
    """The OpenAI operations a provider may serve."""

    CHAT = "chat.completions"
    EMBEDDINGS = "embeddings"
    MODERATIONS = "moderations"
    RERANK = "rerank"
    RESPONSES = "responses"
    MESSAGES = "messages"  # Anthropic's Messages API


@dataclass(slots=True)
class Usage:
    """Token counts of one upstream call (``estimated`` when the upstream sent none).

    ``prompt_tokens`` holds every input token: ``cached_tokens`` of them were read from
    the provider's prompt cache (cheaper), ``cache_write_tokens`` written to it (dearer,
    Anthropic's ``cache_creation_input_tokens``)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False
    cache_write_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """Read OpenAI's ``usage`` object, of chat and the others (``prompt_tokens``) or of
        the Responses API (``input_tokens``); ``None`` when it is absent or malformed."""
        if not isinstance(usage, dict):
            return None
        prompt = usage.get("prompt_tokens")
        if prompt is None and "input_tokens" in usage:  # checked only after chat's name
            return cls._from_responses(usage)
        completion = usage.get("completion_tokens", 0)
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        written = usage.get("cache_creation_input_tokens")  # Anthropic's, as LiteLLM relays it
        return cls(
            prompt,
            completion,
            cached if isinstance(cached, int) else 0,
            cache_write_tokens=written if isinstance(written, int) else 0,
        )

    @classmethod
    def _from_responses(cls, usage: dict[str, Any]) -> Usage | None:
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens", 0)
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        details = usage.get("input_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return cls(prompt, completion, cached if isinstance(cached, int) else 0)


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streaming) answer: the body is passed to the client unchanged."""

    body: bytes
    usage: Usage | None


class EventStream(Protocol):
    """An open upstream stream yielding whole SSE events (``data: ...\\n\\n``), in batches:
    the events that arrived together, so that they can be relayed in one write."""

    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...

    async def aclose(self) -> None:
        """Release the upstream connection (idempotent)."""


class Provider(Protocol):
    """One deployment's way of calling its upstream."""

    async def complete(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> UpstreamReply:
        """Send a non-streaming request; raise an :mod:`llmplane.errors` error on failure."""
        ...

    async def open_stream(
        self, endpoint: Endpoint, body: dict[str, Any], request_id: str
    ) -> EventStream:
        """Send a streaming request and return once the upstream has accepted it."""
        ...

    async def healthy(self, path: str, timeout_s: float) -> bool:
        """Whether ``GET path`` (from the server's root) answers below 400 in time."""
        ...

    async def load(self, path: str, timeout_s: float) -> tuple[float, float] | None:
        """Requests waiting and KV-cache usage (0..1) from the server's Prometheus
        ``path``, or ``None`` when it cannot be read."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections at shutdown."""
        ...


def sse_data(event: bytes) -> bytes:
    """The ``data:`` payload of one server-sent event (empty when it has none)."""
    start = event.find(b"data:")
    return event[start + 5 :].strip() if start >= 0 else b""
