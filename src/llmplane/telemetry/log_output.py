"""Where the gateway's log lines go and how they look (``llmplane up``).

Lines go to stderr through :class:`LogWriter`: the event loop only appends a line or a
record to a bounded deque, a thread writes what has gathered in one batch every 50 ms,
and when the writer falls behind (a blocked pipe) lines are dropped and counted rather
than stalling requests. Request lines skip the logging machinery altogether (they are
ready bytes; a LogRecord per request would cost more than the line).

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
import sys
import threading
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

import orjson

from llmplane.secret_scrub import SecretScrubber
from llmplane.telemetry.request_log import REQUEST_LOGGER, use_writer

_QUEUE_SIZE = 10_000
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


class LogWriter:
    """The one thread that writes the process's log lines, in batches.

    The event loop only appends to a deque (request lines as ready bytes, other records
    as they are); every ``interval_s`` the thread takes what is there, formats the
    records, and writes the whole batch with one write and one flush. No lock and no
    wake-up per line: under load, thousands of lines cost one write a tick. When the
    writer falls behind (a blocked pipe), lines beyond ``limit`` are dropped and counted.
    """

    def __init__(
        self,
        formatter: logging.Formatter,
        stream: TextIO | None = None,
        limit: int = _QUEUE_SIZE,
        interval_s: float = 0.05,
    ) -> None:
        self._formatter = formatter
        self._stream = stream if stream is not None else sys.stderr
        self._limit = limit
        self._interval_s = interval_s
        self._pending: deque[bytes | logging.LogRecord] = deque()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmplane-log-writer", daemon=True)
        self.dropped = 0

    def start(self) -> LogWriter:
        """Start writing."""
        self._thread.start()
        return self

    def submit(self, item: bytes | logging.LogRecord) -> None:
        """Queue a request line (bytes, written as is) or a record (formatted later)."""
        if len(self._pending) >= self._limit:
            self.dropped += 1
            return
        self._pending.append(item)

    def _write_pending(self) -> None:
        pending = self._pending
        lines: list[str] = []
        while pending:
            item = pending.popleft()
            if isinstance(item, bytes):
                lines.append(item.decode())
            else:
                try:
                    lines.append(self._formatter.format(item))
                except Exception:  # noqa: BLE001, S112 - one bad record must not stop logging
                    continue
        if lines:
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                self.dropped += len(lines)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self._write_pending()
        self._write_pending()

    def stop(self) -> None:
        """Write what is still queued, then stop (idempotent)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class _WriterHandler(logging.Handler):
    """Hands records to the :class:`LogWriter` (formatting happens in its thread)."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        self._writer.submit(record)


def configure_logging(
    level: str, log_format: Literal["json", "text"], secrets: Iterable[str | None] = ()
) -> LogWriter:
    """Send the process's log lines to stderr, formatted and scrubbed, through a batching
    writer thread; returns the started writer (``stop()`` it to flush at exit). Request
    lines skip the logging machinery (:func:`request_log.use_writer`) unless in text
    format."""
    writer = LogWriter(GatewayFormatter(log_format, SecretScrubber(secrets))).start()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(_WriterHandler(writer))
    root.setLevel(level.upper())
    if log_format == "json" and logging.getLogger(REQUEST_LOGGER).isEnabledFor(logging.INFO):
        use_writer(writer.submit)
    return writer
