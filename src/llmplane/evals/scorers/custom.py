"""The ``python`` scorer: a function of the suite author's own code, named in the suite
(``function: "mypackage.checks:cites_sources"``) and imported from the machine that runs
the suite. Nothing that arrives over an API is ever imported or run."""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from llmplane.evals.scorers import _options
from llmplane.evals.scoring import Case, CaseOutput, Score, ScoringContext

_REFERENCE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def load_callable(reference: str) -> Callable[..., Any]:
    """The callable ``module.path:attribute`` names, imported now."""
    if not _REFERENCE.fullmatch(reference):
        raise ValueError(
            f"option 'function' must look like 'package.module:function', not {reference!r}"
        )
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"option 'function': cannot import {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"option 'function': {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise TypeError(f"option 'function': {reference!r} is not callable")
    return target  # type: ignore[no-any-return]


def _takes_context(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return variadic or len(positional) >= 3


class PythonScorer:
    """Calls ``function(case, output)`` — or ``function(case, output, context)`` when it
    takes a third argument, to call models through the gateway — with ``args`` as more
    keyword arguments. It may be sync or async and return a :class:`Score`, a bool (pass or
    fail) or a number (0–1, passing at ``threshold``, default 0.5). A sync function runs in
    the event loop: keep it quick, or make it async."""

    name = "python"

    def __init__(
        self, *, function: str, args: Mapping[str, Any] | None = None, threshold: float = 0.5
    ) -> None:
        self.reference = _options.text("function", function)
        self.function = load_callable(self.reference)
        if args is not None and not isinstance(args, Mapping):
            raise TypeError("option 'args' must be a mapping of keyword arguments")
        self.args = dict(args or {})
        self.threshold = _options.number("threshold", threshold)
        self._with_context = _takes_context(self.function)

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """The function's verdict, as a :class:`Score`."""
        extra = (context,) if self._with_context else ()
        result = self.function(case, output, *extra, **self.args)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, Score):
            return result
        if isinstance(result, bool):
            return Score(float(result), result, f"{self.reference} returned {result}")
        if isinstance(result, int | float) and math.isfinite(result):
            passed = result >= self.threshold
            verb = "reaches" if passed else "is below"
            why = f"{self.reference} returned {result:g}, which {verb} {self.threshold:g}"
            return Score(float(result), passed, why)
        raise TypeError(
            f"{self.reference} returned {type(result).__name__}; a scorer function must "
            "return a Score, a bool or a finite number"
        )
