"""Text normalisation shared by detectors: what an attacker hides, made plain again.

``normalize("ign\\u200bore")`` gives ``Normalized(text="ignore", ...)``: zero-width and
other invisible format characters and bidi controls are dropped, NFKC folds fullwidth
letters, ligatures and mathematical alphanumerics (``𝐢𝐠𝐧𝐨𝐫𝐞``, ``ｉｇｎｏｒｅ``), and a
small table maps the Cyrillic, Greek and Armenian letters that look like Latin ones
(``іgnоrе`` with Cyrillic ``і`` and ``о``) to ASCII in words that pose as Latin ones
(real Russian or Greek words are kept). Case is kept, and so is leetspeak
(``1gn0re``): that is a heuristic's business, not a normaliser's. ``fold_accents=True``
also drops combining accents (``ïgnörë`` → ``ignore``).

A detector scans the normalised text and maps what it found back to the original with
:meth:`Normalized.span`, so actions (redact, mask) rewrite the text the client sent.

:func:`decoded_segments` finds runs of base64, hex and URL percent-encoding that decode
to readable text, so a detector can scan what they say and point at the encoded run.

Pure ASCII text (the common case) is returned as is, without a per-character pass.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote_to_bytes

__all__ = ["Normalized", "Segment", "decoded_segments", "normalize"]

# Letters of other scripts drawn like ASCII ones, as homoglyph attacks use them. NFKC does
# not touch these (they are distinct letters), so they need a table. Unicode's
# confusables.txt has thousands of entries; these are the ones that pass for Latin text in
# ordinary fonts, which keeps the table reviewable and the lookup a dict hit.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "һ": "h", "ӏ": "l", "ү": "y",
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O",
    "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ї": "I", "Ј": "J",
    "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W", "Ү": "Y", "Һ": "H", "Ӏ": "I",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "υ": "u", "τ": "t",
    "ε": "e", "χ": "x", "γ": "y", "ω": "w", "η": "n",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian
    "օ": "o", "ս": "u", "ց": "g", "հ": "h", "ո": "n", "զ": "q",
    # Latin letters outside ASCII that read as ASCII ones
    "ı": "i", "ɑ": "a", "ɩ": "i", "ʏ": "y", "ℓ": "l", "ɪ": "i", "ᴀ": "a", "ʙ": "b",
    "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ᴊ": "j", "ᴋ": "k", "ʟ": "l",
    "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
    "ᴠ": "v", "ᴡ": "w", "ᴢ": "z",
}  # fmt: skip

# Invisible characters that NFKC keeps: bidi controls, zero-width joiners, the BOM, tag
# characters (U+E0000 block) are all category Cf; variation selectors (Mn) go too.
NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
# Category Cf (Unicode 14), written out so that import does not scan the code space.
_FORMAT = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f\ufe00-\ufe0f\U000e0100-\U000e01ef]"
)
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
_CONFUSABLE_CHAR = re.compile(f"[{''.join(_CONFUSABLES)}]")
# A word of ASCII letters and look-alikes only, with at least one look-alike.
_POSING_WORD = re.compile(
    rf"(?<![^\W\d_])[A-Za-z{''.join(_CONFUSABLES)}]*[{''.join(_CONFUSABLES)}]"
    rf"[A-Za-z{''.join(_CONFUSABLES)}]*(?![^\W\d_])"
)
_NOT_LETTERS = " \t\r\n.,;:!?'\"()[]-_0123456789"
_MAX_WORD = 40  # longer "words" (unspaced scripts, identifiers) are never Latin look-alikes


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised text and, for each of its characters, where it came from.

    ``origin[i]`` is the index in ``original`` of the character that became ``text[i]``;
    ``origin[len(text)]`` is ``len(original)``."""

    text: str
    origin: Sequence[int]
    original: str

    @property
    def changed(self) -> bool:
        """Whether normalisation changed anything."""
        return self.text is not self.original and self.text != self.original

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``original`` that ``text[start:end]`` came from (dropped invisible
        characters inside it included, those around it not)."""
        if not 0 <= start <= end <= len(self.text):
            raise IndexError(f"span {start}:{end} outside 0:{len(self.text)}")
        begin = self.origin[start]
        if end == start:
            return begin, begin
        stop = self.origin[end]
        floor = self.origin[end - 1] + 1
        while stop > floor and _dropped(self.original[stop - 1]):
            stop -= 1
        return begin, stop


def _dropped(char: str) -> bool:
    return _FORMAT.match(char) is not None


@lru_cache(maxsize=8192)
def _fold_cluster(cluster: str) -> str:
    """One base character with its combining marks, made plain."""
    kept = "".join(char for char in cluster if not _dropped(char))
    return unicodedata.normalize("NFKC", kept) if kept else ""


def _accent_table() -> dict[int, str]:
    """Accented Latin, Greek and Cyrillic letters to their base letter, one for one."""
    table: dict[int, str] = {}
    for code in (*range(0xC0, 0x250), *range(0x370, 0x500), *range(0x1E00, 0x1F00)):
        decomposed = unicodedata.normalize("NFD", chr(code))
        if len(decomposed) > 1 and all(unicodedata.combining(mark) for mark in decomposed[1:]):
            table[code] = decomposed[0]
    return table


_ACCENTS = _accent_table()


def _latin_neighbour(text: str, start: int, end: int) -> bool:
    """Whether the nearest letter before or after ``text[start:end]`` is ASCII."""
    before = text[max(0, start - _MAX_WORD) : start].rstrip(_NOT_LETTERS)
    after = text[end : end + _MAX_WORD].lstrip(_NOT_LETTERS)
    return (before[-1:].isascii() and before[-1:].isalpha()) or (
        after[:1].isascii() and after[:1].isalpha()
    )


def _unconfuse(text: str) -> str:
    """``text`` with look-alike letters in ASCII where their word poses as a Latin word: it
    mixes them with ASCII letters (``іgnоrе``), or is made of look-alikes only and stands
    next to a Latin word (``the ѕуѕ``). Real Cyrillic or Greek words (``игнорируй``,
    ``λόγος``) have letters without a look-alike, and short ones among them (``все``) have
    no Latin neighbour, so they stay. One letter for one, so origins stay valid."""
    if _CONFUSABLE_CHAR.search(text) is None:
        return text
    pieces: list[str] = []
    position = 0
    for match in _POSING_WORD.finditer(text):
        start, end = match.span()
        word = match.group()
        if any(char.isascii() for char in word) or _latin_neighbour(text, start, end):
            pieces += (text[position:start], word.translate(_CONFUSABLE_TABLE))
            position = end
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def normalize(text: str, *, fold_accents: bool = False) -> Normalized:
    """``text`` without invisible characters, NFKC-folded, with look-alike letters of other
    scripts mapped to ASCII; see the module's docstring."""
    if text.isascii():
        return Normalized(text, range(len(text) + 1), text)
    plain = text
    origin: Sequence[int] = range(len(text) + 1)
    if not unicodedata.is_normalized("NFKC", text) or _FORMAT.search(text) is not None:
        plain, origin = _fold(text)
    # Look-alikes and accents are mapped after NFKC, one letter for one: origins stay valid.
    plain = _unconfuse(plain)
    if fold_accents:
        plain = plain.translate(_ACCENTS)
    return Normalized(plain, origin, text)


def _fold(text: str) -> tuple[str, list[int]]:
    """``text`` without invisible characters, NFKC-folded, and where each character came
    from. Runs of ASCII, and non-ASCII runs that are already plain, are copied whole."""
    out: list[str] = []
    origin: list[int] = []
    position = 0
    for match in NON_ASCII_RUN.finditer(text):
        start, end = match.span()
        # A combining mark right after an ASCII letter belongs to that letter's cluster.
        if start > position and unicodedata.combining(text[start]):
            start -= 1
        run = text[start:end]
        if unicodedata.is_normalized("NFKC", run) and _FORMAT.search(run) is None:
            continue  # copied with the ASCII around it
        if start > position:
            out.append(text[position:start])
            origin.extend(range(position, start))
        index = start
        while index < end:
            cluster_end = index + 1
            while cluster_end < end and (
                unicodedata.combining(text[cluster_end]) or text[cluster_end] in "\u200d\ufe0f"
            ):
                cluster_end += 1
            folded = _fold_cluster(text[index:cluster_end])
            out.append(folded)
            origin.extend([index] * len(folded))
            index = cluster_end
        position = end
    out.append(text[position:])
    origin.extend(range(position, len(text) + 1))
    return "".join(out), origin


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of ``text[start:end]`` in some encoding and the readable text it decodes to."""

    start: int
    end: int
    decoded: str
    encoding: str  # "base64", "hex" or "url"


# One scan finds candidate runs (long enough to hide an instruction); each is then decoded
# as URL percent-encoding, ``\\x`` hex escapes, plain hex or base64, whichever it looks like.
_CANDIDATE = re.compile(r"[A-Za-z0-9+/_=\\%-]{16,}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2}){4,}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2}){8,}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")


def _readable(raw: bytes) -> str | None:
    """``raw`` as text when it reads as text: valid UTF-8, printable, mostly words."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded) < 4 or not all(char.isprintable() or char in "\n\r\t" for char in decoded):
        return None
    wordy = sum(char.isalnum() or char.isspace() for char in decoded)
    return decoded if wordy >= 0.6 * len(decoded) else None


def _decode_run(run: str) -> tuple[int, int, str, str] | None:
    """The readable text that one candidate run (or the encoded part of it) stands for."""
    if "%" in run:
        if len(_PERCENT.findall(run)) < 3:
            return None
        decoded = _readable(unquote_to_bytes(run))
        return None if decoded is None else (0, len(run), decoded, "url")
    if "\\" in run:
        match = _HEX_ESCAPES.search(run)
        if match is None:
            return None
        decoded = _readable(bytes.fromhex(match.group().replace("\\x", "")))
        return None if decoded is None else (match.start(), match.end(), decoded, "hex")
    if _HEX.fullmatch(run):
        decoded = _readable(bytes.fromhex(run))
        return None if decoded is None else (0, len(run), decoded, "hex")
    # Base64 of text mixes cases; a long lowercase word or an upper-case name does not.
    if run.islower() or run.isupper():
        return None
    match = _BASE64.match(run)
    if match is None or match.end() != len(run):
        return None
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(
            body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        return None
    decoded = _readable(raw)
    return None if decoded is None else (0, len(run), decoded, "base64")


def decoded_segments(text: str) -> list[Segment]:
    """The runs of ``text`` in base64 (standard or URL-safe), hex (``6869…`` or
    ``\\x68\\x69…``) or URL percent-encoding that decode to readable text, by position.
    Runs that decode to bytes (hashes, keys, compressed data) are left out, and so are runs
    shorter than 16 characters (too short to carry an instruction)."""
    segments: list[Segment] = []
    for match in _CANDIDATE.finditer(text):
        found = _decode_run(match.group())
        if found is not None:
            start, end, decoded, encoding = found
            offset = match.start()
            segments.append(Segment(offset + start, offset + end, decoded, encoding))
    return segments
