"""Tokens of requests and replies: what a call reserves, and the usage estimated when an
upstream reports none (marked estimated in the ledger). The per-model counters live in
:mod:`llmplane.gateway.token_counters`; ``count_tokens`` is the mock model's own count."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from llmplane.gateway.providers.base import Usage

if TYPE_CHECKING:
    from llmplane.gateway.token_counters import TokenCounter

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Approximate token count: words and punctuation marks."""
    return len(TOKEN_PATTERN.findall(text))


def content_text(content: Any) -> str:
    """The text of a message ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_text(messages: list[Any]) -> str:
    """All message text of a chat request, tool-call arguments included."""
    parts: list[str] = []
    for message in messages:
        if isinstance(message, dict):
            parts.append(content_text(message.get("content")))
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    parts.append(str(call["function"].get("arguments", "")))
    return "\n".join(parts)


# OpenAI's documented chat overhead: every message is wrapped in 3 tokens, a ``name``
# costs 1 more, and every reply is primed with 3. Tool and schema definitions are counted
# as their JSON text (more tokens than OpenAI's own rendering of them) plus a header.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
DEFINITIONS_OVERHEAD = 12

_ITEMS = ("message", "function_call", "function_call_output", "reasoning")

EXACT_COUNT_CHARS = 16_384
"""Characters of one request counted exactly when reserving (~4,000 tokens of English,
~0.4 ms with o200k here); text past them is reserved at one token per UTF-8 byte, an upper
bound on any byte-level BPE that costs nothing to compute (see bench/token_counting.py).
Context-window decisions and usage estimates count the whole prompt."""


class _Tally:
    """Adds up a request's tokens; text past the exact-count allowance is bounded by bytes."""

    __slots__ = ("bounded", "counter", "left", "total")

    def __init__(self, counter: TokenCounter, exact_chars: int | None) -> None:
        self.counter = counter
        self.left = exact_chars if exact_chars is not None else -1
        self.total = 0
        self.bounded = False  # some text was bounded by its bytes, not counted

    def text(self, text: str) -> None:
        if self.left < 0:
            self.total += self.counter.count(text)
        elif len(text) <= self.left:
            self.left -= len(text)
            self.total += self.counter.count(text)
        else:
            # Count what the allowance covers, up to a space (where BPE pre-tokenizers split
            # anyway), and bound the rest by its bytes.
            cut = text.rfind(" ", 0, self.left)
            if cut > 0:
                self.total += self.counter.count(text[:cut])
                text = text[cut:]
            self.left = 0
            self.bounded = True
            self.total += len(text.encode("utf-8", "surrogatepass"))

    def json(self, value: Any) -> None:
        self.total += DEFINITIONS_OVERHEAD
        self.text(orjson.dumps(value).decode())

    def content(self, content: Any) -> None:
        if isinstance(content, str):
            self.text(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, str):
                    self.text(part)
                elif isinstance(part, dict):
                    self.part(part)

    def part(self, part: dict[str, Any]) -> None:
        text = part.get("text")
        kind = part.get("type")
        if isinstance(text, str):
            self.text(text)
        elif kind == "tool_use":  # Anthropic: a call in the history
            self.json(part.get("input"))
        elif kind == "tool_result":
            self.content(part.get("content"))
        elif kind in ("image_url", "input_image", "image"):
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, dict) else part.get("detail")
            images = self.counter.images
            self.total += images.low if detail == "low" else images.high

    def message(self, message: dict[str, Any]) -> None:
        self.total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                self.content(value)
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        self.total += TOKENS_PER_MESSAGE
                        self.text(str(function.get("name") or ""))
                        self.text(str(function.get("arguments") or ""))
            elif key == "function_call" and isinstance(value, dict):
                self.text(str(value.get("name") or ""))
                self.text(str(value.get("arguments") or ""))
            elif isinstance(value, str):
                self.text(value)
                if key == "name":
                    self.total += TOKENS_PER_NAME

    def inputs(self, value: Any) -> None:
        """Embeddings or moderation input: text, texts, token ids or content parts."""
        if isinstance(value, str):
            self.text(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str):
                    self.text(item)
                elif isinstance(item, int):
                    self.total += 1
                elif isinstance(item, list):
                    self.total += len(item)  # token ids
                elif isinstance(item, dict) and ("role" in item or item.get("type") in _ITEMS):
                    self.message(item)  # a Responses API input item
                elif isinstance(item, dict):
                    self.part(item)


def count_prompt(
    body: dict[str, Any], counter: TokenCounter, exact_chars: int | None = EXACT_COUNT_CHARS
) -> tuple[int, bool]:
    """Prompt tokens of a chat, Responses, Anthropic Messages, embeddings, moderation or
    rerank request, and whether any text past ``exact_chars`` (``None``: no limit) was
    bounded by its bytes instead of counted. Never less than the count, so it can be
    reserved."""
    tally = _Tally(counter, exact_chars)
    for key in ("system", "instructions"):  # Anthropic's system prompt, Responses' own
        if body.get(key) is not None:
            tally.content(body[key])
    messages = body.get("messages")
    if isinstance(messages, list):
        tally.total += REPLY_PRIMING
        for message in messages:
            if isinstance(message, dict):
                tally.message(message)
        for key in ("tools", "functions"):
            if body.get(key):
                tally.json(body[key])
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            tally.json(response_format.get("json_schema"))
    elif "query" in body:  # rerank: the query is read once per document
        for document in body.get("documents") or ():
            tally.text(str(body["query"]))
            tally.text(document if isinstance(document, str) else str(document))
    else:
        tally.inputs(body.get("input"))
        if body.get("tools"):  # the Responses API's
            tally.json(body["tools"])
    return tally.total, tally.bounded


def request_prompt_tokens(body: dict[str, Any], counter: TokenCounter) -> int:
    """The prompt tokens of a request counted in full (for usage the upstream did not
    report)."""
    return count_prompt(body, counter, None)[0]


def extract_usage(body: bytes) -> Usage | None:
    """Read ``usage`` from a JSON response without parsing the whole (maybe large) body."""
    start = body.rfind(b'"usage"')
    if start < 0:
        return None
    brace = body.find(b"{", start)
    if brace < 0 or body[start + 7 : brace].strip(b" \t\r\n:"):
        return None
    depth = 0
    for index in range(brace, len(body)):
        char = body[index]
        if char == 0x7B:
            depth += 1
        elif char == 0x7D:
            depth -= 1
            if depth == 0:
                try:
                    return Usage.from_openai(orjson.loads(body[brace : index + 1]))
                except orjson.JSONDecodeError:
                    return None
    return None


def completion_text(reply: dict[str, Any]) -> str:
    """The generated text of a chat completion or chunk, or of a Responses API response
    (content, deltas and tool arguments)."""
    parts: list[str] = []
    for item in reply.get("output") or ():
        if isinstance(item, dict):
            parts.append(content_text(item.get("content")))
            parts.append(str(item.get("name") or "") + str(item.get("arguments") or ""))
    for choice in reply.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        if isinstance(message, dict):
            parts.append(content_text(message.get("content")))
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    parts.append(str(function.get("name") or ""))
                    parts.append(str(function.get("arguments") or ""))
    return "".join(parts)
