"""What a prompt version holds, checked once when it is created, and its fingerprint.

A version is its template, typed variables, model, parameters, tools and response
format. Two submissions with the same content (after normalisation: defaults spelled
out, keys sorted) have the same fingerprint, which is how the registry returns the
existing version instead of creating an identical one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from llmplane.errors import InvalidRequestError
from llmplane.prompts.template import CompiledTemplate, VariableSpec, parse_variables

CONTENT_FIELDS = ("template", "variables", "model", "params", "tools", "response_format")
# The request parameters a version may set: sampling and output shape, never routing or
# credentials (those are the platform's).
PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "n",
        "reasoning_effort",
        "parallel_tool_calls",
        "tool_choice",
    }
)
PROMPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
"""Prompt names: URL-safe, no ``@`` (subjects are ``name@version``), at most 120."""


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_prompt")


def check_name(name: Any, param: str = "name") -> str:
    """A prompt name (400 naming ``param`` otherwise)."""
    if not isinstance(name, str) or not PROMPT_NAME.fullmatch(name):
        raise _bad(
            "A prompt name is 1 to 120 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit.",
            param,
        )
    return name


@dataclass(frozen=True, slots=True)
class PromptContent:
    """The immutable content of one version."""

    template: str | list[dict[str, str]]
    variables: dict[str, VariableSpec] = field(default_factory=dict)
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> PromptContent:
        """Check a submitted version (the fields of :data:`CONTENT_FIELDS`)."""
        variables = parse_variables(body.get("variables"))
        template = body.get("template")
        CompiledTemplate.build(template, variables)  # refuses bad placeholders
        model = body.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise _bad("'model' must be a model name.", "model")
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise _bad("'params' must be an object of request parameters.", "params")
        for name in params:
            if name not in PARAMS:
                raise _bad(
                    f"'params.{name}' is not a parameter a prompt may set; use "
                    f"{', '.join(sorted(PARAMS))}.",
                    f"params.{name}",
                )
        tools = body.get("tools")
        if tools is not None and (
            not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
        ):
            raise _bad("'tools' must be an array of tool objects.", "tools")
        response_format = body.get("response_format")
        if response_format is not None and (
            not isinstance(response_format, dict)
            or response_format.get("type") not in ("text", "json_object", "json_schema")
        ):
            raise _bad(
                "'response_format' must be an object with a 'type' of text, json_object or "
                "json_schema.",
                "response_format",
            )
        return cls(
            cast("str | list[dict[str, str]]", template),
            variables,
            model,
            params,
            tools or None,
            response_format,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PromptContent:
        """A stored version's content (already checked when it was created)."""
        return cls.parse(data)

    def to_json(self) -> dict[str, Any]:
        """The content as stored and served, in its normal form."""
        return {
            "template": self.template,
            "variables": {name: spec.to_json() for name, spec in self.variables.items()},
            "model": self.model,
            "params": self.params,
            "tools": self.tools,
            "response_format": self.response_format,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the normal form: equal for equal content."""
        return hashlib.sha256(orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)).hexdigest()

    def compile(self) -> CompiledTemplate:
        """The template, compiled for rendering."""
        return CompiledTemplate.build(self.template, self.variables)
