"""Scorers of structured answers: ``json_valid``, ``json_schema`` and ``numeric``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from llmplane.evals.scorers import _options
from llmplane.evals.scorers._common import NotJson, missing_expected, parse_json, quote
from llmplane.evals.scoring import Case, CaseOutput, Score, ScoringContext

_PATH_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")
_NUMBER = re.compile(
    r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+(?:[eE][-+]?\d+)?"
)
_MAX_ERRORS = 5


class JsonValidScorer:
    """Passes when the output parses as JSON; ``allow_fences`` accepts it inside a Markdown
    code block (```json … ```), as chat models often write it."""

    name = "json_valid"

    def __init__(self, *, allow_fences: bool = False) -> None:
        self.allow_fences = _options.boolean("allow_fences", allow_fences)

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """1 when the output is JSON, else 0 with where it breaks."""
        try:
            value = parse_json(output.text, allow_fences=self.allow_fences)
        except NotJson as exc:
            return Score(0.0, False, f"output is not JSON: {exc}")
        return Score(1.0, True, f"output is valid JSON (a {_json_type(value)})")


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


class JsonSchemaScorer:
    """Passes when the output is JSON valid against a JSON Schema: ``schema`` (checked and
    compiled once), else the case's ``expected`` taken as the schema. Needs ``jsonschema``
    (``pip install 'llmplane[json-schema]'``); remote ``$ref`` are never fetched. The
    explanation names the first failing JSON path; ``details["errors"]`` lists a few."""

    name = "json_schema"

    def __init__(self, *, schema: Any = None, allow_fences: bool = False) -> None:
        try:
            import jsonschema
            import referencing
            import referencing.exceptions
        except ImportError:
            raise ImportError(
                "the json_schema scorer needs jsonschema (pip install 'llmplane[json-schema]')"
            ) from None
        self._jsonschema = jsonschema
        self._registry: Any = referencing.Registry()  # empty: no $ref is fetched
        self._unresolvable = referencing.exceptions.Unresolvable
        self.allow_fences = _options.boolean("allow_fences", allow_fences)
        if schema is not None and not isinstance(schema, Mapping):
            raise TypeError("option 'schema' must be a JSON Schema object")
        self._validator = None if schema is None else self._build(schema, "option 'schema'")

    def _build(self, schema: Mapping[str, Any], where: str) -> Any:
        cls = self._jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except self._jsonschema.SchemaError as exc:
            raise ValueError(f"{where} is not a valid JSON Schema: {exc.message}") from None
        return cls(schema, registry=self._registry)

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """1 when the output matches the schema, else 0 with the failing paths."""
        validator = self._validator
        if validator is None:
            if not isinstance(case.expected, Mapping):
                return missing_expected(self.name, case, "a JSON Schema object")
            try:
                validator = self._build(case.expected, f"case {case.id!r}'s expected value")
            except ValueError as exc:
                return Score(0.0, False, str(exc))
        try:
            value = parse_json(output.text, allow_fences=self.allow_fences)
        except NotJson as exc:
            return Score(0.0, False, f"output is not JSON: {exc}")
        try:
            errors = sorted(validator.iter_errors(value), key=lambda e: str(e.json_path))
        except self._unresolvable:
            why = "the schema holds a $ref it does not define (remote references are not fetched)"
            return Score(0.0, False, why)
        if not errors:
            return Score(1.0, True, "output matches the schema")
        listed = [{"path": e.json_path, "message": e.message[:200]} for e in errors[:_MAX_ERRORS]]
        first = listed[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        why = f"output does not match the schema at {first['path']}: {first['message']}{more}"
        return Score(0.0, False, why, {"errors": listed})


def parse_path(path: str) -> tuple[str | int, ...]:
    """``$.result.items[0].price`` (or ``result.items.0.price``) as keys and indexes."""
    rest = path[1:] if path.startswith("$") else path
    steps: list[str | int] = []
    position = 0
    while position < len(rest):
        match = _PATH_STEP.match(rest, position)
        if match is None or match.end() == position:
            raise ValueError(f"option 'path' is not a JSON path like '$.a.b[0]': {path!r}")
        key, index = match.groups()
        steps.append(int(index) if index is not None else key)
        position = match.end()
    return tuple(steps)


def _select(value: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        if isinstance(value, list):
            if isinstance(step, str) and not step.isdigit():
                raise LookupError(f"{step!r} of an array")
            index = int(step)
            if index >= len(value):
                raise LookupError(f"item {index} of an array of {len(value)}")
            value = value[index]
        elif isinstance(value, dict):
            if str(step) not in value:
                raise LookupError(f"no key {str(step)!r}")
            value = value[str(step)]
        else:
            raise LookupError(f"{step!r} of a {_json_type(value)}")
    return value


def first_number(text: str) -> float | None:
    """The first number written in ``text`` (``1,234.5``, ``-3``, ``2e-3``), or None."""
    match = _NUMBER.search(text)
    return None if match is None else float(match.group(0).replace(",", ""))


class NumericScorer:
    """Compares a number in the output with the expected number (``expected``, else the
    case's): the first number written in the text, or with ``path`` the value at that JSON
    path (``$.answer.total``). Passes within ``abs_tol`` or ``rel_tol`` (as
    ``math.isclose``; both 0 by default: equal)."""

    name = "numeric"

    def __init__(
        self,
        *,
        path: str | None = None,
        abs_tol: float = 0.0,
        rel_tol: float = 0.0,
        expected: Any = None,
        allow_fences: bool = True,
    ) -> None:
        self.path = None if path is None else _options.text("path", path)
        self.steps = None if path is None else parse_path(path)
        self.abs_tol = _options.number("abs_tol", abs_tol, minimum=0)
        self.rel_tol = _options.number("rel_tol", rel_tol, minimum=0)
        self.expected = None if expected is None else _options.number("expected", expected)
        self.allow_fences = _options.boolean("allow_fences", allow_fences)

    def _expected(self, case: Case) -> float | None:
        if self.expected is not None:
            return self.expected
        wanted = case.expected
        if isinstance(wanted, bool):
            return None
        if isinstance(wanted, int | float):
            return float(wanted)
        if isinstance(wanted, str):
            return first_number(wanted)
        return None

    def _read(self, output: CaseOutput) -> tuple[float | None, str]:
        if self.steps is None:
            number = first_number(output.text)
            return number, "" if number is not None else "output contains no number"
        try:
            value = _select(parse_json(output.text, allow_fences=self.allow_fences), self.steps)
        except NotJson as exc:
            return None, f"output is not JSON: {exc}"
        except LookupError as exc:
            return None, f"nothing at {self.path} ({exc})"
        if isinstance(value, str):
            number = first_number(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            number = None
        what = orjson.dumps(value).decode()[:40]
        return number, "" if number is not None else f"{self.path} holds {what}, not a number"

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """1 when the number is within tolerance of the expected one, else 0."""
        wanted = self._expected(case)
        if wanted is None:
            return missing_expected(self.name, case, "a number")
        got, why = self._read(output)
        if got is None:
            return Score(0.0, False, why)
        details = {"parsed": got, "expected": wanted, "error": abs(got - wanted)}
        close = math.isclose(got, wanted, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
        tolerance = f"abs_tol {self.abs_tol:g}, rel_tol {self.rel_tol:g}"
        if close:
            return Score(
                1.0, True, f"{got:g} is within tolerance of {wanted:g} ({tolerance})", details
            )
        where = f" at {self.path}" if self.path else f" in {quote(output.text, 40)}"
        return Score(
            0.0,
            False,
            f"{got:g}{where} is off {wanted:g} by {abs(got - wanted):g} ({tolerance})",
            details,
        )
