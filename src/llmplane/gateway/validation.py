"""Lean checks of request bodies: right JSON types for the fields the platform relies on.

Bodies are not modelled (the upstream validates the long tail of parameters);
these checks only refuse what would break the gateway or let a client steer
the upstream call, with a 400 naming the parameter.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmplane.errors import InvalidRequestError

# Parameters that other gateways honour to pick an upstream URL or credential.
DENIED_PARAMS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "custom_llm_provider",
        "extra_headers",
        "azure_ad_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "vertex_credentials",
        "vertex_project",
        "mock_response",
    }
)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_CHOICES = frozenset({"none", "auto", "required"})
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_type")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; 400 when it is not one."""
    if not raw:
        raise InvalidRequestError(
            "The request body is empty; send a JSON object.", code="invalid_json"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError(
            "The request body is not valid JSON.", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_int(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _bad(f"'{name}' must be an integer {bound}.", name)


def _optional_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is not None and (not _is_number(value) or not low <= value <= high):
        raise _bad(f"'{name}' must be a number between {low:g} and {high:g}.", name)


def _common(body: dict[str, Any]) -> str:
    denied = DENIED_PARAMS.intersection(body)
    if denied:
        name = sorted(denied)[0]
        raise InvalidRequestError(
            f"The parameter '{name}' is not accepted: upstreams and their credentials are "
            "chosen by the platform.",
            param=name,
            code="parameter_not_allowed",
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a non-empty string.", "model")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("'user' must be a string.", "user")
    return model


def check_chat(body: dict[str, Any]) -> str:
    """Check a chat-completions body; return the requested model."""
    model = _common(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array of message objects.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise _bad(
                f"messages[{index}] must be an object with a 'role' of "
                + ", ".join(sorted(_ROLES))
                + ".",
                f"messages[{index}]",
            )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean.", "stream")
    options = body.get("stream_options")
    if options is not None and (
        not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool)
    ):
        raise _bad(
            "'stream_options' must be an object like {\"include_usage\": true}.", "stream_options"
        )
    _optional_int(body, "n", 1, 128)
    _optional_int(body, "max_tokens", 1)
    _optional_int(body, "max_completion_tokens", 1)
    _optional_int(body, "seed", -(2**63), 2**63 - 1)
    _optional_number(body, "temperature", 0.0, 2.0)
    _optional_number(body, "top_p", 0.0, 1.0)
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (
            isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)
        )
    ):
        raise _bad("'stop' must be a string or an array of up to 4 strings.", "stop")
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise _bad("'tools' must be an array of tool objects.", "tools")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, dict) and choice not in _TOOL_CHOICES:
        raise _bad("'tool_choice' must be 'none', 'auto', 'required' or an object.", "tool_choice")
    response_format = body.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, dict)
        or response_format.get("type") not in _RESPONSE_FORMATS
    ):
        raise _bad(
            "'response_format' must be an object with a 'type' of text, json_object "
            "or json_schema.",
            "response_format",
        )
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("'metadata' must be an object of string values.", "metadata")
    return model


def check_embeddings(body: dict[str, Any]) -> str:
    """Check an embeddings body; return the requested model."""
    model = _common(body)
    value = body.get("input")
    valid = (isinstance(value, str) and value != "") or (
        isinstance(value, list)
        and value != []
        and (
            all(isinstance(v, str) for v in value)
            or all(_is_int(v) for v in value)
            or all(isinstance(v, list) and all(_is_int(t) for t in v) for v in value)
        )
    )
    if not valid:
        raise _bad(
            "'input' must be a non-empty string, array of strings or array of token arrays.",
            "input",
        )
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise _bad("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    _optional_int(body, "dimensions", 1, 65536)
    return model


def check_moderations(body: dict[str, Any]) -> str:
    """Check a moderations body; return the requested model."""
    if body.get("model") is None:  # the platform's default was filled in where it has one
        raise _bad(
            "'model' is required: this platform has no default moderation model "
            "(defaults.moderation_model in llmplane.yaml).",
            "model",
        )
    model = _common(body)
    value = body.get("input")
    valid = (isinstance(value, str) and value != "") or (
        isinstance(value, list) and value != [] and all(isinstance(v, str) for v in value)
    )
    if not valid:
        raise _bad("'input' must be a non-empty string or array of strings.", "input")
    return model


def check_rerank(body: dict[str, Any]) -> str:
    """Check a rerank body (``query``, ``documents``, optional ``top_n``); return the model."""
    model = _common(body)
    if not isinstance(body.get("query"), str) or not body["query"]:
        raise _bad("'query' must be a non-empty string.", "query")
    documents = body.get("documents")
    if not isinstance(documents, list) or not documents:
        raise _bad("'documents' must be a non-empty array.", "documents")
    if not all(isinstance(d, str) for d in documents):
        raise _bad("'documents' must be strings.", "documents")
    _optional_int(body, "top_n", 1, len(documents))
    return model
