"""Prompt templates: ``{{ name }}`` placeholders filled with typed variables, nothing more.

A template is a string or a list of chat messages (``{"role", "content"}``). It is
compiled once into literal pieces and variable names; rendering only joins strings,
so a template can never run code (no Jinja, no attribute access, no filters).
``\\{{`` writes a literal ``{{``; any other ``{{`` that is not a well-formed
placeholder is refused when the version is created, so a typo cannot reach a model.

Variables are declared with a type (``string``, ``number``, ``integer``, ``boolean``,
``json``), whether they are required, a default and a description. Rendering checks
each value against its type and names the variable in every error. This module is
what the gateway renders with, and what the SDK and the CLI's preview use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmplane.errors import InvalidRequestError

VARIABLE_TYPES = ("string", "number", "integer", "boolean", "json")
MESSAGE_ROLES = ("system", "developer", "user", "assistant")
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_VARIABLE_NAME = re.compile(_NAME)
# An escaped opening, a placeholder, or a bare opening (an error).
_TOKEN = re.compile(r"\\\{\{|\{\{\s*(" + _NAME + r")\s*\}\}|\{\{")

Piece = str | tuple[str]  # a literal, or (variable name,)


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """One declared variable."""

    name: str
    type: str = "string"
    required: bool = True
    default: Any = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The declaration as stored and shown (``name`` is the mapping's key)."""
        data: dict[str, Any] = {"type": self.type, "required": self.required}
        if self.default is not None:
            data["default"] = self.default
        if self.description:
            data["description"] = self.description
        return data


def _bad(message: str, param: str, code: str = "invalid_prompt") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def parse_variables(raw: Any) -> dict[str, VariableSpec]:
    """``{name: {type, required, default, description}}`` checked; 400 naming the field."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad("'variables' must map variable names to declarations.", "variables")
    specs: dict[str, VariableSpec] = {}
    for name, declaration in raw.items():
        param = f"variables.{name}"
        if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
            raise _bad(
                f"Variable name {name!r} must start with a letter or '_' and hold only "
                "letters, digits and '_' (at most 64).",
                param,
            )
        declaration = {} if declaration is None else declaration
        if not isinstance(declaration, dict):
            raise _bad(f"Variable '{name}' must be declared with an object.", param)
        unknown = set(declaration) - {"type", "required", "default", "description"}
        if unknown:
            raise _bad(f"Variable '{name}' has an unknown field '{sorted(unknown)[0]}'.", param)
        kind = declaration.get("type", "string")
        if kind not in VARIABLE_TYPES:
            raise _bad(
                f"Variable '{name}' has type {kind!r}; use one of {', '.join(VARIABLE_TYPES)}.",
                param,
            )
        required = declaration.get("required", "default" not in declaration)
        if not isinstance(required, bool):
            raise _bad(f"Variable '{name}': 'required' must be true or false.", param)
        description = declaration.get("description")
        if description is not None and not isinstance(description, str):
            raise _bad(f"Variable '{name}': 'description' must be a string.", param)
        spec = VariableSpec(name, kind, required, None, description)
        default = declaration.get("default")
        if default is not None:
            check_value(spec, default, param)
        specs[name] = VariableSpec(name, kind, required, default, description)
    return specs


def check_value(spec: VariableSpec, value: Any, param: str | None = None) -> None:
    """Refuse ``value`` unless it has ``spec``'s type (400 naming the variable)."""
    kind = spec.type
    ok = (
        (kind == "string" and isinstance(value, str))
        or (kind == "boolean" and isinstance(value, bool))
        or (kind == "integer" and isinstance(value, int) and not isinstance(value, bool))
        or (kind == "number" and isinstance(value, int | float) and not isinstance(value, bool))
        or kind == "json"
    )
    if not ok:
        raise InvalidRequestError(
            f"Prompt variable '{spec.name}' must be of type {kind}; got {_json_type(value)}.",
            param=param or f"prompt.variables.{spec.name}",
            code="invalid_variable",
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _text(spec: VariableSpec, value: Any) -> str:
    if spec.type == "string":
        return str(value)
    if spec.type == "boolean":
        return "true" if value else "false"
    if spec.type in ("integer", "number"):
        return repr(value) if isinstance(value, float) else str(value)
    return orjson.dumps(value).decode()  # json: compact JSON text


def compile_text(text: str, param: str) -> tuple[Piece, ...]:
    """``text`` as literal pieces and ``(name,)`` placeholders; 400 on a bare ``{{``."""
    pieces: list[Piece] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position : match.start()])
        position = match.end()
        if match.group(0) == "\\{{":
            literal.append("{{")
        elif match.group(1) is not None:
            if any(literal):
                pieces.append("".join(literal))
            literal = []
            pieces.append((match.group(1),))
        else:
            raise _bad(
                f"{param} has '{{{{' at character {match.start()} that is not a placeholder "
                "like {{ name }}; write \\{{ for literal braces.",
                param,
            )
    literal.append(text[position:])
    if any(literal):
        pieces.append("".join(literal))
    return tuple(pieces)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A version's template, compiled once: render it as often as needed."""

    messages: tuple[tuple[str, tuple[Piece, ...]], ...]  # (role, pieces)
    variables: Mapping[str, VariableSpec]

    @classmethod
    def build(cls, template: Any, variables: Mapping[str, VariableSpec]) -> CompiledTemplate:
        """Compile a template (a string: one user message; or chat messages) and check
        that every placeholder is declared."""
        messages: tuple[tuple[str, tuple[Piece, ...]], ...]
        if isinstance(template, str):
            if not template:
                raise _bad("'template' must not be empty.", "template")
            messages = (("user", compile_text(template, "template")),)
        elif isinstance(template, list) and template:
            compiled = []
            for index, message in enumerate(template):
                param = f"template[{index}]"
                if not isinstance(message, dict) or set(message) != {"role", "content"}:
                    raise _bad(f"{param} must be an object with 'role' and 'content'.", param)
                role, content = message["role"], message["content"]
                if role not in MESSAGE_ROLES:
                    raise _bad(f"{param}.role must be one of {', '.join(MESSAGE_ROLES)}.", param)
                if not isinstance(content, str):
                    raise _bad(f"{param}.content must be a string.", param)
                compiled.append((role, compile_text(content, param)))
            messages = tuple(compiled)
        else:
            raise _bad(
                "'template' must be a string or a non-empty array of {role, content}.",
                "template",
            )
        for _, pieces in messages:
            for piece in pieces:
                if isinstance(piece, tuple) and piece[0] not in variables:
                    raise _bad(
                        f"The template uses {{{{ {piece[0]} }}}}, which is not declared in "
                        "'variables'.",
                        f"variables.{piece[0]}",
                    )
        return cls(messages, variables)

    def values(self, given: Mapping[str, Any] | None) -> dict[str, str]:
        """The text of every variable: given values checked, defaults filled in."""
        given = given or {}
        for name in given:
            if name not in self.variables:
                raise InvalidRequestError(
                    f"Unknown prompt variable '{name}'; this prompt declares "
                    f"{', '.join(sorted(self.variables)) or 'none'}.",
                    param=f"prompt.variables.{name}",
                    code="unknown_variable",
                )
        texts: dict[str, str] = {}
        for name, spec in self.variables.items():
            value = given.get(name)
            if value is None:
                if spec.default is not None:
                    value = spec.default
                elif spec.required:
                    raise InvalidRequestError(
                        f"Prompt variable '{name}' is required.",
                        param=f"prompt.variables.{name}",
                        code="missing_variable",
                    )
                else:
                    texts[name] = ""
                    continue
            check_value(spec, value)
            texts[name] = _text(spec, value)
        return texts

    def render(self, given: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
        """The chat messages with every placeholder filled in."""
        texts = self.values(given)
        return [
            {
                "role": role,
                "content": "".join(p if isinstance(p, str) else texts[p[0]] for p in pieces),
            }
            for role, pieces in self.messages
        ]


def parse_cli_value(spec: VariableSpec, text: str) -> Any:
    """A ``--var name=value`` string as ``spec``'s type (for previews from a shell)."""
    try:
        if spec.type == "integer":
            return int(text)
        if spec.type == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if spec.type == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if spec.type == "json":
            return orjson.loads(text)
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidRequestError(
            f"Prompt variable '{spec.name}' must be of type {spec.type}; got {text!r}.",
            param=f"prompt.variables.{spec.name}",
            code="invalid_variable",
        ) from None
    return text
