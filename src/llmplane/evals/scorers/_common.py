"""What several scorers share: reading a case's expected value, short quotes for
explanations, and JSON out of a model's answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from llmplane.evals.scoring import Case, Score

_QUOTE_LIMIT = 80
_FENCE = re.compile(r"^\s*```[\w-]*[ \t]*\n(.*?)\n?```\s*$", re.DOTALL)


def quote(text: str, limit: int = _QUOTE_LIMIT) -> str:
    """``text`` in quotes, cut to ``limit`` characters, for an explanation."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


def expected_texts(case: Case) -> tuple[str, ...] | None:
    """The case's expected value as one or more strings (a list means: any of these);
    numbers and booleans as their JSON text; None when the case expects nothing."""
    expected = case.expected
    if expected is None:
        return None
    if isinstance(expected, str):
        return (expected,)
    if isinstance(expected, Sequence) and expected and all(isinstance(e, str) for e in expected):
        return tuple(expected)
    if isinstance(expected, bool | int | float):
        return (orjson.dumps(expected).decode(),)
    return None


def missing_expected(scorer: str, case: Case, wanted: str = "a string or list of strings") -> Score:
    """The failing score of a case whose ``expected`` does not fit the scorer."""
    if case.expected is None:
        why = f"case {case.id!r} has no 'expected' value, which the {scorer} scorer needs"
    else:
        kind = type(case.expected).__name__
        why = f"case {case.id!r} expects a {kind}; the {scorer} scorer needs {wanted}"
    return Score(0.0, False, why)


def strip_fences(text: str) -> str:
    """The body of a Markdown code block (```json … ```), or ``text`` unchanged."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


class NotJson(ValueError):
    """The output is not JSON; the message says where it breaks."""


def parse_json(text: str, *, allow_fences: bool) -> Any:
    """The JSON value of an output (inside a Markdown code block when ``allow_fences``)."""
    if allow_fences:
        text = strip_fences(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NotJson(str(exc)) from None
