"""The ``embedding_similarity`` scorer: how close the output's meaning is to the expected
answer's, by the cosine of their embeddings from the gateway."""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmplane.evals.scorers import _options
from llmplane.evals.scorers._common import expected_texts, missing_expected
from llmplane.evals.scoring import Case, CaseOutput, Score, ScoringContext

DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of the angle between two vectors (0 when either is all zeros)."""
    if len(a) != len(b):
        raise ValueError(f"embeddings of different sizes ({len(a)} and {len(b)})")
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if norms == 0:
        return 0.0
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norms


class EmbeddingSimilarityScorer:
    """Cosine similarity between the output's embedding and the expected answer's (the best
    one when ``expected`` is a list), through the gateway's embeddings with ``model``
    (default ``text-embedding-3-small``). The score is the cosine, floored at 0; it passes
    at ``threshold`` (default 0.8). One embeddings call per case, for all texts."""

    name = "embedding_similarity"

    def __init__(self, *, model: str = DEFAULT_EMBEDDING_MODEL, threshold: float = 0.8) -> None:
        self.model = _options.text("model", model)
        self.threshold = _options.number("threshold", threshold, minimum=-1, maximum=1)

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """The best cosine between the output and an expected answer."""
        wanted = expected_texts(case)
        if wanted is None:
            return missing_expected(self.name, case)
        if not output.text.strip():
            return Score(0.0, False, "output is empty")
        vectors = await context.embed(self.model, [output.text, *wanted])
        if len(vectors) != len(wanted) + 1:
            raise ValueError(
                f"{self.model} returned {len(vectors)} embeddings for {len(wanted) + 1} texts"
            )
        similarities = [cosine(vectors[0], vector) for vector in vectors[1:]]
        best = max(similarities)
        passed = best >= self.threshold
        verb = "reaches" if passed else "is below"
        against = (
            "the expected answer"
            if len(wanted) == 1
            else f"the closest of {len(wanted)} expected answers"
        )
        why = f"cosine similarity {best:.3f} to {against} {verb} {self.threshold:g} ({self.model})"
        details = {"cosine": best, "model": self.model, "similarities": similarities}
        return Score(max(0.0, min(1.0, best)), passed, why, details)
