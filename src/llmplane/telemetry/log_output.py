"""Where the gateway's log lines go and how they look (``llmplane up``).

Lines go to stderr through a bounded queue: the event loop only enqueues a record, a
thread writes it, and when the writer falls behind (a blocked pipe) records are dropped
and counted rather than stalling requests.

``json``: every line is a JSON object — request lines (:mod:`request_log`) as they are,
other records as ``{"ts", "level", "logger", "message", "exc"?}``. ``text``: the usual
``time LEVEL logger: message`` lines (request lines as their JSON message).

Other records pass through :class:`SecretScrubber`: the secrets the process knows (admin
key, provider keys, store passwords) and anything that looks like a bearer token or an
llmplane key are replaced, so that an exception message quoting a header or URL cannot
leak one.
"""

from __future__ import annotations

import logging
import queue
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import orjson

from llmplane.telemetry.request_log import REQUEST_LOGGER

if TYPE_CHECKING:
    from llmplane.config.platform import PlatformConfig
    from llmplane.config.settings import Settings

REDACTED = "[redacted]"
_QUEUE_SIZE = 10_000
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A bearer token, an x-api-key header value, an llmplane key, a key in a URL's query.
_LOOKS_SECRET = re.compile(
    r"(?i)(bearer\s+|x-api-key[\"']?\s*[:=]\s*[\"']?|[?&](?:key|api_key|api-key|token)=)"
    r"[^\s'\",&]+"
    r"|sk-lp-[A-Za-z0-9_\-]+"
)


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
        return _LOOKS_SECRET.sub(_redact_match, text)


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
    return found


class GatewayFormatter(logging.Formatter):
    """Request lines as they are; other records scrubbed, as JSON or as text."""

    def __init__(self, log_format: Literal["json", "text"], scrub: SecretScrubber) -> None:
        super().__init__(_TEXT_FORMAT)
        self._json = log_format == "json"
        self._scrub = scrub

    def format(self, record: logging.LogRecord) -> str:
        """One line (plus a traceback, scrubbed, for text records with one)."""
        if record.name == REQUEST_LOGGER:
            line = record.getMessage()  # built from ids and numbers only
            return line if self._json else f"{self.formatTime(record)} INFO {record.name}: {line}"
        if not self._json:
            return self._scrub(super().format(record))
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[
                :-6
            ]
            + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": self._scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = self._scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class _DroppingQueueHandler(QueueHandler):
    """A queue handler that drops (and counts) records when its queue is full."""

    dropped = 0

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Formatting (and the traceback) happens in the writer thread, not on the loop.
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


def configure_logging(
    level: str, log_format: Literal["json", "text"], secrets: Iterable[str | None] = ()
) -> QueueListener:
    """Send the process's log records to stderr, formatted and scrubbed, through a
    bounded queue; returns the started listener (``stop()`` it to flush at exit)."""
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(GatewayFormatter(log_format, SecretScrubber(secrets)))
    records: queue.Queue[logging.LogRecord] = queue.Queue(_QUEUE_SIZE)
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(_DroppingQueueHandler(records))
    root.setLevel(level.upper())
    listener = QueueListener(records, writer, respect_handler_level=True)
    listener.start()
    return listener
