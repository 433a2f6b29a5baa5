"""Registered datasets: a team's named test sets with immutable, numbered versions.

A version is stored in a normal form: the parsed cases as JSONL, one
``{"expected", "id", "input", "metadata"}`` object per line with sorted keys (a CSV's or a
JSONL's cases alike, a case without an id given the same stable id a file run gives it).
Versions are content-addressed: pushing cases equal to an existing version of the name
returns that version instead of a new one. A dataset belongs to the team of the key that
pushed it (the admin key's: to no team, or to the team it names); like eval runs, a
team's keys read and push its datasets and the admin key every team's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from llmplane.evals.dataset import parse_dataset
from llmplane.evals.suite import SuiteError
from llmplane.ids import new_id
from llmplane.store.tables import eval_datasets

FORMATS = ("jsonl", "csv")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True, slots=True)
class NormalDataset:
    """A dataset's cases in the stored normal form, with its fingerprint."""

    content: str
    cases: int
    fingerprint: str


def check_name(name: Any) -> str:
    """A dataset name: lower-case letters, digits, ``-``, ``_``, ``.``; at most 200."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 200
        or not set(name) <= _NAME_CHARS
        or not name[0].isalnum()
    ):
        raise InvalidRequestError(
            "'name' must be lower-case letters, digits, '-', '_' or '.', starting with a "
            "letter or digit (at most 200).",
            param="name",
            code="invalid_dataset",
        )
    return name


def normalize(content: str, fmt: str, name: str = "dataset") -> NormalDataset:
    """Parse a JSONL or CSV text (its errors name the line) into the normal form."""
    if fmt not in FORMATS:
        raise InvalidRequestError(
            "'format' must be jsonl or csv.", param="format", code="invalid_dataset"
        )
    try:
        cases = parse_dataset(content.encode("utf-8"), Path(f"{name}.{fmt}"))
    except SuiteError as exc:
        raise InvalidRequestError(str(exc), param="content", code="invalid_dataset") from None
    lines = [
        orjson.dumps(
            {"id": c.id, "input": c.input, "expected": c.expected, "metadata": c.metadata},
            option=orjson.OPT_SORT_KEYS,
        ).decode()
        + "\n"
        for c in cases
    ]
    text = "".join(lines)
    return NormalDataset(text, len(cases), hashlib.sha256(text.encode()).hexdigest())


def _owner(team_id: str | None) -> str:
    return team_id or ""


def _version_json(row: RowMapping, *, content: bool) -> dict[str, Any]:
    created = row["created_at"]
    found = {
        "object": "eval.dataset.version",
        "name": row["name"],
        "team_id": row["owner"] or None,
        "version": row["version"],
        "fingerprint": row["fingerprint"],
        "cases": row["cases"],
        "created_at": (
            created.replace(tzinfo=UTC) if created.tzinfo is None else created
        ).isoformat(),
        "created_by": row["created_by"],
    }
    if content:
        found["content"] = row["content"]
    return found


def owner_for(principal: Principal, team_id: str | None) -> str:
    """Whose datasets a call reaches: a key's own team's; the admin key's own (no team)
    or the team it names. A key naming another team is refused."""
    if principal.is_admin:
        return _owner(team_id)
    if team_id is not None and team_id != principal.team_id:
        raise PermissionDeniedError(
            "A key reaches only its own team's datasets.", code="dataset_of_other_team"
        )
    return _owner(principal.team_id)


def push(
    engine: Engine, principal: Principal, name: str, data: NormalDataset, owner: str
) -> tuple[dict[str, Any], bool]:
    """Add a version (or find the version with the same cases): the version and whether
    it is new."""
    mine = and_(eval_datasets.c.owner == owner, eval_datasets.c.name == name)
    for _attempt in range(3):
        with engine.begin() as connection:
            same = (
                connection.execute(
                    select(eval_datasets).where(
                        mine, eval_datasets.c.fingerprint == data.fingerprint
                    )
                )
                .mappings()
                .first()
            )
            if same is not None:
                return _version_json(same, content=False), False
            newest = connection.execute(
                select(func.max(eval_datasets.c.version)).where(mine)
            ).scalar()
            values = {
                "id": new_id("evd"),
                "owner": owner,
                "name": name,
                "version": (newest or 0) + 1,
                "fingerprint": data.fingerprint,
                "cases": data.cases,
                "content": data.content,
                "created_at": datetime.now(UTC),
                "created_by": principal.key_id,
            }
            try:
                connection.execute(insert(eval_datasets).values(values))
            except IntegrityError:  # a concurrent push took the number: look again
                continue
            row = connection.execute(
                select(eval_datasets).where(eval_datasets.c.id == values["id"])
            )
            return _version_json(row.mappings().one(), content=False), True
    raise InvalidRequestError("Concurrent pushes of this dataset; try again.", param="name")


def list_datasets(engine: Engine, principal: Principal, owner: str | None) -> list[dict[str, Any]]:
    """The datasets the caller reaches (``owner`` None: the admin key's view of every
    team's), each with its newest version."""
    query = select(eval_datasets).order_by(
        eval_datasets.c.owner, eval_datasets.c.name, eval_datasets.c.version
    )
    if owner is not None:
        query = query.where(eval_datasets.c.owner == owner)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    with engine.connect() as connection:
        for row in connection.execute(query).mappings():
            version = _version_json(row, content=False)
            found[(row["owner"], row["name"])] = {
                "object": "eval.dataset",
                "name": row["name"],
                "team_id": version["team_id"],
                "latest_version": row["version"],
                "cases": row["cases"],
                "updated_at": version["created_at"],
            }
    return list(found.values())


def get_version(engine: Engine, owner: str, name: str, version: int | None) -> dict[str, Any]:
    """One version with its content (``None``: the newest) and the list of versions."""
    mine = and_(eval_datasets.c.owner == owner, eval_datasets.c.name == name)
    with engine.connect() as connection:
        rows = list(
            connection.execute(
                select(eval_datasets).where(mine).order_by(eval_datasets.c.version)
            ).mappings()
        )
    if not rows:
        raise NotFoundError(f"No dataset '{name}'.", param="name", code="dataset_not_found")
    chosen = (
        rows[-1] if version is None else next((r for r in rows if r["version"] == version), None)
    )
    if chosen is None:
        raise NotFoundError(
            f"Dataset '{name}' has no version {version}.", param="version", code="dataset_not_found"
        )
    return {
        **_version_json(chosen, content=True),
        "versions": [_version_json(r, content=False) for r in rows],
    }
