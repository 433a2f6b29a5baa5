"""PII and secret redaction: text in, the same text with typed placeholders out.

``Redactor().redact("mail me at jane@example.com")`` gives ``"mail me at
<EMAIL_ADDRESS>"``. Detection is Microsoft Presidio's analyzer with its predefined
*pattern* recognisers (e-mail, credit card with its checksum, phone numbers, IBAN, IP,
US SSN, crypto wallets) plus recognisers for secrets (``sk-…`` and ``sk-lp-…`` keys,
bearer tokens, GitHub tokens, AWS access key ids, private key blocks, JWTs). No NER
model is loaded and nothing is downloaded: the analyzer gets a blank spaCy tokenizer,
which its context words need, so it runs offline in a few milliseconds per text.

Presidio (``pip install 'llmplane[pii]'``) is imported when the first ``Redactor`` is
built, which takes about a second: build it off the event loop, once, and reuse it.
A ``Redactor`` is not thread-safe; give each thread its own. Redacting costs a few
milliseconds of pure-Python CPU per text, which a thread would spend holding its
process's GIL: a server redacts with :class:`RedactorProcess`, the same redactor in a
child process, so its event loop never waits for it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

# Presidio's URL recogniser imports tldextract, which would fetch the public suffix list.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

DEFAULT_ENTITIES = (
    "EMAIL_ADDRESS",
    "CREDIT_CARD",
    "PHONE_NUMBER",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "CRYPTO",
    "API_KEY",
    "AWS_ACCESS_KEY",
    "PRIVATE_KEY",
    "JWT",
)

# entity -> [(name, regex, score)]
_SECRET_PATTERNS: dict[str, list[tuple[str, str, float]]] = {
    "API_KEY": [
        ("openai-style key", r"\bsk-[A-Za-z0-9_\-]{16,}", 0.95),
        ("bearer token", r"\b[Bb]earer\s+[A-Za-z0-9._~+/\-]{16,}=*", 0.9),
        ("github token", r"\bgh[pousr]_[A-Za-z0-9]{30,}", 0.95),
    ],
    "AWS_ACCESS_KEY": [("aws access key id", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0.95)],
    "PRIVATE_KEY": [
        (
            "pem private key",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
            1.0,
        )
    ],
    "JWT": [
        (
            "json web token",
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
            0.95,
        )
    ],
}
# Between the texts of one JSON body scanned as one text; no recogniser matches across it.
_SEPARATOR = "\n\u2063\u2063\n"
_LANGUAGE = "en"


def _engine(entities: Iterable[str], score_threshold: float) -> Any:
    import spacy
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
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

    registry = RecognizerRegistry(supported_languages=[_LANGUAGE])
    for recognizer in (
        predefined.EmailRecognizer,
        predefined.CreditCardRecognizer,
        predefined.PhoneRecognizer,
        predefined.IbanRecognizer,
        predefined.IpRecognizer,
        predefined.UsSsnRecognizer,
        predefined.CryptoRecognizer,
    ):
        registry.add_recognizer(recognizer())
    for entity, patterns in _SECRET_PATTERNS.items():
        registry.add_recognizer(
            PatternRecognizer(
                supported_entity=entity,
                name=f"{entity.title().replace('_', '')}Recognizer",
                patterns=[Pattern(name, regex, score) for name, regex, score in patterns],
                supported_language=_LANGUAGE,
            )
        )
    nlp = BlankSpacy()
    engine = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp,
        supported_languages=[_LANGUAGE],
        default_score_threshold=score_threshold,
    )
    return engine, list(entities)


class Redactor:
    """Replaces PII and secrets in text with ``<ENTITY_TYPE>`` placeholders."""

    def __init__(
        self, entities: Sequence[str] = DEFAULT_ENTITIES, score_threshold: float = 0.4
    ) -> None:
        self._analyzer, self._entities = _engine(entities, score_threshold)

    def redact(self, text: str) -> str:
        """``text`` with every finding replaced by its entity type in angle brackets; where
        findings overlap, the more certain (then the longer) one wins."""
        if not text.strip():
            return text
        found = self._analyzer.analyze(text, language=_LANGUAGE, entities=self._entities)
        if not found:
            return text
        found.sort(key=lambda r: (-r.score, -(r.end - r.start)))
        chosen: list[tuple[int, int, str]] = []
        for result in found:
            if all(result.end <= start or result.start >= end for start, end, _ in chosen):
                chosen.append((result.start, result.end, result.entity_type))
        for start, end, entity in sorted(chosen, reverse=True):
            text = f"{text[:start]}<{entity}>{text[end:]}"
        return text

    def redact_many(self, texts: list[str]) -> list[str]:
        """Each text redacted, scanned as one text (one analyzer pass, not one per text)."""
        if len(texts) <= 1:
            return [self.redact(text) for text in texts]
        if any(_SEPARATOR in text for text in texts):
            return [self.redact(text) for text in texts]
        parts = self.redact(_SEPARATOR.join(texts)).split(_SEPARATOR)
        if len(parts) != len(texts):  # a finding spanned two texts: scan them one by one
            return [self.redact(text) for text in texts]
        return parts


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
        self, entities: Sequence[str] = DEFAULT_ENTITIES, score_threshold: float = 0.4
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
