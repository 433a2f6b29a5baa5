"""Scorer functions of a suite author, named by ``python`` scorers in test_scorers.py."""

from __future__ import annotations

from llmplane.evals.scoring import Case, CaseOutput, Score, ScoringContext


def says_please(case: Case, output: CaseOutput) -> bool:
    """Sync, returns a bool."""
    return "please" in output.text.lower()


async def length_ratio(case: Case, output: CaseOutput, *, target: int = 10) -> float:
    """Async, returns a number: how close the output's length is to ``target`` words."""
    words = len(output.text.split())
    return min(words, target) / max(words, target)


def cites_source(case: Case, output: CaseOutput) -> Score:
    """Returns a whole Score."""
    cited = "[1]" in output.text
    return Score(1.0 if cited else 0.0, cited, "cites [1]" if cited else "no citation")


async def judged_by_model(case: Case, output: CaseOutput, context: ScoringContext) -> bool:
    """Calls a model through the context."""
    answer = await context.chat("judge", [{"role": "user", "content": output.text}])
    return "mock reply" in answer


def returns_text(case: Case, output: CaseOutput) -> str:
    """A mistake: scorers return a Score, a bool or a number."""
    return "fine"


NOT_CALLABLE = 42
