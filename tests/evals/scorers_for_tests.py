"""A scorer for the harness's own tests, until the scorer registry lands: does the
output contain the case's expected text?"""

from __future__ import annotations

from llmplane.evals.scoring import Case, CaseOutput, Score, ScoringContext


class Contains:
    """Passes when ``expected`` is in the output (1.0) and fails otherwise (0.0)."""

    name = "contains"

    def __init__(self, ignore_case: bool = False) -> None:
        self.ignore_case = ignore_case

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        expected, text = str(case.expected), output.text
        if self.ignore_case:
            expected, text = expected.lower(), text.lower()
        found = expected in text
        return Score(
            1.0 if found else 0.0, found, f"{'found' if found else 'missing'} {expected!r}"
        )
