"""How well a detector works on labelled examples: precision, recall, false positives and
the time one check takes. ``llmplane guardrails eval`` prints it; the library call is::

    examples = load_examples(Path("my-set.jsonl"))
    result = evaluate(build_detector("blocklist", {"terms": ["falcon"]}), examples)
    result.binary.recall, result.latency_us(99)

A labelled set is JSON Lines, one example per line::

    {"id": "pii-0001", "text": "mail jane@example.com", "source": "user", "label": true,
     "spans": [{"type": "EMAIL_ADDRESS", "start": 5, "end": 21}], "tags": ["plain"]}

``label`` says whether the detector should flag the text; ``spans`` (optional) are the
gold spans of span-level sets (``label`` must then equal ``bool(spans)``); ``source``
(default ``user``) and, for output checks, ``system_prompt`` and ``json_schema`` go into
the check's :class:`~llmplane.guardrails.base.CheckContext`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from llmplane.guardrails.base import SOURCES, CheckContext, Detector, Source

# The secret types of the pii set: the ``secrets`` detector is scored on these alone.
SECRET_TYPES = frozenset(
    {"API_KEY", "AWS_ACCESS_KEY", "PRIVATE_KEY", "JWT", "PASSWORD", "CONNECTION_STRING"}
)


@dataclass(frozen=True, slots=True)
class DefaultPairing:
    """A packaged set and a detector scored on it (on ``types`` alone when given)."""

    set_name: str
    detector: str
    types: frozenset[str] | None = None


# The packaged sets (src/llmplane/guardrails/datasets/) and what each one measures.
DEFAULT_PAIRINGS: tuple[DefaultPairing, ...] = (
    DefaultPairing("pii.jsonl", "pii"),
    DefaultPairing("pii.jsonl", "secrets", SECRET_TYPES),
    DefaultPairing("injection.jsonl", "injection"),
    DefaultPairing("system_prompt_leak.jsonl", "system_prompt_leak"),
    DefaultPairing("json_schema.jsonl", "json_schema"),
)


def packaged_sets() -> Path:
    """The folder of the packaged sets."""
    return Path(str(resources.files("llmplane.guardrails") / "datasets"))


class DatasetError(ValueError):
    """A labelled set that cannot be read, or sets and detectors that do not pair; the
    message says what to fix (file:line and field for a bad example)."""


@dataclass(frozen=True, slots=True)
class Pairing:
    """One detector to evaluate on one set (on ``types`` alone when given)."""

    detector: str
    path: Path
    types: frozenset[str] | None = None


def pairings(
    detectors: Sequence[str], sets: Sequence[Path], packaged: Path | None = None
) -> tuple[list[Pairing], list[str]]:
    """What to evaluate, and a note for each packaged set that is missing.

    Given sets are paired with every given detector; without detectors, a set named as a
    packaged one (``pii.jsonl``) gets that one's detectors, any other is an error. Without
    sets, each detector (all, without detectors) gets its packaged sets, from
    ``packaged`` (default :func:`packaged_sets`)."""
    if sets:
        if detectors:
            return [Pairing(detector, path) for path in sets for detector in detectors], []
        found = []
        for path in sets:
            matched = [p for p in DEFAULT_PAIRINGS if p.set_name == path.name]
            if not matched:
                raise DatasetError(
                    f"{path}: not a packaged set's name; say which detector it is for "
                    "(--detector NAME)"
                )
            found += [Pairing(p.detector, path, p.types) for p in matched]
        return found, []
    for detector in detectors:
        if not any(p.detector == detector for p in DEFAULT_PAIRINGS):
            raise DatasetError(
                f"detector {detector!r} has no packaged set: give one with --set FILE.jsonl"
            )
    folder = packaged or packaged_sets()
    found, missing = [], []
    for pairing in DEFAULT_PAIRINGS:
        if detectors and pairing.detector not in detectors:
            continue
        path = folder / pairing.set_name
        if path.is_file():
            found.append(Pairing(pairing.detector, path, pairing.types))
        else:
            missing.append(
                f"packaged set {pairing.set_name} is missing ({path}): "
                f"{pairing.detector} is not evaluated on it"
            )
    if not found:
        raise DatasetError(
            "nothing to evaluate: " + "; ".join(missing) + "; give a set with --set FILE.jsonl"
        )
    return found, missing


@dataclass(frozen=True, slots=True)
class GoldSpan:
    type: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text."""

    id: str
    text: str
    label: bool
    source: Source = "user"
    spans: tuple[GoldSpan, ...] | None = None
    tags: tuple[str, ...] = ()
    system_prompt: str | None = None
    json_schema: Mapping[str, Any] | None = None

    def context(self) -> CheckContext:
        return CheckContext(
            source=self.source, system_prompt=self.system_prompt, json_schema=self.json_schema
        )


def _example(line: str, where: str) -> Example:
    def fail(name: str, why: str) -> DatasetError:
        return DatasetError(f"{where}: field {name!r}: {why}")

    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not a JSON object ({exc.msg})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: not a JSON object")
    for name, kind in (("id", str), ("text", str), ("label", bool)):
        if name not in data:
            raise fail(name, "missing")
        if not isinstance(data[name], kind):
            raise fail(name, f"must be a {'boolean' if kind is bool else 'string'}")
    if not data["id"]:
        raise fail("id", "is empty")
    text: str = data["text"]
    source = data.get("source", "user")
    if source not in SOURCES:
        raise fail("source", f"must be one of {', '.join(SOURCES)}")
    spans: tuple[GoldSpan, ...] | None = None
    if data.get("spans") is not None:
        raw = data["spans"]
        if not isinstance(raw, list):
            raise fail("spans", "must be a list")
        found = []
        for number, span in enumerate(raw):
            name = f"spans[{number}]"
            if not isinstance(span, dict) or not isinstance(span.get("type"), str):
                raise fail(name, "must be an object with a string 'type'")
            start, end = span.get("start"), span.get("end")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                raise fail(name, "'start' and 'end' must be integers")
            assert isinstance(start, int) and isinstance(end, int)
            if not 0 <= start < end <= len(text):
                raise fail(name, f"needs 0 <= start < end <= {len(text)} (the text's length)")
            found.append(GoldSpan(span["type"], start, end))
        spans = tuple(found)
        if data["label"] != bool(spans):
            raise fail("label", "must be true when there are spans and false when there are none")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise fail("tags", "must be a list of strings")
    system_prompt = data.get("system_prompt")
    if system_prompt is not None and not isinstance(system_prompt, str):
        raise fail("system_prompt", "must be a string")
    json_schema = data.get("json_schema")
    if json_schema is not None and not isinstance(json_schema, dict):
        raise fail("json_schema", "must be an object")
    return Example(
        data["id"], text, data["label"], source, spans, tuple(tags), system_prompt, json_schema
    )


def load_examples(path: Path) -> list[Example]:
    """The examples of a JSONL set (blank lines skipped); :class:`DatasetError` names the
    file, line and field of the first bad one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        example = _example(line, where)
        if example.id in seen:
            raise DatasetError(
                f"{where}: field 'id': {example.id!r} is also on line {seen[example.id]}"
            )
        seen[example.id] = number
        examples.append(example)
    if not examples:
        raise DatasetError(f"{path}: holds no examples")
    return examples


@dataclass(slots=True)
class Counts:
    """Binary outcomes: flagged or not, against the label."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, label: bool, flagged: bool) -> None:
        if label:
            if flagged:
                self.tp += 1
            else:
                self.fn += 1
        elif flagged:
            self.fp += 1
        else:
            self.tn += 1

    @property
    def examples(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        precision, recall = self.precision, self.recall
        if precision is None or recall is None or precision + recall == 0:
            return None
        return 2 * precision * recall / (precision + recall)

    @property
    def false_positive_rate(self) -> float | None:
        return _ratio(self.fp, self.fp + self.tn)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": _rounded(self.precision),
            "recall": _rounded(self.recall),
            "f1": _rounded(self.f1),
            "false_positive_rate": _rounded(self.false_positive_rate),
        }


@dataclass(slots=True)
class SpanCounts:
    """Span outcomes of one type: gold spans found or missed, predicted spans with no
    gold span of their type overlapping them."""

    found: int = 0
    missed: int = 0
    false_positives: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.found, self.found + self.false_positives)

    @property
    def recall(self) -> float | None:
        return _ratio(self.found, self.found + self.missed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gold": self.found + self.missed,
            "found": self.found,
            "false_positives": self.false_positives,
            "precision": _rounded(self.precision),
            "recall": _rounded(self.recall),
        }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(slots=True)
class Result:
    """One detector on one set."""

    detector: str
    set: str
    binary: Counts = field(default_factory=Counts)
    types: dict[str, SpanCounts] = field(default_factory=dict)
    tags: dict[str, Counts] = field(default_factory=dict)
    latencies_ns: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # example ids whose check raised

    def latency_us(self, percentile: float) -> float | None:
        """The nearest-rank percentile of one check's time, in microseconds."""
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        rank = max(1, math.ceil(percentile / 100 * len(ordered)))
        return round(ordered[rank - 1] / 1000, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "set": self.set,
            **self.binary.as_dict(),
            "errors": len(self.errors),
            "error_ids": self.errors[:10],
            "types": {name: counts.as_dict() for name, counts in sorted(self.types.items())},
            "tags": {name: counts.as_dict() for name, counts in sorted(self.tags.items())},
            "latency_us": {
                "p50": self.latency_us(50),
                "p99": self.latency_us(99),
                "checks": len(self.latencies_ns),
            },
        }


def _overlaps(start: int, end: int, other_start: int, other_end: int) -> bool:
    return start < other_end and other_start < end


def scored_types(detector: Detector, pairing_types: frozenset[str] | None) -> frozenset[str] | None:
    """The span types a detector is scored on: those it declares (an ``entities``
    attribute, as a configured PII detector has), else those of its pairing, else all."""
    declared = getattr(detector, "entities", None)
    if (
        isinstance(declared, Collection)
        and not isinstance(declared, str)
        and declared
        and all(isinstance(name, str) for name in declared)
    ):
        return frozenset(declared)
    return pairing_types


def evaluate(
    detector: Detector,
    examples: Sequence[Example],
    *,
    set_name: str = "",
    types: frozenset[str] | None = None,
    repeat: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Run ``detector`` over ``examples`` (``repeat`` times each, for steadier latency;
    the outcome is the first run's) and count what it got right.

    With ``types``, the detector is scored on spans of those types alone, and an example
    with gold spans is positive when one of them is of those types. ``progress`` is
    called with (done, total) after each example."""
    result = Result(detector.name, set_name)
    clock = time.perf_counter_ns
    for done, example in enumerate(examples, start=1):
        context = example.context()
        verdict = None
        for _ in range(repeat):
            began = clock()
            try:
                checked = detector.check(example.text, context)
            except Exception:  # noqa: BLE001 - a detector's bug is a finding, not a stop
                result.latencies_ns.append(clock() - began)
                result.errors.append(example.id)
                break
            result.latencies_ns.append(clock() - began)
            if verdict is None:
                verdict = checked
        flagged = verdict is not None and verdict.flagged
        label = example.label
        gold = example.spans
        if gold is not None and types is not None:
            gold = tuple(span for span in gold if span.type in types)
            label = bool(gold)
        result.binary.add(label, flagged)
        for tag in example.tags:
            result.tags.setdefault(tag, Counts()).add(label, flagged)
        if gold is not None:
            predicted = [
                finding
                for finding in (verdict.findings if verdict is not None else ())
                if finding.end > finding.start and (types is None or finding.type in types)
            ]
            for span in gold:
                counts = result.types.setdefault(span.type, SpanCounts())
                if any(
                    p.type == span.type and _overlaps(p.start, p.end, span.start, span.end)
                    for p in predicted
                ):
                    counts.found += 1
                else:
                    counts.missed += 1
            for p in predicted:
                if not any(
                    g.type == p.type and _overlaps(p.start, p.end, g.start, g.end) for g in gold
                ):
                    result.types.setdefault(p.type, SpanCounts()).false_positives += 1
        if progress is not None:
            progress(done, len(examples))
    return result
