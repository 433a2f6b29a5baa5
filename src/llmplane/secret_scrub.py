"""Keeping secrets out of text the platform writes or passes on: log lines, error
messages of provider libraries.

:class:`SecretScrubber` replaces the secrets a process knows (:func:`known_secrets`: the
admin key, provider keys, store passwords) and anything shaped like a secret: a bearer
token, an ``x-api-key`` value, a key in a URL's query, an llmplane key, and every other
shape in :mod:`llmplane.secret_patterns` (provider keys, private keys, JWTs, passwords in
connection strings), so that an exception message quoting a header or URL cannot leak one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from llmplane.secret_patterns import LOG_SECRET, redact_secrets

if TYPE_CHECKING:
    from llmplane.config.platform import PlatformConfig
    from llmplane.config.settings import Settings

REDACTED = "[redacted]"


def _redact_match(match: re.Match[str]) -> str:
    return (match.group(1) or "") + REDACTED


class SecretScrubber:
    """Replaces known secrets and secret-looking tokens in a formatted log line."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return redact_secrets(LOG_SECRET.sub(_redact_match, text), REDACTED)


def known_secrets(settings: Settings, platform: PlatformConfig, admin_key: str) -> list[str]:
    """The secrets this process holds, to be scrubbed from log lines: the admin key, every
    deployment's provider key, the store passwords and the budget webhook URL (its path
    is often the secret)."""
    found = [admin_key]
    for model in platform.models:
        found += [key for d in model.deployments if (key := d.upstream_key())]
    for url in (settings.database_url, settings.redis_url):
        if url and (password := urlsplit(url).password):
            found.append(password)
    if settings.budget_webhook_url:
        found.append(settings.budget_webhook_url)
    if platform.guardrails.hash_secret is not None:
        found.append(platform.guardrails.hash_secret.get_secret_value())
    return found
