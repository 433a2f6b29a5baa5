"""What the eval harness scores and how: a case, the output it produced, a scorer's score.

Every scorer implements :class:`Scorer`: given a case, its output and a
:class:`ScoringContext` (through which a scorer that needs a model, such as an
LLM judge or embedding similarity, calls it via the gateway, so the calls are budgeted and
attributed like any other), it returns a :class:`Score`: a value, whether it passed, and
an explanation a person can read in a pull-request comment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Case:
    """One example of a dataset: its id (stable across runs, so runs can be compared case
    by case), its input (prompt variables, or messages, or whatever the target takes),
    what is expected (if anything) and free metadata (tags, source)."""

    id: str
    input: Mapping[str, Any]
    expected: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseOutput:
    """What the target produced for a case: its text (the answer's content, or a JSON
    string for structured output) and the raw value (the whole response, or what a
    Python callable returned)."""

    text: str
    raw: Any = None


@dataclass(frozen=True, slots=True)
class Score:
    """A scorer's verdict on one output: ``value`` (0 to 1 unless the scorer says
    otherwise), ``passed`` (at the scorer's own threshold), an ``explanation`` and optional
    ``details`` (a judge's reasoning and raw answer, the failing JSON path, …)."""

    value: float
    passed: bool
    explanation: str
    details: Mapping[str, Any] | None = None


class ScoringContext(Protocol):
    """What a scorer may call: models, through the gateway."""

    async def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> str:
        """The answer's text of one chat completion."""
        ...

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """One embedding per text."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """Anything with a ``name`` and an async ``score``."""

    name: str

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """Score ``output``, the target's answer to ``case``."""
        ...
