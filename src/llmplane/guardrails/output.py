"""Checks of a model's answer: does it quote the system prompt, does it match its schema.

- :class:`SystemPromptLeakDetector` (``system_prompt_leak``) flags an answer that quotes
  ``context.system_prompt``, verbatim or lightly altered (case, spacing, punctuation, a
  word changed here and there), with each quoted passage as a finding on the answer.
- :class:`JsonSchemaDetector` (``json_schema``) flags a structured output that is not
  JSON or does not match ``context.json_schema`` (the request's ``response_format``) or
  the schema given as an option. It needs ``jsonschema`` (``pip install
  'llmplane[json-schema]'``), imported when the detector is built.

Secret and PII leakage in answers is the ``pii`` and ``secrets`` detectors run with
``CheckContext(source="output")``; blocked terms in answers, the ``blocklist`` detector.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Finding, Verdict

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class _BoundedCache(Generic[_K, _V]):
    """The last ``size`` values built, thread-safe (least recently used goes first)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


# --- system prompt leakage --------------------------------------------------------------

_WORD = re.compile(r"\w+")
# ASCII text: every character \w does not match becomes a space (str.translate and split
# are several times faster than the regular expression, with the same words).
_ASCII_SPACES = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
)
_SEED = 4  # words in the shingles that find candidate quotes
_CANDIDATES = 8  # prompt positions tried per seed (a prompt repeating itself has more)
_MAX_GAP = 3  # words an altered quote may insert, drop or change between two runs
_MIN_PROMPT_WORDS = 5  # a shorter system prompt has nothing distinctive to leak
LEAK_TYPE = "system_prompt_leak.quote"


def _words(text: str) -> list[str]:
    """The words of ``text``, case-folded and NFKC-normalised (one C-speed pass for ASCII
    text, where lowering is all it takes and keeps every word where it was)."""
    if text.isascii():
        return text.lower().translate(_ASCII_SPACES).split()
    return [unicodedata.normalize("NFKC", word).casefold() for word in _WORD.findall(text)]


@dataclass(frozen=True, slots=True)
class _PromptIndex:
    """A system prompt's words, and where each run of ``_SEED`` of them starts."""

    words: tuple[str, ...]
    seeds: dict[tuple[str, ...], tuple[int, ...]]
    firsts: frozenset[str]  # the first words of the seeds: most answer words are not one

    @classmethod
    def build(cls, prompt: str) -> _PromptIndex:
        words = tuple(_words(prompt))
        starts: dict[tuple[str, ...], list[int]] = {}
        for position in range(len(words) - _SEED + 1):
            at = starts.setdefault(words[position : position + _SEED], [])
            if len(at) < _CANDIDATES:
                at.append(position)
        seeds = {seed: tuple(at) for seed, at in starts.items()}
        return cls(words, seeds, frozenset(seed[0] for seed in seeds))


@dataclass(slots=True)
class _Quote:
    """Answer words ``first..last`` quote the prompt from ``prompt_start`` on; ``matched``
    words of them are the prompt's own, ``prompt_words`` the prompt positions they are."""

    first: int
    last: int
    prompt_end: int
    matched: int
    prompt_words: list[range]


class SystemPromptLeakDetector:
    """Flags an answer quoting the system prompt (``context.system_prompt``).

    Both texts are compared as words, case-folded and NFKC-normalised, so case, spacing
    and punctuation do not hide a quote. A quote is a passage of the answer that repeats
    at least ``min_words`` words of the prompt in the prompt's order, verbatim runs
    allowed to be ``_MAX_GAP`` words apart (a word added, dropped or changed); a system
    prompt shorter than ``min_words`` counts as quoted when all of it is.

    The verdict's score is the share of the prompt's words the answer quotes (0 to 1);
    it is flagged when there is a quote and that share is at least ``threshold`` (raise
    it when the system prompt carries documents the answer is meant to quote). Each
    quote is a finding ``system_prompt_leak.quote`` on the answer, scored by the share
    of the prompt it quotes. The work is linear in the answer's words (a dictionary
    lookup per word); the index of each prompt is built once and the last
    ``cache_size`` are kept. Thread-safe.
    """

    name = "system_prompt_leak"

    def __init__(self, min_words: int = 8, threshold: float = 0.0, cache_size: int = 64) -> None:
        if isinstance(min_words, bool) or not isinstance(min_words, int) or min_words < _SEED:
            raise ValueError(f"min_words must be an integer of at least {_SEED}")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.min_words = min_words
        self.threshold = threshold
        self._indexes: _BoundedCache[str, _PromptIndex] = _BoundedCache(cache_size)

    def _index(self, prompt: str) -> _PromptIndex:
        index = self._indexes.get(prompt)
        if index is None:
            index = _PromptIndex.build(prompt)
            self._indexes.put(prompt, index)
        return index

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """The passages of ``text`` that quote the system prompt."""
        prompt = context.system_prompt
        if not prompt or not text:
            return Verdict.clean(self.name)
        index = self._index(prompt)
        prompt_words = index.words
        if len(prompt_words) < _MIN_PROMPT_WORDS:
            return Verdict.clean(self.name)
        quotes = self._quotes(_words(text), index)
        needed = min(self.min_words, len(prompt_words))
        kept = [quote for quote in quotes if quote.matched >= needed]
        if not kept:
            return Verdict.clean(self.name)
        tokens = [match.span() for match in _WORD.finditer(text)]  # word i is at tokens[i]
        covered: set[int] = set()
        findings = []
        for quote in kept:
            positions = {p for run in quote.prompt_words for p in run}
            covered |= positions
            findings.append(
                Finding(
                    LEAK_TYPE,
                    tokens[quote.first][0],
                    tokens[quote.last][1],
                    round(len(positions) / len(prompt_words), 4),
                )
            )
        share = round(len(covered) / len(prompt_words), 4)
        if share < self.threshold:
            return Verdict(self.name, False, share, tuple(findings), "")
        reason = (
            f"the answer quotes the system prompt ({len(kept)} passage"
            f"{'s' if len(kept) > 1 else ''}, {share:.0%} of its words)"
        )
        return Verdict(self.name, True, share, tuple(findings), reason)

    @staticmethod
    def _quotes(words: list[str], index: _PromptIndex) -> list[_Quote]:
        """Verbatim runs of at least ``_SEED`` prompt words, longest first at each place,
        chained into quotes when they follow each other closely in both texts."""
        prompt = index.words
        quotes: list[_Quote] = []
        position = 0
        end = len(words) - _SEED + 1
        firsts = index.firsts
        while position < end:
            if words[position] not in firsts:
                position += 1
                continue
            starts = index.seeds.get(tuple(words[position : position + _SEED]))
            if starts is None:
                position += 1
                continue
            previous = quotes[-1] if quotes else None
            candidates = []
            for start in starts:
                length = _SEED
                while (
                    position + length < len(words)
                    and start + length < len(prompt)
                    and words[position + length] == prompt[start + length]
                ):
                    length += 1
                # Prefer the run that continues the quote in progress, then the longest.
                continues = previous is not None and 0 <= start - previous.prompt_end <= _MAX_GAP
                candidates.append((continues, length, -start))
            _, best_length, best_start = max(candidates)
            best_start = -best_start
            run = range(best_start, best_start + best_length)
            if (
                previous is not None
                and position - previous.last - 1 <= _MAX_GAP
                and 0 <= best_start - previous.prompt_end <= _MAX_GAP
            ):
                previous.last = position + best_length - 1
                previous.prompt_end = run.stop
                previous.matched += best_length
                previous.prompt_words.append(run)
            else:
                quotes.append(
                    _Quote(position, position + best_length - 1, run.stop, best_length, [run])
                )
            position += best_length
        return quotes


# --- JSON schema ------------------------------------------------------------------------

_MAX_ERRORS = 5
_MAX_PATH = 120
NOT_JSON_TYPE = "json_schema.not_json"


class JsonSchemaDetector:
    """Flags a structured output that is not JSON or does not match its JSON Schema.

    The schema is the ``schema`` option when given (the platform's), else
    ``context.json_schema`` (the request's ``response_format``); with neither there is
    nothing to check. The answer must be one JSON document (a Markdown code fence around
    it fails, as it would fail the client's parser). Findings are
    ``json_schema.<validator>`` (``json_schema.required``, ``json_schema.type``, …) or
    ``json_schema.not_json``, about the whole text; the reason names the JSON path and
    the validator, never the value. Remote ``$ref`` are never fetched (a reference the
    schema does not hold itself is an error). Validators of the last ``cache_size``
    request schemas are kept. Thread-safe.
    """

    # Judges the whole answer, never a part of it: a stream's windows are not checked by it
    # (a prefix of valid JSON is not JSON); the whole streamed text is, at its end.
    whole_text = True

    name = "json_schema"

    def __init__(self, schema: Mapping[str, Any] | None = None, cache_size: int = 64) -> None:
        try:
            import jsonschema
            import referencing
            import referencing.exceptions
        except ImportError:
            raise ImportError(
                "the json_schema detector needs jsonschema (pip install 'llmplane[json-schema]')"
            ) from None
        self._jsonschema = jsonschema
        self._registry: Any = referencing.Registry()  # empty: no $ref is ever fetched
        self._unresolvable = referencing.exceptions.Unresolvable
        if schema is not None and not isinstance(schema, Mapping):
            raise TypeError("schema must be a JSON Schema object")
        self._validator = self._build(schema) if schema is not None else None
        self._validators: _BoundedCache[bytes, Any] = _BoundedCache(cache_size)

    def _build(self, schema: Mapping[str, Any]) -> Any:
        cls = self._jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except self._jsonschema.SchemaError as exc:
            where = exc.json_path[:_MAX_PATH]
            raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
        return cls(schema, registry=self._registry)

    def _validator_for(self, context: CheckContext) -> Any:
        if self._validator is not None:
            return self._validator
        if context.json_schema is None:
            return None
        key = orjson.dumps(context.json_schema, option=orjson.OPT_SORT_KEYS)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._build(context.json_schema)
            self._validators.put(key, validator)
        return validator

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """Whether ``text`` is JSON matching the schema."""
        validator = self._validator_for(context)
        if validator is None:
            return Verdict.clean(self.name)
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            reason = f"the answer is not JSON (line {exc.lineno}, column {exc.colno})"
            return Verdict(self.name, True, 1.0, (Finding(NOT_JSON_TYPE, 0, 0, 1.0),), reason)
        try:
            errors = sorted(
                validator.iter_errors(document), key=lambda e: (list(e.absolute_path), e.validator)
            )
        except self._unresolvable as exc:
            raise ValueError(
                "the schema holds a $ref it does not define (remote references are not fetched)"
            ) from exc
        if not errors:
            return Verdict.clean(self.name)
        findings = tuple(Finding(f"json_schema.{e.validator}", 0, 0, 1.0) for e in errors)
        places = list(dict.fromkeys(f"{e.json_path[:_MAX_PATH]} ({e.validator})" for e in errors))
        shown = places[:_MAX_ERRORS]
        more = f" and {len(places) - _MAX_ERRORS} more" if len(places) > _MAX_ERRORS else ""
        reason = f"the answer does not match the schema: {', '.join(shown)}{more}"
        return Verdict(self.name, True, 1.0, findings, reason)
