"""The whole-suite secret scan: no secret in logs, spans, metrics or error bodies.

Every secret the tests hand the platform is a *canary* made by :func:`canary` (the admin
key, the provider keys, the store passwords, the wrong keys clients send), and every
virtual key the gateway mints for a test is registered by the helpers that see it minted
(:func:`register_minted`). What the platform writes reaches the scan three ways:

- the helpers hand it to :func:`scan`: error bodies (status >= 400) of the ``http``,
  ``openai_client`` and ``anthropic_client`` helpers, ``/metrics`` bodies, exported
  spans, the output of ``llmplane`` CLI runs;
- :func:`watch_file`: the log of every gateway process, read when the session ends;
- this plugin scans pytest's captured stdout, stderr and log of every test phase.

A text is scanned when it is recorded, against the secrets known by then (the platform
cannot write a secret it has not been given yet), so nothing is kept but the findings.
Besides the registered values it finds any llmplane key by its shape (``sk-lp-`` and a
full-length key) and any piece of a canary of this run. When the session ends, findings
fail the run with the kind of secret, where it was found and the text around it, masked.

The one place a secret is meant to be shown, the answer that mints a key, is where the
helpers register it, and is not scanned.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A piece of this marker in any output is a canary of this run escaping.
RUN_MARK = f"CANARY-{secrets.token_hex(3)}-"
# Where a key or a canary is cut off: the characters keys, tokens and passwords use.
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_MARKERS = re.compile(r"CANARY-|sk-lp-")
# An llmplane key, virtual (``sk-lp-`` + 43 characters) or generated admin key.
KEY_SHAPE = re.compile(r"sk-lp-(?:admin-)?[A-Za-z0-9_\-]{43,}")
_CONTEXT = 60
_MAX_FINDINGS = 50


@dataclass(frozen=True)
class Finding:
    """One secret in one output."""

    kind: str
    where: str
    context: str


class _Scan:
    """The run's secrets, its log files and what was found; safe to use from threads."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.files: dict[Path, str] = {}
        self.findings: list[Finding] = []
        self.dropped = 0
        self.scanned = 0
        self.current_test = "the session"
        self.lock = threading.Lock()


_scan = _Scan()


def canary(kind: str, prefix: str = "") -> str:
    """A new secret of ``kind`` (``"admin key"``, ``"provider key"``, …) for the tests to
    hand the platform: ``prefix`` (to keep a shape the code expects, like ``sk-lp-``),
    this run's mark and 16 random hex digits."""
    value = f"{prefix}{RUN_MARK}{secrets.token_hex(8)}"
    with _scan.lock:
        _scan.secrets[value] = kind
    return value


def register_minted(output: str, kind: str = "virtual key") -> list[str]:
    """Register every llmplane key in ``output`` (an answer that mints keys) as a secret
    of ``kind``; returns them."""
    keys = KEY_SHAPE.findall(output)
    with _scan.lock:
        for key in keys:
            _scan.secrets.setdefault(key, kind)
    return keys


def watch_file(path: Path, what: str) -> None:
    """Scan ``path`` (a process's log, about to be written) when the session ends; what
    it holds already (a restarted process's last log, about to be overwritten), now."""
    with _scan.lock:
        before = _scan.files.get(path)
        _scan.files[path] = f"{what} {path} (started in {_scan.current_test})"
    if before is not None and path.exists():
        _scan_text(path.read_bytes().decode("utf-8", errors="replace"), before)


def scan(output: str | bytes, what: str) -> None:
    """Scan one output of the platform now; ``what`` says what it is (``"error body of
    POST /v1/chat/completions"``); the current test is added."""
    if not output:
        return
    text = output.decode("latin-1") if isinstance(output, bytes) else output
    _scan_text(text, f"{what} in {_scan.current_test}")


def _token_at(text: str, start: int, end: int) -> tuple[int, int]:
    """The run of token characters around ``text[start:end]``."""
    while start > 0 and text[start - 1] in _TOKEN_CHARS:
        start -= 1
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    return start, end


def _classify(token: str) -> str | None:
    """What secret ``token`` is or holds, if any."""
    known = _scan.secrets.get(token)
    if known is not None:
        return known
    for value, kind in _scan.secrets.items():
        if value in token:
            return kind
    if KEY_SHAPE.search(token):
        return "an llmplane key (found by its shape)"
    if RUN_MARK in token:
        return "a piece of a canary"
    return None


def _secret_spans(text: str) -> Iterable[tuple[int, int, str]]:
    """Each secret in ``text``: where it starts and ends and what it is."""
    position = 0
    while (match := _MARKERS.search(text, position)) is not None:
        start, end = _token_at(text, match.start(), match.end())
        kind = _classify(text[start:end])
        if kind is not None:
            yield start, end, kind
        position = end


def _masked(text: str) -> str:
    """``text`` with each secret replaced by its kind and length."""
    pieces: list[str] = []
    last = 0
    for start, end, kind in _secret_spans(text):
        pieces += [text[last:start], f"<{kind}: {end - start} characters>"]
        last = end
    pieces.append(text[last:])
    return "".join(pieces).replace("\n", "\\n")


def _scan_text(text: str, where: str) -> None:
    with _scan.lock:
        _scan.scanned += 1
        for start, end, kind in _secret_spans(text):
            if len(_scan.findings) >= _MAX_FINDINGS:
                _scan.dropped += 1
                continue
            around_start, around_end = _token_at(
                text, max(0, start - _CONTEXT), min(len(text), end + _CONTEXT)
            )
            context = _masked(text[around_start:around_end])
            _scan.findings.append(Finding(kind, where, context))


def findings() -> list[Finding]:
    """What was found so far (the log files are scanned by :func:`finish`)."""
    with _scan.lock:
        return list(_scan.findings)


def finish() -> list[Finding]:
    """Scan the watched log files; every finding of the run."""
    with _scan.lock:
        files, _scan.files = _scan.files, {}
    for path, where in files.items():
        if path.exists():
            _scan_text(path.read_bytes().decode("utf-8", errors="replace"), where)
    return findings()


def report(found: list[Finding]) -> list[str]:
    """The lines that tell a reader what leaked where."""
    lines = [f"{len(found) + _scan.dropped} secret(s) found in the platform's outputs:"]
    for finding in found:
        lines += [f"- {finding.kind} in {finding.where}", f"    …{finding.context}…"]
    if _scan.dropped:
        lines.append(f"- and {_scan.dropped} more not shown")
    return lines


# pytest hooks: the plugin (registered by tests/conftest.py, or with -p tests.canary).


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    """Name the test that the outputs recorded from now on belong to."""
    _scan.current_test = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Scan what this phase of the test captured (its stdout, stderr and log)."""
    for title, content in report.sections:
        # A report repeats the sections of the phases before it: only this phase's.
        if title.endswith(f" {report.when}"):
            _scan_text(content, f"{title.lower()} of {report.nodeid}")


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Once everything has stopped (the session's gateways too): fail on any finding."""
    yield
    found = finish()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not found:
        if reporter is not None:
            reporter.write_line("")  # ends the progress line
            reporter.write_line(
                f"secret scan: no leak of {len(_scan.secrets)} secrets in {_scan.scanned} outputs"
            )
        return
    lines = report(found)
    if reporter is not None:
        reporter.write_line("")  # ends the progress line
        reporter.write_sep("=", "secrets leaked", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
