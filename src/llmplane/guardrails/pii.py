"""PII and secrets: the ``pii`` and ``secrets`` detectors, and the redactor of stored logs.

``PiiDetector().check("mail jane@example.com")`` finds ``EMAIL_ADDRESS`` at 5–21. The
PII types are Microsoft Presidio's predefined *pattern* recognisers (e-mail, phone numbers
through ``phonenumbers``, credit cards with their Luhn checksum, IBANs with their check
digits, IPv4/IPv6, US SSN, crypto wallets), run offline on a blank spaCy tokenizer that
their context words need; nothing is downloaded. The secret types (API keys, AWS keys,
private keys, JWTs, passwords) come from :mod:`llmplane.secret_patterns`, the patterns the
log scrubber and the stored request logs use too; :class:`SecretsDetector` is those alone
and needs no Presidio. ``ner=True`` adds ``PERSON`` and ``LOCATION`` from a spaCy model
(``en_core_web_sm`` by default: ``python -m spacy download en_core_web_sm``), about ten
milliseconds per thousand tokens.

Speed: a check first looks for what each recogniser needs (an ``@``, a run of digits, two
capitals and two digits, …); a text with none costs a few microseconds. Otherwise the
recognisers run once, on the windows around those candidates joined into one text, not
on the whole prompt (see ``bench/guardrails_detectors.py`` for the numbers).

Presidio (``pip install 'llmplane[pii]'``) is imported when the first ``PiiDetector`` is
built, which takes about a second: build detectors once, off the event loop, and reuse
them. Detectors are thread-safe (a lock around the analyzer). A server redacting stored
bodies does it in a child process (:class:`RedactorProcess`), so that the pure-Python
CPU work never holds its event loop's GIL.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib.util
import multiprocessing
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from llmplane.guardrails.actions import non_overlapping, rewrite
from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Finding, Verdict
from llmplane.guardrails.normalize import NON_ASCII_RUN, decoded_segments, normalize
from llmplane.secret_patterns import SECRET_ENTITIES, find_secrets

# Presidio's URL recogniser imports tldextract, which would fetch the public suffix list.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

PATTERN_PII_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "CRYPTO",
)
NER_ENTITIES = ("PERSON", "LOCATION")
# Every type found without a model but crypto wallets (rare in prompts, and their scan
# costs as much as all the others): what ``pii`` looks for unless told otherwise.
DEFAULT_ENTITIES = tuple(e for e in PATTERN_PII_ENTITIES if e != "CRYPTO") + SECRET_ENTITIES
# What stored request logs are redacted of.
REDACTED_ENTITIES = PATTERN_PII_ENTITIES + SECRET_ENTITIES
DEFAULT_NER_MODEL = "en_core_web_sm"
_LANGUAGE = "en"

# What the recognisers need to be worth running, found by a few cheap scans; the
# recognisers then see only the windows around these candidates.
_NUMBER = re.compile(r"\d[\d \t().\-/]{4,}\d")  # six or more digits and separators
# A phone number as phonenumbers reads it: an opening "+" or "(", digits, separators, and
# an extension.
_PHONE = re.compile(
    r"((?:\+|\(|\b)\d[\d \t().\-/]{4,}\d)(?:\s*(?:ext\.?|x|#)\s*\d{1,6})?", re.IGNORECASE
)
_MAX_PHONE_DIGITS = 15  # E.164, country code included
_MIN_PHONE_DIGITS = 7  # the shortest national number of the recogniser's regions
_NOT_PHONE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d\d-\d\d")
_VERSION_BEFORE = re.compile(
    r"(?:\b(?:v|ver|version|build|release|firmware|driver|kernel|patch)\.?\s*|v)\Z", re.IGNORECASE
)
_ID_BEFORE = re.compile(r"(?:[A-Za-z0-9][\-#/]|[A-Za-z])\Z")
_IPV6 = re.compile(r":(?::|[0-9A-Fa-f]{1,4}:)")
_IBAN = re.compile(r"[A-Z][A-Z]\d\d")
_CRYPTO = re.compile(r"(?:bc1|[13])[a-km-zA-HJ-NP-Z1-9]{25}")
_AT = re.compile("@")
_DIGIT = re.compile(r"\d")
_SPACE = re.compile(r"\s")
_CONTEXT_BEFORE = 48  # characters of context words before a candidate (Presidio reads 5 words)
_CONTEXT_AFTER = 40  # an IBAN found by its first four characters is up to 42 long
_LONGEST_TOKEN = 256  # how far a window's edge moves to reach whitespace
_MERGE_GAP = 16
_WHOLE_TEXT = 0.6  # windows covering more than this share of the text: scan it whole
_WARM_UP = (
    "mail jane@example.com, call +1 212 555 0183 or 020 7946 0123, card 4111 1111 1111 1111, "
    "iban DE89 3704 0044 0532 0130 00, ip 192.0.2.1, ssn 987-65-4321"
)
# Between windows scanned as one text; a finding across it is dropped.
_SEPARATOR = "\n\u2063\u2063\n"


def _entities(
    entities: Sequence[str] | None, default: Sequence[str], known: Sequence[str], detector: str
) -> tuple[str, ...]:
    if entities is None:
        return tuple(default)
    if isinstance(entities, str) or not isinstance(entities, Sequence):
        raise TypeError(f"{detector}: entities is a list of entity names, like {list(default[:2])}")
    if not entities:
        raise ValueError(f"{detector}: entities is empty; leave it out to detect every type")
    for entity in entities:
        if not isinstance(entity, str):
            raise TypeError(f"{detector}: entity names are strings, not {entity!r}")
        if entity not in known:
            hint = ""
            if entity in PATTERN_PII_ENTITIES:
                hint = " (a PII type: use the 'pii' detector)"
            elif entity in NER_ENTITIES:
                hint = " (needs ner: true)"
            raise ValueError(
                f"{detector}: unknown entity {entity!r}{hint}; known: {', '.join(known)}"
            )
    return tuple(dict.fromkeys(entities))


def _threshold(value: object, detector: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{detector}: score_threshold is a number from 0 to 1, not {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{detector}: score_threshold must be from 0 to 1, not {value}")
    return float(value)


_ASCII_WORD = re.compile(r"[A-Za-z0-9@]")
# How far around a non-ASCII character a disguised finding may reach (an e-mail address,
# a card number or a key with a zero-width space or a look-alike letter inside).
_HIDDEN_REACH = 96


def _disguised_windows(text: str) -> list[tuple[int, int]]:
    """The stretches of ``text`` around its non-ASCII characters (merged), where
    normalisation could reveal something; whole words, so no finding is cut."""
    windows: list[tuple[int, int]] = []
    for match in NON_ASCII_RUN.finditer(text):
        start = max(0, match.start() - _HIDDEN_REACH)
        end = min(len(text), match.end() + _HIDDEN_REACH)
        while start > 0 and not text[start - 1].isspace():
            start -= 1
        while end < len(text) and not text[end].isspace():
            end += 1
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows


def _reveals(window: str, normalized: str) -> bool:
    """Whether normalising ``window`` changed something a finding is made of: letters,
    digits or ``@`` in ASCII (fullwidth digits, look-alike letters), or invisible
    characters dropped; not typography (an ellipsis, a dash)."""
    if len(_ASCII_WORD.findall(window)) != len(_ASCII_WORD.findall(normalized)):
        return True
    return any(
        unicodedata.category(char) == "Cf" for run in NON_ASCII_RUN.findall(window) for char in run
    )


def _with_hidden(find: Callable[[str], list[Finding]], text: str) -> list[Finding]:
    """``find`` on ``text``, and on what it hides: the text normalised (zero-width
    characters, fullwidth digits, look-alike letters; findings mapped back to the original
    span) and the readable text of its base64, hex or URL-encoded runs (a finding there
    covers the whole encoded run). Only the stretches around non-ASCII characters are
    normalised and scanned again, and only where normalising changed them: ordinary
    typography (dashes, ellipses) costs one quick look, not a second scan."""
    found = find(text)
    hidden = False
    if not text.isascii():
        for start, end in _disguised_windows(text):
            window = text[start:end]
            normalized = normalize(window)
            if not normalized.changed or not _reveals(window, normalized.text):
                continue
            for finding in find(normalized.text):
                begin, stop = normalized.span(finding.start, finding.end)
                found.append(Finding(finding.type, start + begin, start + stop, finding.score))
                hidden = True
    for segment in decoded_segments(text):
        for finding in find(segment.decoded):
            found.append(Finding(finding.type, segment.start, segment.end, finding.score))
            hidden = True
    return non_overlapping(found) if hidden else found


def _verdict(detector: str, findings: list[Finding], what: str) -> Verdict:
    if not findings:
        return Verdict.clean(detector)
    types = ", ".join(dict.fromkeys(finding.type for finding in findings))
    score = max(finding.score for finding in findings)
    return Verdict(detector, True, score, tuple(findings), f"{what} found: {types}")


class SecretsDetector:
    """Finds API keys, AWS keys, private keys, JWTs and passwords
    (:mod:`llmplane.secret_patterns`); plain regular expressions, no Presidio, thread-safe.

    Options: ``entities`` (default: every type in ``SECRET_ENTITIES``) and
    ``score_threshold`` (0 to 1, default 0.5; every rule scores 0.85 or more)."""

    name = "secrets"

    def __init__(self, entities: Sequence[str] | None = None, score_threshold: float = 0.5) -> None:
        self.entities = _entities(entities, SECRET_ENTITIES, SECRET_ENTITIES, self.name)
        self._only = None if self.entities == SECRET_ENTITIES else frozenset(self.entities)
        self._threshold = _threshold(score_threshold, self.name)

    def find(self, text: str) -> list[Finding]:
        """The secrets in ``text``, non-overlapping, in text order."""
        return non_overlapping(
            Finding(entity, start, end, score)
            for entity, start, end, score in find_secrets(text, self._only)
            if score >= self._threshold
        )

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """Every secret in ``text``, also hidden by invisible characters, look-alike
        letters or an encoding; the reason names their types only."""
        return _verdict(self.name, _with_hidden(self.find, text), "secrets")


class PiiDetector:
    """Finds PII and secrets: Presidio's pattern recognisers for the PII types, the
    shared secret patterns for the secret types, and with ``ner`` a spaCy model for
    ``PERSON`` and ``LOCATION``. Where a secret and a PII finding overlap (the password
    of ``postgres://app:pw@db.example.com`` reads as an e-mail too) the secret wins.

    Options: ``entities`` (default: every pattern type, ``DEFAULT_ENTITIES``, plus
    ``PERSON`` and ``LOCATION`` with ``ner``), ``score_threshold`` (0 to 1, default 0.4:
    Presidio scores a bare phone number 0.4, an SSN 0.5, a validated card, IBAN, IP or
    e-mail 1.0, and adds 0.35 for a context word such as "phone" or "ssn" nearby), ``ner``
    (default false) and ``ner_model`` (an installed spaCy package, default
    ``en_core_web_sm``)."""

    name = "pii"

    def __init__(
        self,
        entities: Sequence[str] | None = None,
        score_threshold: float = 0.4,
        ner: bool = False,
        ner_model: str = DEFAULT_NER_MODEL,
    ) -> None:
        if not isinstance(ner, bool):
            raise TypeError(f"pii: ner is true or false, not {ner!r}")
        known = REDACTED_ENTITIES + NER_ENTITIES if ner else REDACTED_ENTITIES
        default = DEFAULT_ENTITIES + NER_ENTITIES if ner else DEFAULT_ENTITIES
        self.entities = _entities(entities, default, known, self.name)
        self._threshold = _threshold(score_threshold, self.name)
        secret_types = [e for e in self.entities if e in SECRET_ENTITIES]
        self._secrets = SecretsDetector(secret_types, 0.0) if secret_types else None
        self._patterns = [e for e in self.entities if e in PATTERN_PII_ENTITIES]
        named = [e for e in self.entities if e in NER_ENTITIES]
        self._lock = threading.Lock()
        self._analyzer: Any = _pattern_analyzer(self._patterns) if self._patterns else None
        self._ner: Any = _ner_analyzer(ner_model) if named else None
        self._named = named
        self.find(_WARM_UP)  # lazy tables (the public suffix list, phone metadata): ~50 ms

    def find(self, text: str) -> list[Finding]:
        """The PII and secrets in ``text``, non-overlapping, in text order."""
        secrets = self._secrets.find(text) if self._secrets is not None else []
        personal = self._pattern_findings(text) + self._named_findings(text)
        if secrets and personal:
            personal = [
                p for p in personal if all(p.end <= s.start or p.start >= s.end for s in secrets)
            ]
        if not personal:
            return [f for f in secrets if f.score >= self._threshold]
        return non_overlapping(f for f in secrets + personal if f.score >= self._threshold)

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        """Every PII and secret finding in ``text``, also hidden by invisible characters,
        look-alike letters or an encoding; the reason names their types only."""
        return _verdict(self.name, _with_hidden(self.find, text), "PII")

    def _pattern_findings(self, text: str) -> list[Finding]:
        if self._analyzer is None or ("@" not in text and _DIGIT.search(text) is None):
            return []
        wanted, spans = _candidates(text, self._patterns)
        if not wanted:
            return []
        windows = _windows(text, spans)
        if sum(end - start for start, end in windows) > _WHOLE_TEXT * len(text):
            windows = [(0, len(text))]
        scanned = _SEPARATOR.join(text[start:end] for start, end in windows)
        with self._lock:
            results = self._analyzer.analyze(
                scanned, language=_LANGUAGE, entities=wanted, score_threshold=self._threshold
            )
        # Where each window starts in the scanned text, and in the original.
        starts, position = [], 0
        for start, end in windows:
            starts.append(position)
            position += end - start + len(_SEPARATOR)
        findings = []
        for result in results:
            index = bisect.bisect_right(starts, result.start) - 1
            window_start, window_end = windows[index]
            offset = window_start - starts[index]
            if result.end + offset > window_end:
                continue  # across a separator: not in the original text
            finding = Finding(
                result.entity_type, result.start + offset, result.end + offset, result.score
            )
            if finding.type == "EMAIL_ADDRESS":
                finding = _email_without_label(text, finding)
            if _plausible(text, finding):
                findings.append(finding)
        return findings

    def _named_findings(self, text: str) -> list[Finding]:
        if self._ner is None or not text.strip():
            return []
        with self._lock:
            results = self._ner.analyze(
                text, language=_LANGUAGE, entities=self._named, score_threshold=self._threshold
            )
        return [Finding(r.entity_type, r.start, r.end, r.score) for r in results]


def _email_without_label(text: str, finding: Finding) -> Finding:
    """The address of ``reply-to=jane@example.com`` (Presidio's e-mail pattern allows
    ``=`` in the local part, so its match starts at ``reply``)."""
    label_end = text.rfind("=", finding.start, text.find("@", finding.start, finding.end))
    if label_end < 0:
        return finding
    return Finding(finding.type, label_end + 1, finding.end, finding.score)


def _plausible(text: str, finding: Finding) -> bool:
    """False for what Presidio's recognisers take for PII in a place where it is not: a
    version number read as an IPv4 address, the digits of an id like ``INV-2024-000123``
    read as a phone number."""
    if finding.type == "IP_ADDRESS":
        return _VERSION_BEFORE.search(text, max(0, finding.start - 12), finding.start) is None
    if finding.type == "PHONE_NUMBER":
        return _ID_BEFORE.search(text, max(0, finding.start - 2), finding.start) is None
    return True


def _candidates(text: str, entities: Sequence[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """The entities worth looking for in ``text`` and where their candidates are."""
    found: set[str] = set()
    spans: list[tuple[int, int]] = []
    if "@" in text and "EMAIL_ADDRESS" in entities:
        found.add("EMAIL_ADDRESS")
        spans += [(m.start(), m.end()) for m in _AT.finditer(text)]
    for match in _NUMBER.finditer(text):
        number = match.group()
        digits = len(_DIGIT.findall(number))
        kinds = {"PHONE_NUMBER"} if digits >= 6 else set()
        if digits >= 9:
            kinds.add("US_SSN")
        if digits >= 12:
            kinds.add("CREDIT_CARD")
        if number.count(".") >= 3:
            kinds.add("IP_ADDRESS")
        kinds.intersection_update(entities)
        if kinds:
            found |= kinds
            spans.append(match.span())
    for entity, scan in (("IP_ADDRESS", _IPV6), ("IBAN_CODE", _IBAN), ("CRYPTO", _CRYPTO)):
        if entity in entities:
            matches = [m.span() for m in scan.finditer(text)]
            if matches:
                found.add(entity)
                spans += matches
    return [entity for entity in entities if entity in found], spans


def _windows(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The stretches of ``text`` around ``spans`` with their context words, each from
    and to whitespace (so no token is cut), merged where they touch."""
    windows: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        low = _left_edge(text, start - _CONTEXT_BEFORE)
        high = _right_edge(text, end + _CONTEXT_AFTER)
        if windows and low <= windows[-1][1] + _MERGE_GAP:
            windows[-1] = (windows[-1][0], max(high, windows[-1][1]))
        else:
            windows.append((low, high))
    return windows


def _left_edge(text: str, index: int) -> int:
    if index <= 0:
        return 0
    floor = max(0, index - _LONGEST_TOKEN)
    edge = max(text.rfind(" ", floor, index), text.rfind("\n", floor, index))
    return edge + 1 if edge >= 0 else floor


def _right_edge(text: str, index: int) -> int:
    if index >= len(text):
        return len(text)
    space = _SPACE.search(text, index, index + _LONGEST_TOKEN)
    return space.start() if space else min(len(text), index + _LONGEST_TOKEN)


def _pattern_analyzer(entities: Sequence[str]) -> Any:
    """Presidio's analyzer with the pattern recognisers of ``entities`` and a blank
    spaCy tokenizer (tokens and lemmas for the context words; no model)."""
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer import predefined_recognizers as predefined
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

    class BlankSpacy(NlpEngine):
        """Tokens for the recognisers' context words, without a model to download."""

        def __init__(self) -> None:
            self._nlp = spacy.blank(_LANGUAGE)

        def load(self) -> None:
            return None

        def is_loaded(self) -> bool:
            return True

        def get_supported_languages(self) -> list[str]:
            return [_LANGUAGE]

        def get_supported_entities(self) -> list[str]:
            return []

        def process_text(self, text: str, language: str) -> Any:
            doc = self._nlp(text)
            return NlpArtifacts(
                entities=[],
                tokens=doc,
                tokens_indices=[token.idx for token in doc],
                lemmas=[token.lower_ for token in doc],
                nlp_engine=self,
                language=language,
            )

        def process_batch(self, texts: Any, language: str, *_: Any, **__: Any) -> Any:
            for text in texts:
                yield text, self.process_text(text, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return bool(self._nlp.vocab[word].is_stop)

        def is_punct(self, word: str, language: str) -> bool:
            return bool(self._nlp.vocab[word].is_punct)

    class PhoneCandidates(predefined.PhoneRecognizer):
        """Presidio's phone recogniser, run on each run of digits rather than the whole
        text, and for each run only until one region's rules accept it (its result is the
        same; it costs a fraction: ``phonenumbers`` re-parses every number per region)."""

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> Any:
            import phonenumbers

            results = []
            leniency = self.leniency if self.leniency is not None else 1
            for candidate in _PHONE.finditer(text):
                chunk, offset = candidate.group(), candidate.start()
                digits = len(_DIGIT.findall(chunk, 0, candidate.end(1) - offset))
                if not _MIN_PHONE_DIGITS <= digits <= _MAX_PHONE_DIGITS:
                    continue  # a short number, or a card number or an id
                if _NOT_PHONE.fullmatch(candidate.group(1)):
                    continue  # an IPv4 address or a date
                for region in self.supported_regions:
                    found = list(phonenumbers.PhoneNumberMatcher(chunk, region, leniency=leniency))
                    for match in found:
                        result = self._get_recognizer_result(  # type: ignore[no-untyped-call]
                            match, chunk, region, nlp_artifacts
                        )
                        result.start += offset
                        result.end += offset
                        results.append(result)
                    if found:
                        break
            return results

    recognizers = {
        "EMAIL_ADDRESS": predefined.EmailRecognizer,
        "PHONE_NUMBER": PhoneCandidates,
        "CREDIT_CARD": predefined.CreditCardRecognizer,
        "IBAN_CODE": predefined.IbanRecognizer,
        "US_SSN": predefined.UsSsnRecognizer,
        "IP_ADDRESS": predefined.IpRecognizer,
        "CRYPTO": predefined.CryptoRecognizer,
    }
    registry = RecognizerRegistry(supported_languages=[_LANGUAGE])
    for entity in entities:
        registry.add_recognizer(recognizers[entity]())
    return AnalyzerEngine(
        registry=registry, nlp_engine=BlankSpacy(), supported_languages=[_LANGUAGE]
    )


def _ner_analyzer(model: str) -> Any:
    """Presidio's analyzer with spaCy's named entities from the installed ``model``."""
    if not isinstance(model, str) or importlib.util.find_spec(model) is None:
        raise ImportError(
            f"pii: ner needs the spaCy model {model!r}, which is not installed "
            f"(pip install 'llmplane[pii]' && python -m spacy download {DEFAULT_NER_MODEL})"
        )
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import SpacyRecognizer

    engine: Any = SpacyNlpEngine(models=[{"lang_code": _LANGUAGE, "model_name": model}])
    # Named entities need the tokenizer, tok2vec and ner alone; the parser, tagger and
    # lemmatizer would take most of the time.
    pipeline = spacy.load(model)
    pipeline.select_pipes(enable=[n for n in ("tok2vec", "ner") if n in pipeline.pipe_names])
    engine.nlp = {_LANGUAGE: pipeline}
    registry = RecognizerRegistry(supported_languages=[_LANGUAGE])
    registry.add_recognizer(SpacyRecognizer(supported_entities=list(NER_ENTITIES)))
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=[_LANGUAGE])


class Redactor:
    """Replaces PII and secrets in text with ``<ENTITY_TYPE>`` placeholders: a
    :class:`PiiDetector` and the ``redact`` action. Thread-safe."""

    def __init__(
        self, entities: Sequence[str] = REDACTED_ENTITIES, score_threshold: float = 0.4
    ) -> None:
        self._detector = PiiDetector(entities, score_threshold)

    def redact(self, text: str) -> str:
        """``text`` with every finding replaced by its entity type in angle brackets."""
        if not text.strip():
            return text
        findings = _with_hidden(self._detector.find, text)
        return rewrite(text, findings, "redact") if findings else text

    def redact_many(self, texts: list[str]) -> list[str]:
        """Each text redacted, scanned as one text (one analyzer pass, not one per text)."""
        if len(texts) <= 1 or any(_SEPARATOR in text for text in texts):
            return [self.redact(text) for text in texts]
        joined = _SEPARATOR.join(texts)
        findings = _with_hidden(self._detector.find, joined)
        if any(_SEPARATOR in joined[f.start : f.end] for f in findings):
            return [self.redact(text) for text in texts]  # a finding spans two texts
        return rewrite(joined, findings, "redact").split(_SEPARATOR) if findings else texts


_CALL_TIMEOUT_S = 60.0
_CHILD_NICENESS = 10
_child: Redactor | None = None  # the redactor of a RedactorProcess's child


def _start_child(entities: tuple[str, ...], score_threshold: float) -> None:
    global _child
    with contextlib.suppress(OSError):
        os.nice(_CHILD_NICENESS)  # background work: below the server that asked for it
    _child = Redactor(entities, score_threshold)


def _redact_in_child(texts: list[str]) -> list[str]:
    assert _child is not None
    return _child.redact_many(texts)


class RedactorProcess:
    """A :class:`Redactor` in one child process (spawned, so it shares nothing with the
    caller but the texts): :meth:`redact_many` blocks the calling thread, never the
    process's other threads. The child starts with the first call; :meth:`close` stops it.
    """

    def __init__(
        self, entities: Sequence[str] = REDACTED_ENTITIES, score_threshold: float = 0.4
    ) -> None:
        if importlib.util.find_spec("presidio_analyzer") is None:
            raise ImportError("presidio-analyzer is not installed (pip install 'llmplane[pii]')")
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_child,
            initargs=(tuple(entities), score_threshold),
        )

    def redact_many(self, texts: list[str]) -> list[str]:
        """As :meth:`Redactor.redact_many`, done in the child."""
        return self._pool.submit(_redact_in_child, texts).result(_CALL_TIMEOUT_S)

    def close(self) -> None:
        """Stop the child."""
        self._pool.shutdown(wait=True, cancel_futures=True)
