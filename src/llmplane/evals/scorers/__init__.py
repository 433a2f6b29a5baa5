"""The built-in scorers, by the names a suite gives them.

``build_scorer("contains", {"values": ["refund"], "mode": "none"})`` imports the scorer's
module (the JSON-schema one needs an extra) and builds it from the options as keyword
arguments; an unknown scorer or option, or an option of the wrong kind, raises
``ValueError``/``TypeError`` naming the scorer and the option, so that a suite fails
before it spends anything.

=====================  ======================================================  ==========
name                   what passes                                             calls
=====================  ======================================================  ==========
exact                  the output equals the expected string                   nothing
normalized             equal after case, whitespace, punctuation, NFKC         nothing
contains               the output holds the expected substrings (all/any/none) nothing
regex                  the output matches a pattern                            nothing
json_valid             the output is JSON                                      nothing
json_schema            the output is JSON matching a schema                    nothing
numeric                a number in the output is within tolerance              nothing
embedding_similarity   cosine to the expected answer reaches a threshold       embeddings
llm_judge              a judge model grades by a rubric                        chat
python                 the suite author's function says so                     its choice
=====================  ======================================================  ==========
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from llmplane.evals.scoring import Scorer

__all__ = ["build_scorer", "scorer_names"]

# name -> "module:class", imported on first use.
_BUILTIN: dict[str, str] = {
    "exact": "llmplane.evals.scorers.text:ExactScorer",
    "normalized": "llmplane.evals.scorers.text:NormalizedScorer",
    "contains": "llmplane.evals.scorers.text:ContainsScorer",
    "regex": "llmplane.evals.scorers.text:RegexScorer",
    "json_valid": "llmplane.evals.scorers.structured:JsonValidScorer",
    "json_schema": "llmplane.evals.scorers.structured:JsonSchemaScorer",
    "numeric": "llmplane.evals.scorers.structured:NumericScorer",
    "embedding_similarity": "llmplane.evals.scorers.embedding:EmbeddingSimilarityScorer",
    "llm_judge": "llmplane.evals.scorers.judge:LlmJudgeScorer",
    "python": "llmplane.evals.scorers.custom:PythonScorer",
}


def scorer_names() -> list[str]:
    """The names ``build_scorer`` knows, sorted."""
    return sorted(_BUILTIN)


def _scorer_class(name: str) -> type[Any]:
    module_name, _, class_name = _BUILTIN[name].partition(":")
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_scorer(name: str, options: Mapping[str, Any] | None = None) -> Scorer:
    """The scorer ``name`` built from ``options`` (as a suite file gives them)."""
    if name not in _BUILTIN:
        raise ValueError(f"unknown scorer {name!r}; the scorers are: {', '.join(scorer_names())}")
    if options is not None and not isinstance(options, Mapping):
        raise TypeError(f"scorer {name!r}: options must be a mapping, not {type(options).__name__}")
    given = dict(options or {})
    cls = _scorer_class(name)
    parameters = inspect.signature(cls).parameters
    unknown = sorted(str(key) for key in given if key not in parameters)
    if unknown:
        known = ", ".join(parameters) or "none"
        raise TypeError(
            f"scorer {name!r}: unknown option(s) {', '.join(map(repr, unknown))} (options: {known})"
        )
    required = [
        p for p, spec in parameters.items() if spec.default is spec.empty and p not in given
    ]
    if required:
        raise TypeError(
            f"scorer {name!r}: missing required option(s) {', '.join(map(repr, required))}"
        )
    try:
        scorer: Scorer = cls(**given)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"scorer {name!r}: {exc}") from None
    return scorer
