"""Scorers that compare the output's text with what the case expects: ``exact``,
``normalized``, ``contains`` and ``regex``. They call no model and cost nothing."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from llmplane.evals.scorers import _options
from llmplane.evals.scorers._common import expected_texts, missing_expected, quote
from llmplane.evals.scoring import Case, CaseOutput, Score, ScoringContext

_PUNCTUATION = re.compile(r"[^\w\s]")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


class ExactScorer:
    """Passes when the output equals the expected string (or one of a list of them),
    character for character; ``strip`` first removes surrounding whitespace."""

    name = "exact"

    def __init__(self, *, strip: bool = False) -> None:
        self.strip = _options.boolean("strip", strip)

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """1 when the output is one of the expected strings, else 0."""
        wanted = expected_texts(case)
        if wanted is None:
            return missing_expected(self.name, case)
        text = output.text.strip() if self.strip else output.text
        for candidate in wanted:
            if text == (candidate.strip() if self.strip else candidate):
                return Score(1.0, True, f"output equals the expected {quote(candidate)}")
        return Score(0.0, False, f"output {quote(text)} differs from {_expected(wanted)}")


def _expected(wanted: tuple[str, ...]) -> str:
    if len(wanted) == 1:
        return f"the expected {quote(wanted[0])}"
    shown = ", ".join(quote(w, 40) for w in wanted[:5])
    more = f" and {len(wanted) - 5} more" if len(wanted) > 5 else ""
    return f"each of the {len(wanted)} expected answers ({shown}{more})"


class NormalizedScorer:
    """Exact match after normalising both sides: Unicode NFKC (full-width letters,
    ligatures), case, punctuation and runs of whitespace; optionally the English
    articles a/an/the (as SQuAD's answer matching does)."""

    name = "normalized"

    def __init__(
        self,
        *,
        ignore_case: bool = True,
        ignore_punctuation: bool = True,
        ignore_whitespace: bool = True,
        unicode: bool = True,
        remove_articles: bool = False,
    ) -> None:
        self.ignore_case = _options.boolean("ignore_case", ignore_case)
        self.ignore_punctuation = _options.boolean("ignore_punctuation", ignore_punctuation)
        self.ignore_whitespace = _options.boolean("ignore_whitespace", ignore_whitespace)
        self.unicode = _options.boolean("unicode", unicode)
        self.remove_articles = _options.boolean("remove_articles", remove_articles)

    def normalize(self, text: str) -> str:
        """``text`` as compared."""
        if self.unicode:
            text = unicodedata.normalize("NFKC", text)
        if self.ignore_case:
            text = text.casefold()
        if self.ignore_punctuation:
            text = _PUNCTUATION.sub(" ", text).replace("_", " ")
        if self.remove_articles:
            text = _ARTICLES.sub(" ", text)
        if self.ignore_whitespace:
            text = _SPACES.sub(" ", text).strip()
        return text

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """1 when the normalised output equals a normalised expected string, else 0."""
        wanted = expected_texts(case)
        if wanted is None:
            return missing_expected(self.name, case)
        got = self.normalize(output.text)
        for candidate in wanted:
            if got == self.normalize(candidate):
                return Score(1.0, True, f"output matches {quote(candidate)} once normalised")
        return Score(
            0.0,
            False,
            f"normalised output {quote(got)} differs from {_expected(wanted)} "
            f"(normalised: {quote(self.normalize(wanted[0]), 40)})",
        )


class ContainsScorer:
    """Whether the output contains expected substrings: ``values`` (else the case's
    ``expected``, a string or a list), ``mode`` ``all`` (every one; the score is the share
    found), ``any`` (at least one) or ``none`` (none of them: forbidden phrases), and
    ``case_sensitive`` (default true)."""

    name = "contains"

    def __init__(
        self, *, values: Any = None, mode: str = "all", case_sensitive: bool = True
    ) -> None:
        self.values = None if values is None else _options.strings("values", values)
        self.mode = _options.choice("mode", mode, ("all", "any", "none"))
        self.case_sensitive = _options.boolean("case_sensitive", case_sensitive)

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """See the class docstring."""
        values = self.values if self.values is not None else expected_texts(case)
        if values is None:
            return missing_expected(self.name, case)
        text = output.text if self.case_sensitive else output.text.casefold()
        found = [v for v in values if (v if self.case_sensitive else v.casefold()) in text]
        missing = [v for v in values if v not in found]
        listed = ", ".join(quote(v, 40) for v in (missing if self.mode == "all" else found)[:5])
        if self.mode == "all":
            value = len(found) / len(values)
            if not missing:
                return Score(1.0, True, f"output contains all {len(values)} expected strings")
            why = f"output lacks {len(missing)} of {len(values)} expected strings: {listed}"
            return Score(value, False, why)
        if self.mode == "any":
            if found:
                return Score(1.0, True, f"output contains {listed}")
            return Score(0.0, False, f"output contains none of {_expected(values)}")
        if found:
            return Score(0.0, False, f"output contains forbidden {listed}")
        return Score(1.0, True, f"output contains none of the {len(values)} forbidden strings")


_FLAGS = {
    "IGNORECASE": re.IGNORECASE,
    "MULTILINE": re.MULTILINE,
    "DOTALL": re.DOTALL,
    "VERBOSE": re.VERBOSE,
}


class RegexScorer:
    """Whether the output matches a regular expression: ``pattern`` (compiled once), else
    the case's ``expected`` taken as the pattern; ``full_match`` (the whole output, not a
    part of it) and ``flags`` (``IGNORECASE``, ``MULTILINE``, ``DOTALL``, ``VERBOSE``)."""

    name = "regex"

    def __init__(
        self, *, pattern: str | None = None, full_match: bool = False, flags: Any = ()
    ) -> None:
        self.full_match = _options.boolean("full_match", full_match)
        names = _options.strings("flags", flags) if flags else ()
        self.flags = 0
        for flag in names:
            self.flags |= _FLAGS[_options.choice("flags", flag.upper(), tuple(_FLAGS))]
        self.pattern = None if pattern is None else self._compile(_options.text("pattern", pattern))

    def _compile(self, pattern: str) -> re.Pattern[str]:
        try:
            return re.compile(pattern, self.flags)
        except re.error as exc:
            raise ValueError(f"option 'pattern' is not a valid regular expression: {exc}") from None

    async def score(self, case: Case, output: CaseOutput, context: ScoringContext) -> Score:
        """1 when the pattern matches, else 0."""
        pattern = self.pattern
        if pattern is None:
            if not isinstance(case.expected, str):
                return missing_expected(self.name, case, "a pattern (a string)")
            try:
                pattern = re.compile(case.expected, self.flags)  # re caches compiled patterns
            except re.error as exc:
                return Score(0.0, False, f"case {case.id!r}: invalid pattern: {exc}")
        match = (pattern.fullmatch if self.full_match else pattern.search)(output.text)
        how = "fully matches" if self.full_match else "matches"
        if match is None:
            return Score(0.0, False, f"output does not {how[:-2]} /{pattern.pattern}/")
        return Score(1.0, True, f"output {how} /{pattern.pattern}/ at {quote(match.group(0), 40)}")
