"""One list of secret shapes: the log scrubber, the stored request logs and the secrets
detector agree on what a secret is."""

from __future__ import annotations

import pytest

from llmplane.guardrails.pii import SecretsDetector
from llmplane.secret_patterns import find_secrets, redact_secrets
from llmplane.secret_scrub import REDACTED, SecretScrubber
from llmplane.telemetry.bodies import scrub_platform_keys

PLATFORM_KEY = "sk-lp--x9Qw--Ab3_Y7LsQ9wE2rT5yU8iO1pA4sD7fG0hJ3kL6"
SECRETS = {
    "openai": "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56",
    "github": "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "pem": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----",
    "platform": PLATFORM_KEY,
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_log_lines_lose_every_secret_shape(name: str) -> None:
    line = f"upstream said: invalid credentials {SECRETS[name]} (401)"
    scrubbed = SecretScrubber()(line)
    assert SECRETS[name] not in scrubbed
    assert REDACTED in scrubbed and scrubbed.startswith("upstream said: invalid credentials ")


def test_the_scrubber_keeps_labels_and_the_rest_of_the_line() -> None:
    scrub = SecretScrubber()
    assert scrub("GET /v1/x?key=abc123 -> 403") == "GET /v1/x?key=[redacted] -> 403"
    assert scrub("DSN postgres://app:hunter2@db/app") == "DSN postgres://app:[redacted]@db/app"
    assert scrub("retrying in 2.5 s (attempt 2 of 3)") == "retrying in 2.5 s (attempt 2 of 3)"


def test_the_detector_and_the_stored_logs_find_the_platform_key() -> None:
    text = f"my key is {PLATFORM_KEY} ok"
    assert [f.type for f in SecretsDetector().check(text).findings] == ["API_KEY"]
    assert scrub_platform_keys([text]) == ["my key is <API_KEY> ok"]
    assert redact_secrets(text, "<API_KEY>") == "my key is <API_KEY> ok"


def test_overlapping_secrets_are_replaced_once() -> None:
    text = "Authorization: Bearer " + SECRETS["jwt"]
    assert len(find_secrets(text)) == 2  # a bearer token, and a JWT
    assert redact_secrets(text, "*") == "Authorization: Bearer *"


@pytest.mark.parametrize(
    "prefix",
    ["", "İstanbul office: "],  # "İ" lower-cases to two characters: the slower path
)
def test_case_insensitive_rules_find_their_spans(prefix: str) -> None:
    text = prefix + "DB_PASSWORD=Winter2025! MY_SERVICE_API_KEY=Zx81kQ0pLm3N7vB2cR5t"
    found = [(entity, text[start:end]) for entity, start, end, _ in find_secrets(text)]
    assert found == [("API_KEY", "Zx81kQ0pLm3N7vB2cR5t"), ("PASSWORD", "Winter2025!")]
