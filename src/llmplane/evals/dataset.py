"""Datasets: JSONL or CSV files of cases.

A JSONL line is an object: ``input`` (an object of the target's variables) or, without
``input``, every field but ``id``, ``expected`` and ``metadata`` is the input. A CSV row's
columns are the input, except ``id``, ``expected`` and columns named ``meta.*`` (metadata).
A case without ``id`` gets a stable one: a hash of its input, so runs of the same
dataset can be compared case by case.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import orjson

from llmplane.evals.scoring import Case
from llmplane.evals.suite import SuiteError

_RESERVED = ("id", "expected", "metadata")


def case_id_for(input_: dict[str, Any]) -> str:
    """A stable id from the input alone (12 hex digits of its canonical JSON's SHA-256)."""
    digest = hashlib.sha256(orjson.dumps(input_, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"c-{digest[:12]}"


def _case(record: dict[str, Any], where: str) -> Case:
    if "input" in record:
        input_ = record["input"]
        if not isinstance(input_, dict):
            raise SuiteError(f"{where}: 'input' must be an object")
        extra = set(record) - {"input", *_RESERVED}
        if extra:
            raise SuiteError(f"{where}: unknown field '{sorted(extra)[0]}' beside 'input'")
    else:
        input_ = {k: v for k, v in record.items() if k not in _RESERVED}
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise SuiteError(f"{where}: 'metadata' must be an object")
    raw_id = record.get("id")
    if raw_id is not None and not isinstance(raw_id, str | int):
        raise SuiteError(f"{where}: 'id' must be a string or a number")
    case_id = str(raw_id) if raw_id is not None else case_id_for(input_)
    return Case(case_id, input_, record.get("expected"), metadata)


def parse_dataset(data: bytes, path: Path) -> list[Case]:
    """The cases of a dataset's bytes (``path`` gives the format and names errors)."""
    cases: list[Case] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
        for line, row in enumerate(reader, start=2):
            record: dict[str, Any] = {}
            metadata: dict[str, Any] = {}
            for column, value in row.items():
                if column is None:
                    raise SuiteError(f"{path}:{line}: more values than columns")
                if column.startswith("meta."):
                    metadata[column[5:]] = value
                elif column == "id":
                    record["id"] = value or None
                else:
                    record[column] = value
            record["metadata"] = metadata
            cases.append(_case(record, f"{path}:{line}"))
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for line, text in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise SuiteError(f"{path}:{line}: not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise SuiteError(f"{path}:{line}: each line must be a JSON object")
            cases.append(_case(record, f"{path}:{line}"))
    else:
        raise SuiteError(f"{path}: a dataset is a .jsonl or .csv file")
    if not cases:
        raise SuiteError(f"{path}: the dataset has no cases")
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise SuiteError(f"{path}: case id '{case.id}' appears twice")
        seen.add(case.id)
    return cases


def load_dataset(path: Path) -> tuple[list[Case], bytes]:
    """The cases of a dataset file and its bytes (for the suite's fingerprint)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read the dataset: {exc.strerror}") from None
    return parse_dataset(data, path), data
