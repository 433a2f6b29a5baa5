"""Blocked terms and patterns: the platform team's list of what must not pass.

``BlocklistDetector(terms=["project falcon"], patterns=[r"\\bINT-\\d{4}\\b"])`` flags a
text holding a term (case-insensitive, on word boundaries) or matching a pattern. Each
finding's type is ``blocklist.term`` or ``blocklist.pattern`` with the rule's position
(``blocklist.term[0]``), so a block names the rule without repeating the blocked word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Finding, Verdict


class BlocklistDetector:
    """Flags texts holding a blocked term or matching a blocked regular expression.

    Terms match case-insensitively, as whole words (``"falcon"`` does not match
    ``"falconry"``); patterns are Python regular expressions, compiled once. Thread-safe.
    """

    name = "blocklist"

    def __init__(self, terms: Sequence[str] = (), patterns: Sequence[str] = ()) -> None:
        if isinstance(terms, str) or isinstance(patterns, str):
            raise TypeError("terms and patterns are lists of strings")
        if not terms and not patterns:
            raise ValueError("a blocklist needs terms or patterns")
        # All terms in one alternation (one scan of the text, whatever their number), each
        # a named group so a match says which rule it was; longer terms first, so that
        # "project falcon" wins over "project" where both are listed.
        alternatives: list[tuple[str, str]] = []
        for index, term in enumerate(terms):
            if not term.strip():
                raise ValueError(f"blocklist term {index} is empty")
            words = r"\s+".join(re.escape(word) for word in term.split())
            alternatives.append((f"t{index}", words))
        alternatives.sort(key=lambda item: -len(item[1]))
        self._terms = (
            re.compile(
                r"(?<!\w)(?:" + "|".join(f"(?P<{g}>{w})" for g, w in alternatives) + r")(?!\w)",
                re.IGNORECASE,
            )
            if alternatives
            else None
        )
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for index, pattern in enumerate(patterns):
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocklist pattern {index} is not a valid regex: {exc}") from None
            self._patterns.append((f"blocklist.pattern[{index}]", compiled))

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """Every blocked term and pattern found in ``text``."""
        findings = []
        if self._terms is not None:
            findings = [
                Finding(f"blocklist.term[{(m.lastgroup or 't0')[1:]}]", m.start(), m.end(), 1.0)
                for m in self._terms.finditer(text)
            ]
        findings.extend(
            Finding(rule, match.start(), match.end(), 1.0)
            for rule, regex in self._patterns
            for match in regex.finditer(text)
        )
        if not findings:
            return Verdict.clean(self.name)
        findings.sort(key=lambda finding: finding.start)
        rules = ", ".join(dict.fromkeys(finding.type for finding in findings))
        return Verdict(self.name, True, 1.0, tuple(findings), f"blocked content ({rules})")
