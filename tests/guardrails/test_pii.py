"""The PII and secret redactor: findings become typed placeholders, other text is kept."""

from __future__ import annotations

import multiprocessing

import pytest

from llmplane.guardrails.pii import Redactor, RedactorProcess


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


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
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "jwt <JWT>",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nabc\n-----END RSA PRIVATE KEY-----",
            "<PRIVATE_KEY>",
        ),
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
