"""Writes ``injection.jsonl``, the project's labelled prompt-injection set (deterministic).

Run ``python -m llmplane.guardrails.datasets._make_injection`` after editing. The set holds
attacks (label ``true``) and benign texts (label ``false``), each tagged by kind:
``direct``, ``indirect`` (inside a tool output or a retrieved document, with source
``tool`` or ``document``), ``encoded`` (base64, hex, URL), ``obfuscated`` (zero-width,
fullwidth, look-alike letters, spaced letters, leetspeak), ``roleplay``, ``exfiltration``,
``multilingual``; benign ones ``hard-benign`` where they share words with attacks.

About a third of the examples carry the tag ``holdout``, chosen by a hash of their text,
not by hand: the detector's rules were tuned looking at the other part only, and
evaluations report the held-out part on its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

from llmplane.guardrails.datasets import _injection_texts as texts

OUT = Path(__file__).with_name("injection.jsonl")
HOLDOUT_SHARE = 0.33
_SEED = 20261129


def _holdout(text: str) -> bool:
    digest = hashlib.sha256(text.encode()).digest()
    return digest[0] < int(256 * HOLDOUT_SHARE)


def _zero_width(text: str, rng: random.Random) -> str:
    marks = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
    return "".join(
        char + (rng.choice(marks) if char.isalpha() and rng.random() < 0.5 else "") for char in text
    )


def _fullwidth(text: str) -> str:
    return "".join(
        chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else ("\u3000" if char == " " else char)
        for char in text
    )


_LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "i": "і", "x": "х", "y": "у"}


def _confusable(text: str, rng: random.Random) -> str:
    return "".join(
        _LOOKALIKE[char] if char in _LOOKALIKE and rng.random() < 0.6 else char for char in text
    )


def _spaced(text: str) -> str:
    return "  ".join(" ".join(word) for word in text.split())


def _math_bold(text: str) -> str:
    out = []
    for char in text:
        if "a" <= char <= "z":
            out.append(chr(0x1D41A + ord(char) - ord("a")))
        elif "A" <= char <= "Z":
            out.append(chr(0x1D400 + ord(char) - ord("A")))
        else:
            out.append(char)
    return "".join(out)


def _leet(text: str) -> str:
    return text.translate(str.maketrans("aeiost", "4310$7"))


def _records() -> list[dict[str, Any]]:
    rng = random.Random(_SEED)  # noqa: S311 (a reproducible set, not a secret)
    records: list[dict[str, Any]] = []

    def add(text: str, label: bool, source: str, *tags: str) -> None:
        records.append({"text": text, "source": source, "label": label, "tags": list(tags)})

    for text in texts.DIRECT_ATTACKS:
        add(text, True, "user", "direct")
    for text in texts.ROLEPLAY_ATTACKS:
        add(text, True, "user", "roleplay")
    for text in texts.EXFILTRATION_ATTACKS:
        add(text, True, "user", "exfiltration")
    for text in texts.DELIMITER_ATTACKS:
        add(text, True, "user", "delimiter")
    for text in texts.MULTILINGUAL_ATTACKS:
        add(text, True, "user", "multilingual")

    # Indirect: payloads planted in data the assistant reads.
    for index, payload in enumerate(texts.INDIRECT_PAYLOADS):
        carrier, source = texts.CARRIERS[index % len(texts.CARRIERS)]
        add(carrier.format(payload=payload), True, source, "indirect")

    # The same attacks hidden by encodings and look-alike characters.
    hidden = texts.OBFUSCATION_BASES
    for index, base in enumerate(hidden):
        variant = index % 8
        if variant == 0:
            encoded = base64.b64encode(base.encode()).decode()
            add(rng.choice(texts.DECODE_WRAPPERS).format(blob=encoded), True, "user", "encoded")
        elif variant == 1:
            add(_zero_width(base, rng), True, "user", "obfuscated", "zero-width")
        elif variant == 2:
            add(_fullwidth(base), True, "user", "obfuscated", "fullwidth")
        elif variant == 3:
            add(_confusable(base, rng), True, "user", "obfuscated", "confusables")
        elif variant == 4:
            add(_spaced(base), True, "user", "obfuscated", "spaced")
        elif variant == 5:
            add(_leet(base), True, "user", "obfuscated", "leetspeak")
        elif variant == 6:
            blob = base.encode().hex()
            add(rng.choice(texts.DECODE_WRAPPERS).format(blob=blob), True, "user", "encoded")
        else:
            add(_math_bold(base), True, "user", "obfuscated", "math-letters")
    for index, base in enumerate(texts.OBFUSCATION_BASES[:12]):
        carrier, source = texts.CARRIERS[(index * 3 + 1) % len(texts.CARRIERS)]
        encoded = base64.b64encode(base.encode()).decode()
        add(carrier.format(payload=encoded), True, source, "indirect", "encoded")

    # Benign.
    for text in texts.BENIGN_EVERYDAY:
        add(text, False, "user")
    for text in texts.BENIGN_HARD:
        add(text, False, "user", "hard-benign")
    for text in texts.BENIGN_SECURITY:
        add(text, False, "user", "hard-benign", "security-discussion")
    for text in texts.BENIGN_CODE:
        add(text, False, "user", "hard-benign", "code")
    for text in texts.BENIGN_MULTILINGUAL:
        add(text, False, "user", "multilingual")
    for index, body in enumerate(texts.BENIGN_DOCUMENTS):
        carrier, source = texts.CARRIERS[index % len(texts.CARRIERS)]
        add(carrier.format(payload=body), False, source, "hard-benign", "data")
    for data in texts.BENIGN_ENCODED_DATA:
        blob = base64.b64encode(data.encode()).decode()
        wrapper = texts.BENIGN_DECODE_WRAPPERS[len(records) % len(texts.BENIGN_DECODE_WRAPPERS)]
        add(wrapper.format(blob=blob), False, "user", "hard-benign", "encoded")
    for text in texts.BENIGN_UNICODE:
        add(text, False, "user", "hard-benign", "unicode")

    for index, record in enumerate(records, 1):
        record["id"] = f"inj-{index:04d}"
        if _holdout(record["text"]):
            record["tags"].append("holdout")
    keys = ("id", "text", "source", "label", "tags")
    return [{key: record[key] for key in keys} for record in records]


def main() -> None:
    records = _records()
    with OUT.open("w", encoding="utf-8") as file:
        for record in records:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
    attacks = sum(record["label"] for record in records)
    benign = len(records) - attacks
    print(f"wrote {len(records)} records ({attacks} attacks, {benign} benign) to {OUT}")


if __name__ == "__main__":
    main()
