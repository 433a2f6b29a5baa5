"""What to do with what a detector found: rewrite its spans, or restore them later.

- ``redact``: ``<EMAIL_ADDRESS>``, the type in angle brackets;
- ``mask``: every letter and digit becomes ``*`` (separators stay, so the shape of a
  phone number or card is kept; cards, IBANs and phone numbers keep their last four
  digits, as receipts do);
- ``hash``: ``<EMAIL_ADDRESS:5d41402abc4b2a76>``, a keyed hash of the value that is the
  same for the same value within one tenant (joins and counts still work) and differs
  between tenants (a value cannot be followed from one team's data to another's);
- :class:`Pseudonymizer`: ``<EMAIL_ADDRESS_1>``, numbered per request, and restored in
  the model's answer (also streamed) so the user reads their own data back while the
  provider never saw it.

``block`` and ``flag`` rewrite nothing: they are the policy's decision, not a rewrite.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Literal

from llmplane.guardrails.base import Finding

Rewrite = Literal["redact", "mask", "hash"]
_KEEP_LAST_DIGITS = frozenset({"CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER"})
_HASH_HEX = 16


def non_overlapping(findings: Iterable[Finding]) -> list[Finding]:
    """The findings to rewrite, in text order: where two overlap, the more certain (then
    the longer) wins; whole-text findings (``0, 0``) have no span and are left out."""
    ranked = sorted(
        (f for f in findings if f.end > f.start), key=lambda f: (-f.score, f.start - f.end)
    )
    chosen: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= kept.start or finding.start >= kept.end for kept in chosen):
            chosen.append(finding)
    return sorted(chosen, key=lambda f: f.start)


def _mask(value: str, entity: str) -> str:
    keep = 4 if entity in _KEEP_LAST_DIGITS else 0
    out: list[str] = []
    for char in reversed(value):
        if keep and char.isdigit():
            out.append(char)
            keep -= 1
        else:
            out.append("*" if char.isalnum() else char)
    return "".join(reversed(out))


def tenant_hash_key(secret: bytes, tenant: str | None) -> bytes:
    """The hash key of one tenant, derived from the platform's secret."""
    return hmac.new(secret, (tenant or "").encode(), hashlib.sha256).digest()


def _hashed(value: str, entity: str, key: bytes) -> str:
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:_HASH_HEX]
    return f"<{entity}:{digest}>"


def rewrite(
    text: str, findings: Sequence[Finding], action: Rewrite, *, hash_key: bytes | None = None
) -> str:
    """``text`` with every finding's span replaced as ``action`` says; ``hash`` needs
    ``hash_key`` (see :func:`tenant_hash_key`)."""
    if action == "hash" and hash_key is None:
        raise ValueError("the hash action needs a hash_key")
    parts: list[str] = []
    position = 0
    for finding in non_overlapping(findings):
        value = text[finding.start : finding.end]
        parts.append(text[position : finding.start])
        if action == "redact":
            parts.append(f"<{finding.type}>")
        elif action == "mask":
            parts.append(_mask(value, finding.type))
        else:
            assert hash_key is not None
            parts.append(_hashed(value, finding.type, hash_key))
        position = finding.end
    parts.append(text[position:])
    return "".join(parts)


# Any type name: entity types (EMAIL_ADDRESS) and rule ids (blocklist.term[0]) alike;
# only placeholders this request issued are ever restored.
_PLACEHOLDER = re.compile(r"<([A-Za-z][\w.\[\]]*)_(\d+)>")
_LONGEST_PLACEHOLDER = 64


class Pseudonymizer:
    """Reversible placeholders for one request (not shared between requests).

    ``replace`` swaps each finding for ``<TYPE_N>`` (the same value gets the same
    placeholder everywhere in the request); ``restore`` puts the values back in an answer;
    :meth:`restorer` does it for a stream, chunk by chunk.
    """

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._by_placeholder)

    def replace(self, text: str, findings: Sequence[Finding]) -> str:
        """``text`` with each finding's span replaced by its placeholder."""
        parts: list[str] = []
        position = 0
        for finding in non_overlapping(findings):
            value = text[finding.start : finding.end]
            parts.append(text[position : finding.start])
            parts.append(self._placeholder(finding.type, value))
            position = finding.end
        parts.append(text[position:])
        return "".join(parts)

    def _placeholder(self, entity: str, value: str) -> str:
        placeholder = self._by_value.get((entity, value))
        if placeholder is None:
            number = self._counts[entity] = self._counts.get(entity, 0) + 1
            placeholder = f"<{entity}_{number}>"
            self._by_value[(entity, value)] = placeholder
            self._by_placeholder[placeholder] = value
        return placeholder

    def restore(self, text: str) -> str:
        """``text`` with every placeholder of this request replaced by its value (other
        text that looks like a placeholder is left as it is)."""
        if not self._by_placeholder or "<" not in text:
            return text
        return _PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

    def restorer(self) -> StreamRestorer:
        """A restorer for one streamed text (one per choice or content block)."""
        return StreamRestorer(self)


class StreamRestorer:
    """Restores placeholders in a text that arrives in pieces, where a placeholder may be
    split between two pieces: the tail that could still become one is held back (never
    more than a placeholder's length) until the next piece or :meth:`flush`."""

    def __init__(self, pseudonymizer: Pseudonymizer) -> None:
        self._pseudonymizer = pseudonymizer
        self._held = ""

    def feed(self, piece: str) -> str:
        """The restored text that can be released now."""
        text = self._held + piece
        cut = text.rfind("<")
        if cut != -1 and ">" not in text[cut:] and len(text) - cut < _LONGEST_PLACEHOLDER:
            self._held = text[cut:]
            text = text[:cut]
        else:
            self._held = ""
        return self._pseudonymizer.restore(text)

    def flush(self) -> str:
        """Whatever is still held, at the end of the text."""
        text, self._held = self._held, ""
        return self._pseudonymizer.restore(text)
