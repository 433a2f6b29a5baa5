"""What secrets look like: the one list of patterns that every part of llmplane uses.

Three readers share it: the ``secrets`` guardrail detector and the PII redactor
(:mod:`llmplane.guardrails.pii`), the log scrubber (:mod:`llmplane.secret_scrub`) and
the stored request logs (:mod:`llmplane.telemetry.stored_logs`, which scrub platform keys
from every body). This module sits at the bottom of the layers: it imports nothing but
:mod:`re`, so telemetry can use it without importing guardrails.

:func:`find_secrets` returns ``(entity, start, end, score)`` for every secret in a text:

- ``API_KEY``: OpenAI (``sk-``, ``sk-proj-``), Anthropic (``sk-ant-``), llmplane
  (``sk-lp-``), Google (``AIza…``), Stripe (``sk_live_``, ``rk_live_``, test keys,
  ``whsec_``), Slack (``xox[abposr]-``), GitHub (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``,
  ``ghr_``, ``github_pat_``), Hugging Face (``hf_``), bearer tokens, and values of
  ``x-api-key``/``api_key``/``access_token``/``client_secret`` and ``?key=`` parameters;
- ``AWS_ACCESS_KEY`` (``AKIA…``/``ASIA…`` key ids) and ``AWS_SECRET_KEY`` (40 characters
  after ``aws_secret_access_key`` or "secret access key");
- ``PRIVATE_KEY``: PEM private key blocks, also cut off before their ``END`` line;
- ``JWT``: signed or unsigned JSON web tokens;
- ``PASSWORD``: the password of a URL (``postgres://user:PASS@host``) and the value of
  ``password=``/``pwd=``/``"password": "…"`` pairs.

A span covers the secret alone, not its label (``Bearer `` and ``password=`` stay), so
that a redacted text still says what was there. Placeholders (``sk-your-key-here``,
``password=${DB_PASSWORD}``, ``****``) are not secrets. Each rule runs only when its
literal hint is in the text, so a text without secrets costs a few substring searches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECRET_ENTITIES = (
    "API_KEY",
    "AWS_ACCESS_KEY",
    "AWS_SECRET_KEY",
    "PRIVATE_KEY",
    "JWT",
    "PASSWORD",
)

# Not preceded by a character that would make the match the tail of a longer token.
_START = r"(?<![A-Za-z0-9_\-])"
_END = r"(?![A-Za-z0-9_\-])"
_TOKEN = r"[A-Za-z0-9._~+/\-]"  # noqa: S105 (a pattern, not a password)

# The random part of a generated key has digits or mixed case; "your-api-key-here" and
# "xxxxxxxxxxxxxxxx" do not.
_DIGIT = re.compile(r"\d")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
# What configuration files and docs write where a password would go.
_PLACEHOLDER = re.compile(
    r"(?:(.)\1*|\$\{[^}]*\}|\$\(?[A-Za-z_]\w*\)?|\{\{.*\}\}|\{[^}]*\}|<[^>]*>|\[[^\]]*\]"
    r"|<.*|\$\{.*|%\(?\w*\)?s|\.\.\.+|…|your[_\-]?\w*|(?:db_?|my_?|the_?)?passw(?:or)?d(?:_?here)?"
    r"|none|null|nil|true|false|undefined|redacted|\*+\w*\*+|x{3,}\w*)",
    re.IGNORECASE,
)
# Code rather than a value: ``password=os.environ["PG"]``, ``pwd=get_password()``,
# ``secretKey = process.env.SECRET_KEY``.
_CODE = re.compile(r"[(\[{]|^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")


_VARIED = 6  # distinct characters at least: "AKIAXXXXXXXXXXXXXXXX" is a placeholder


def _random_looking(value: str) -> bool:
    if len(set(value)) < _VARIED:
        return False
    return bool(_DIGIT.search(value)) or bool(_UPPER.search(value) and _LOWER.search(value))


def _real_password(value: str) -> bool:
    return not _PLACEHOLDER.fullmatch(value) and not _CODE.search(value)


@dataclass(frozen=True, slots=True)
class SecretRule:
    """One shape of secret: ``pattern`` finds it, its first matching group (or the whole
    match where it has none) is the secret's span; the rule runs only when one of
    ``hints`` is in the text (in its lower-cased form when ``hints_lower``)."""

    entity: str
    pattern: re.Pattern[str]
    score: float
    hints: tuple[str, ...]
    hints_lower: bool = False
    # "varied": six distinct characters at least; "random": varied, with digits or mixed
    # case; "value": random and not code; "password": not a placeholder and not code.
    check: str = ""
    # The same pattern without IGNORECASE, run on the lower-cased text: a regex that starts
    # with a literal is searched fast, a case-insensitive one is tried at every position.
    lowered: re.Pattern[str] | None = None

    def accepts(self, value: str) -> bool:
        """Whether a matched value is a secret rather than a placeholder."""
        if self.check == "random":
            return _random_looking(value)
        if self.check == "varied":
            return len(set(value)) >= _VARIED
        if self.check == "value":
            return _random_looking(value) and not _CODE.search(value)
        if self.check == "password":
            return _real_password(value)
        return True


def _rule(
    entity: str,
    regex: str,
    score: float,
    hints: tuple[str, ...],
    *,
    lower: bool = False,
    check: str = "",
) -> SecretRule:
    """A rule; with ``lower`` its regex (written in lower case) is case-insensitive."""
    if lower:
        pattern = re.compile(regex, re.IGNORECASE)
        return SecretRule(entity, pattern, score, hints, True, check, re.compile(regex))
    return SecretRule(entity, re.compile(regex), score, hints, False, check)


# A pattern, not a password:
# "password" after anything (DB_PASSWORD, PGPASSWORD); "pwd" and "pass" as words.
_PASSWORD_KEY = r"p(?:assw(?:or)?d|assphrase|(?<![a-z0-9]p)(?:wd|ass))"  # noqa: S105
_KEY_HINTS = (
    "api-key",
    "api_key",
    "api key",
    "apikey",
    "access_token",
    "access-token",
    "accesstoken",
    "auth_token",
    "auth-token",
    "authtoken",
    "client_secret",
    "client-secret",
    "clientsecret",
    "secret_key",
    "secret-key",
    "secretkey",
)
_QUOTED = r"(?:\"([^\"\n]{3,200})\"|'([^'\n]{3,200})')"

SECRET_RULES: tuple[SecretRule, ...] = (
    # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), llmplane (sk-lp-, sk-lp-admin-) keys.
    _rule("API_KEY", _START + r"sk-[A-Za-z0-9_\-]{16,}", 0.95, ("sk-",), check="random"),
    _rule("API_KEY", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}", 0.95, ("k_live_", "k_test_")),
    _rule("API_KEY", r"\bwhsec_[A-Za-z0-9]{24,}", 0.95, ("whsec_",)),
    _rule("API_KEY", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", 0.95, ("xox",), check="random"),
    _rule(
        "API_KEY",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})\b",
        0.95,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    _rule("API_KEY", r"\bAIza[0-9A-Za-z_\-]{35}" + _END, 0.95, ("AIza",)),
    _rule("API_KEY", r"\bhf_[A-Za-z0-9]{30,}\b", 0.95, ("hf_",)),
    _rule(
        "API_KEY",
        rf"bearer\s+({_TOKEN}{{16,}}=*)",
        0.85,
        ("bearer",),
        lower=True,
        check="random",
    ),
    _rule(
        "API_KEY",
        r"(?:api[_\-\s]?key|access[_\-]?token|auth[_\-]?token|client[_\-]?secret"
        rf"|secret[_\-]?key)[\"']?\s*[:=]\s*[\"']?({_TOKEN}{{16,}})",
        0.9,
        _KEY_HINTS,
        lower=True,
        check="value",
    ),
    _rule(
        "API_KEY",
        r"[?&](?:key|api_key|api-key|token|access_token)=([^\s&#'\"]{16,})",
        0.9,
        ("key=", "token="),
        lower=True,
        check="value",
    ),
    _rule(
        "AWS_ACCESS_KEY",
        r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
        0.95,
        ("AKIA", "ASIA"),
        check="varied",
    ),
    _rule(
        "AWS_SECRET_KEY",
        r"(?:secret[_\s\-]?access[_\s\-]?key|aws[_\s\-]?secret(?:[_\s\-]?key)?)[\"']?"
        r"\s*(?:[:=]|\bis\b)?\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        0.9,
        ("secret",),
        lower=True,
        check="random",
    ),
    _rule(
        "PRIVATE_KEY",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"|[A-Za-z0-9+/=\s:,\-]*[A-Za-z0-9+/=])",  # cut off before its END line
        1.0,
        ("PRIVATE KEY-----",),
    ),
    _rule(
        "JWT",
        r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        0.95,
        ("eyJ",),
    ),
    # The password of a URL: scheme://user:PASSWORD@host (the user may be empty).
    _rule(
        "PASSWORD",
        r"://[^\s:/?#@'\"]*:([^\s/?@'\"]{1,200})@[\w\-\[]",
        0.9,
        ("://",),
        check="password",
    ),
    # password=VALUE, pwd=VALUE; (connection strings, env files, command lines)
    _rule(
        "PASSWORD",
        _PASSWORD_KEY + r"[\"']?\s*=\s*(?:" + _QUOTED + r"|([^\s\"';,]{3,200}))",
        0.85,
        ("pass", "pwd"),
        lower=True,
        check="password",
    ),
    # "password": "VALUE", password: VALUE and "my password is VALUE" where VALUE has a digit
    # or symbol (YAML, JSON, chat); "password: must be 12 characters" is prose.
    _rule(
        "PASSWORD",
        _PASSWORD_KEY
        + r"[\"']?(?:\s*:|\s+is:?)\s*(?:"
        + _QUOTED
        + r"|((?=[^\s\"',;]*[\d!@#$%^&*_+=~\-])[^\s\"',;]{4,200}(?<![.?:)])))",
        0.85,
        ("pass", "pwd"),
        lower=True,
        check="password",
    ),
)


def _span(match: re.Match[str]) -> tuple[int, int]:
    if match.lastindex:
        for group in range(1, match.lastindex + 1):
            if match.start(group) >= 0:
                return match.span(group)
    return match.span()


def find_secrets(
    text: str, entities: frozenset[str] | None = None
) -> list[tuple[str, int, int, float]]:
    """Every secret in ``text`` as ``(entity, start, end, score)``, in rule order (they
    may overlap); ``entities`` limits the search to those types."""
    found: list[tuple[str, int, int, float]] = []
    lowered = ""
    for rule in SECRET_RULES:
        if entities is not None and rule.entity not in entities:
            continue
        if rule.hints_lower:
            lowered = lowered or text.lower()
            haystack = lowered
        else:
            haystack = text
        if not any(hint in haystack for hint in rule.hints):
            continue
        if rule.lowered is not None and len(lowered) == len(text):
            matches = rule.lowered.finditer(lowered)  # same offsets: one character each
        else:
            matches = rule.pattern.finditer(text)
        for match in matches:
            start, end = _span(match)
            if end > start and rule.accepts(text[start:end]):
                found.append((rule.entity, start, end, rule.score))
    return found


def redact_secrets(text: str, replacement: str) -> str:
    """``text`` with every secret :func:`find_secrets` finds replaced by ``replacement``
    (where two overlap, their union is replaced)."""
    spans = sorted((start, end) for _, start, end, _ in find_secrets(text))
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        parts.append(text[position : max(start, position)])
        if start >= position:
            parts.append(replacement)
        position = end
    parts.append(text[position:])
    return "".join(parts)


# An llmplane key as a tokenizer or a model may echo it ("sk - lp - abc - def"). Its
# random part is base64url, so it may hold "--" and start or end with "-"; spaces count
# only next to a dash. The stored request logs scrub it from every body.
PLATFORM_KEY_ECHOED = re.compile(
    r"sk\s{0,2}-\s{0,2}lp\s{0,2}-(?:[\w-]|\s{1,2}(?=-)|(?<=-)\s{1,2}(?=\w))*"
)

# For log lines: a bearer token, an x-api-key header value, a key in a URL's query (the
# label kept, any length of value), or an llmplane key.
LOG_SECRET = re.compile(
    r"(?i)(bearer\s+|x-api-key[\"']?\s*[:=]\s*[\"']?|[?&](?:key|api_key|api-key|token)=)"
    r"[^\s'\",&]+"
    r"|sk-lp-[A-Za-z0-9_\-]+"
)
