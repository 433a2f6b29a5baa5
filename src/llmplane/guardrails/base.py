"""The one interface of every guardrail detector, and what a check returns.

A detector looks at one text and says what it found::

    verdict = detector.check("mail jane@example.com", CheckContext(source="user"))
    verdict.flagged, verdict.score  # True, 1.0
    verdict.findings  # (Finding("EMAIL_ADDRESS", 5, 21, 1.0),)

Detectors only detect. What happens next (block, redact, mask, hash, flag) is the
caller's policy: the gateway's, or the library user's, applying
:mod:`llmplane.guardrails.actions` to the findings' spans. A verdict's ``reason`` and
its findings name types and rules, never the matched text, so that a verdict can go into
logs, spans, metrics and the ledger without carrying the PII or secret it found.

Detectors are plain synchronous Python (CPU work); a server runs them off its event loop.
A detector must be safe to call from several threads, or say otherwise in its docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

# Where a text comes from: what a user typed, the system prompt, a tool's output or a
# retrieved document (indirect injection arrives there), or the model's answer.
Source = Literal["user", "system", "tool", "document", "output"]
SOURCES: tuple[Source, ...] = ("user", "system", "tool", "document", "output")


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: its type (an entity such as ``EMAIL_ADDRESS``, or a rule id such
    as ``injection.ignore_instructions``), where it is in the checked text
    (``text[start:end]``; ``0, 0`` when it is about the whole text) and how sure the
    detector is (0 to 1)."""

    type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one detector concluded about one text.

    ``flagged`` is the detector's own decision at its threshold; ``score`` its confidence
    (the highest finding's score, 0 when nothing was found); ``reason`` a short sentence
    safe to show a client or write to a log (types and rules, never the matched text)."""

    detector: str
    flagged: bool
    score: float = 0.0
    findings: tuple[Finding, ...] = ()
    reason: str = ""

    @classmethod
    def clean(cls, detector: str) -> Verdict:
        """Nothing found."""
        return cls(detector, False)

    @property
    def types(self) -> list[str]:
        """The distinct finding types, in order of first appearance."""
        return list(dict.fromkeys(finding.type for finding in self.findings))


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check may need besides the text.

    ``tenant`` (a team id) salts actions that must be stable per tenant (``hash``);
    ``system_prompt`` lets an output check notice the answer quoting it; ``json_schema``
    is the schema a structured output must match (from ``response_format``)."""

    source: Source = "user"
    tenant: str | None = None
    system_prompt: str | None = None
    json_schema: Mapping[str, Any] | None = field(default=None, hash=False)


DEFAULT_CONTEXT = CheckContext()


@runtime_checkable
class Detector(Protocol):
    """Anything with a ``name`` and a ``check``: the built-in detectors, and the custom
    checks a platform team registers (:func:`llmplane.guardrails.registry.register_detector`).
    """

    name: str

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """Look at ``text`` and say what was found."""
        ...
