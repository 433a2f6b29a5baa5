"""A model request built from a registered prompt: the ``prompt`` field of a request.

``{"prompt": {"name": "support-reply", "label": "production", "variables": {...}}}``
(or ``"version": 3`` instead of a label; neither: ``production``). The rendered messages
come before any ``messages`` the request carries; the version's model, parameters,
tools and response format fill in only what the request leaves unset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmplane.errors import InvalidRequestError
from llmplane.prompts.cache import ResolvedPrompt
from llmplane.prompts.content import check_name
from llmplane.prompts.labels import check_label

_REFERENCE_FIELDS = frozenset({"name", "label", "version", "variables"})
# Chat parameters the Responses API spells the same way.
_RESPONSES_PARAMS = ("temperature", "top_p", "parallel_tool_calls", "tool_choice")


@dataclass(frozen=True, slots=True)
class PromptReference:
    """What a request asked for."""

    name: str
    label: str | None
    version: int | None
    variables: dict[str, Any]


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_prompt_reference")


def parse_reference(value: Any) -> PromptReference:
    """The request's ``prompt`` field, checked (400 naming the part that is wrong)."""
    if not isinstance(value, dict):
        raise _bad("'prompt' must be an object with 'name' and 'variables'.", "prompt")
    unknown = set(value) - _REFERENCE_FIELDS
    if unknown:
        raise _bad(f"Unknown field 'prompt.{sorted(unknown)[0]}'.", f"prompt.{sorted(unknown)[0]}")
    name = check_name(value.get("name"), "prompt.name")
    label, version = value.get("label"), value.get("version")
    if label is not None and version is not None:
        raise _bad("Give 'prompt.label' or 'prompt.version', not both.", "prompt.version")
    if label is not None:
        check_label(label, "prompt.label")
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        raise _bad("'prompt.version' must be a positive integer.", "prompt.version")
    variables = value.get("variables") or {}
    if not isinstance(variables, dict):
        raise _bad("'prompt.variables' must be an object.", "prompt.variables")
    return PromptReference(name, label, version, variables)


def _unset(body: dict[str, Any], name: str) -> bool:
    return body.get(name) is None


def apply_to_chat(
    body: dict[str, Any], resolved: ResolvedPrompt, variables: dict[str, Any]
) -> None:
    """Turn a chat-completions body with ``prompt`` into a plain one, in place."""
    rendered: list[Any] = list(resolved.template.render(variables))
    asked = body.get("messages")
    body["messages"] = rendered + asked if isinstance(asked, list) else rendered
    content = resolved.version.content
    if _unset(body, "model") and content.model:
        body["model"] = content.model
    for name, value in content.params.items():
        if _unset(body, name):
            body[name] = value
    if content.tools and _unset(body, "tools"):
        body["tools"] = content.tools
    if content.response_format and _unset(body, "response_format"):
        body["response_format"] = content.response_format
    del body["prompt"]


def _responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        return tool
    converted = {"type": "function", "name": function.get("name")}
    for name in ("description", "parameters", "strict"):
        if name in function:
            converted[name] = function[name]
    return converted


def apply_to_responses(
    body: dict[str, Any], resolved: ResolvedPrompt, variables: dict[str, Any]
) -> None:
    """Turn a Responses API body with a registered ``prompt`` into a plain one, in place:
    the rendered messages come before ``input``; chat-only parameters (stop, seed,
    penalties, n) have no Responses equivalent and are left out."""
    rendered: list[Any] = [
        {"type": "message", "role": message["role"], "content": message["content"]}
        for message in resolved.template.render(variables)
    ]
    asked = body.get("input")
    if isinstance(asked, str):
        rendered.append({"type": "message", "role": "user", "content": asked})
    elif isinstance(asked, list):
        rendered += asked
    body["input"] = rendered
    content = resolved.version.content
    if _unset(body, "model") and content.model:
        body["model"] = content.model
    params = content.params
    for name in _RESPONSES_PARAMS:
        if name in params and _unset(body, name):
            body[name] = params[name]
    limit = params.get("max_completion_tokens") or params.get("max_tokens")
    if limit is not None and _unset(body, "max_output_tokens"):
        body["max_output_tokens"] = limit
    if "reasoning_effort" in params and _unset(body, "reasoning"):
        body["reasoning"] = {"effort": params["reasoning_effort"]}
    if content.tools and _unset(body, "tools"):
        body["tools"] = [_responses_tool(tool) for tool in content.tools]
    fmt = content.response_format
    if fmt and fmt.get("type") != "text" and _unset(body, "text"):
        if fmt.get("type") == "json_schema":
            schema = fmt.get("json_schema")
            body["text"] = {
                "format": {"type": "json_schema", **(schema if isinstance(schema, dict) else {})}
            }
        else:
            body["text"] = {"format": {"type": "json_object"}}
    del body["prompt"]


def is_registered_reference(body: dict[str, Any]) -> bool:
    """Whether a Responses API body's ``prompt`` names a registered prompt (``name``),
    rather than OpenAI's own stored prompt (``id``), which is passed through."""
    value = body.get("prompt")
    return isinstance(value, dict) and "name" in value
