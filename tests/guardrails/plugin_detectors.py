"""Detectors a platform team might register, for the guardrail tests: an email finder (so
that the policy tests do not depend on the PII detector's own choices), one that hangs on
a marker and one that always raises. Imported as a ``guardrails.plugins`` module."""

from __future__ import annotations

import re
import time

from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Finding, Verdict
from llmplane.guardrails.registry import register_detector

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+\w")
SLOW_MARKER = "SLOW"


@register_detector("test_email")
class EmailDetector:
    """Flags email addresses (type ``EMAIL_ADDRESS``) with a fixed score."""

    name = "test_email"

    def __init__(self, score: float = 0.9) -> None:
        self._score = score

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        findings = tuple(
            Finding("EMAIL_ADDRESS", m.start(), m.end(), self._score) for m in _EMAIL.finditer(text)
        )
        if not findings:
            return Verdict.clean(self.name)
        return Verdict(self.name, True, self._score, findings, "email address")


@register_detector("test_slow")
class SlowDetector:
    """Takes ``seconds`` on a text holding ``SLOW`` (a detector that hangs), else passes."""

    name = "test_slow"

    def __init__(self, seconds: float = 1.0) -> None:
        self._seconds = seconds

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        if SLOW_MARKER in text:
            time.sleep(self._seconds)
        return Verdict.clean(self.name)


@register_detector("test_broken")
class BrokenDetector:
    """Raises on every text."""

    name = "test_broken"

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        raise RuntimeError("detector bug")
