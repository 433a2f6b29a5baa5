"""Local token estimates, used when an upstream reports no usage (and by the mock model)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from llmplane.gateway.providers.base import Usage

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


def _input_item_tokens(item: Any) -> int:
    """An embeddings input (a string, else one token) or a Responses API input item."""
    if isinstance(item, str):
        return count_tokens(item)
    if not isinstance(item, dict):
        return 1
    text = content_text(item.get("content")) + " " + str(item.get("arguments") or "")
    output = item.get("output")
    return count_tokens(text + " " + output if isinstance(output, str) else text) + 3


def request_prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated prompt tokens of a chat, Responses, embeddings, moderation or rerank
    request."""
    if "messages" in body:
        messages = body["messages"]
        return count_tokens(prompt_text(messages)) + 3 * len(messages)
    if "query" in body:  # rerank: the query is read once per document
        documents = [d if isinstance(d, str) else str(d) for d in body.get("documents") or ()]
        query = count_tokens(str(body["query"]))
        return sum(query + count_tokens(d) for d in documents)
    value = body.get("input")
    instructions = body.get("instructions")
    tokens = count_tokens(instructions) if isinstance(instructions, str) else 0
    if isinstance(value, str):
        return tokens + count_tokens(value)
    if isinstance(value, list):
        return tokens + sum(_input_item_tokens(v) for v in value)
    return tokens


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
