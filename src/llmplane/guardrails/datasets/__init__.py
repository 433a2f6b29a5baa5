"""The labelled sets the project wrote itself, packaged with it, and how spans are scored.

Each set is JSONL, one example a line::

    {"id": "pii-0001", "text": "...", "source": "user", "label": true,
     "spans": [{"type": "EMAIL_ADDRESS", "start": 27, "end": 45}], "tags": ["email"]}

``label`` says whether a detector should flag the text; ``spans`` are the span-level gold
of PII sets (``label == bool(spans)``); ``tags`` group examples (``adversarial``,
``hard-negative``, the kind of value). ``pii.jsonl`` is written by ``_make_pii.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any


def load(name: str) -> list[dict[str, Any]]:
    """The examples of the packaged set ``name`` (``"pii"``)."""
    text = resources.files(__name__).joinpath(f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class SpanScore:
    """Span-level counts of one type: a gold span is found when a finding of its type
    overlaps it; a finding is right when it overlaps a gold span of its type."""

    gold: int = 0
    found: int = 0
    exact: int = 0
    predicted: int = 0
    right: int = 0

    @property
    def recall(self) -> float:
        """Found gold spans over gold spans (1 when there are none)."""
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        """Right findings over findings (1 when there are none)."""
        return self.right / self.predicted if self.predicted else 1.0


@dataclass
class SpanScores:
    """Per-type :class:`SpanScore` over a set, and their sum over every type."""

    by_type: dict[str, SpanScore] = field(default_factory=dict)

    def add(
        self,
        gold: Iterable[Mapping[str, Any]],
        findings: Iterable[tuple[str, int, int]],
        types: Iterable[str],
    ) -> None:
        """Count one example's ``gold`` spans and predicted ``(type, start, end)``
        ``findings``, both limited to ``types``."""
        wanted = set(types)
        gold_spans = [(g["type"], g["start"], g["end"]) for g in gold if g["type"] in wanted]
        predicted = [f for f in findings if f[0] in wanted]

        def overlaps(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
            return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]

        for span in gold_spans:
            score = self.by_type.setdefault(span[0], SpanScore())
            score.gold += 1
            score.found += any(overlaps(span, f) for f in predicted)
            score.exact += span in predicted
        for finding in predicted:
            score = self.by_type.setdefault(finding[0], SpanScore())
            score.predicted += 1
            score.right += any(overlaps(finding, g) for g in gold_spans)

    def total(self) -> SpanScore:
        """The counts of every type added up."""
        total = SpanScore()
        for score in self.by_type.values():
            total.gold += score.gold
            total.found += score.found
            total.exact += score.exact
            total.predicted += score.predicted
            total.right += score.right
        return total
