"""The pieces of OpenAI chat requests that the bridged APIs build, and named SSE events.

Anthropic's Messages API and OpenAI's Responses API both become chat requests
(:mod:`llmplane.gateway.anthropic`, :mod:`llmplane.gateway.responses`); what
they build the same way lives here once.
"""

from __future__ import annotations

from typing import Any

import orjson


def chat_tool(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    """A chat ``tools`` entry for a function."""
    return {
        "type": "function",
        "function": {
            "name": str(name or ""),
            "description": str(description or ""),
            "parameters": parameters or {"type": "object"},
        },
    }


def chat_tool_call(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    """An assistant message's ``tool_calls`` entry."""
    return {
        "id": str(call_id or ""),
        "type": "function",
        "function": {"name": str(name or ""), "arguments": arguments},
    }


def forced_tool(name: Any) -> dict[str, Any]:
    """A ``tool_choice`` that forces one function."""
    return {"type": "function", "function": {"name": str(name or "")}}


def named_event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with an ``event:`` name, as Anthropic and Responses streams
    send them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
