"""The prompt registry's store: prompts, immutable versions, labels and their history.

Plain synchronous functions over an engine (the HTTP layer runs them in a worker
thread). Who may do what is decided here, from the caller's :class:`Principal`:

- a prompt of a team is read by the admin key and by any key of that team; written
  (new versions, label moves) by the admin key and that team's team admins;
- a platform prompt (no team) is read by every key and written by the admin key only;
- a caller that may not read a prompt gets the same 404 as for a prompt that does not
  exist, so names of other teams' prompts do not leak through reads.

Names are unique platform-wide (a ``prompt`` field in a request names one prompt, with
no team to qualify it); creating a name another team holds is refused as taken.

Labels and their history are in :mod:`llmplane.prompts.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from llmplane.accounting.audit import record_audit
from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from llmplane.ids import new_id
from llmplane.prompts.content import PromptContent, check_name
from llmplane.store.tables import prompt_labels, prompt_versions, prompts

DEFAULT_LABEL = "production"
LATEST = "latest"
"""A label no one sets: it always means the newest version."""
MAX_REASON = 500
_CREATE_TRIES = 3


def aware(value: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives them back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def may_read(principal: Principal, team_id: str | None) -> bool:
    """The admin key reads every prompt; a key reads its team's and the platform's."""
    return principal.is_admin or team_id is None or principal.team_id == team_id


def may_write(principal: Principal, team_id: str | None) -> bool:
    """The admin key writes every prompt; a team admin writes its own team's."""
    return principal.manages_team(team_id)


def prompt_not_found(name: str) -> NotFoundError:
    """The 404 for a prompt that does not exist or that the caller may not read."""
    return NotFoundError(f"No prompt named '{name}'.", param="prompt", code="prompt_not_found")


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable version of a prompt."""

    prompt_id: str
    name: str
    team_id: str | None
    version: int
    content: PromptContent
    fingerprint: str
    message: str | None
    created_at: datetime
    created_by: str

    @property
    def subject(self) -> str:
        """``name@version``: how ledger rows, spans and changes name it."""
        return f"{self.name}@{self.version}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: metadata and content."""
        return {
            "object": "prompt.version",
            "name": self.name,
            "team_id": self.team_id,
            "version": self.version,
            **self.content.to_json(),
            "fingerprint": self.fingerprint,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt with its labels and newest version number."""

    id: str
    name: str
    team_id: str | None
    description: str | None
    latest_version: int
    labels: dict[str, int]
    created_at: datetime
    created_by: str
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "object": "prompt",
            "id": self.id,
            "name": self.name,
            "team_id": self.team_id,
            "description": self.description,
            "latest_version": self.latest_version,
            "labels": self.labels,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
        }


def _version(row: RowMapping, prompt: RowMapping) -> PromptVersion:
    return PromptVersion(
        prompt_id=prompt["id"],
        name=prompt["name"],
        team_id=prompt["team_id"],
        version=row["version"],
        content=PromptContent.from_json(row["content"]),
        fingerprint=row["fingerprint"],
        message=row["message"],
        created_at=aware(row["created_at"]),
        created_by=row["created_by"],
    )


def _prompt_row(connection: Connection, name: str) -> RowMapping | None:
    return connection.execute(select(prompts).where(prompts.c.name == name)).mappings().first()


def readable_prompt(connection: Connection, principal: Principal, name: str) -> RowMapping:
    """The prompt's row, or the 404 of an unknown prompt when the caller may not read it."""
    row = _prompt_row(connection, name)
    if row is None or not may_read(principal, row["team_id"]):
        raise prompt_not_found(name)
    return row


def writable_prompt(connection: Connection, principal: Principal, name: str) -> RowMapping:
    """The prompt's row when the caller may change it (404 or 403 otherwise)."""
    row = readable_prompt(connection, principal, name)
    if not may_write(principal, row["team_id"]):
        raise _write_refused(row["team_id"])
    return row


def _write_refused(team_id: str | None) -> PermissionDeniedError:
    if team_id is None:
        return PermissionDeniedError(
            "Only the admin key changes platform prompts.", code="admin_only"
        )
    return PermissionDeniedError(
        "Only the admin key or a team admin of the prompt's team changes it.",
        code="not_team_admin",
    )


def create_version(
    engine: Engine,
    principal: Principal,
    name: str,
    content: PromptContent,
    *,
    team_id: str | None = None,
    team_given: bool = False,
    description: str | None = None,
    message: str | None = None,
) -> tuple[PromptVersion, bool]:
    """Add a version to ``name`` (creating the prompt, owned by ``team_id``, on its first
    version); return it and whether it is new. Content equal to an existing version's
    returns that version unchanged (``False``)."""
    check_name(name)
    if message is not None and len(message) > MAX_REASON:
        raise InvalidRequestError(
            f"'message' must be at most {MAX_REASON} characters.", param="message"
        )
    fingerprint = content.fingerprint()
    for attempt in range(_CREATE_TRIES):
        try:
            with engine.begin() as connection:
                return _create_version(
                    connection,
                    principal,
                    name,
                    content,
                    fingerprint,
                    team_id,
                    team_given,
                    description,
                    message,
                )
        except IntegrityError:  # a concurrent writer took the name or the version number
            if attempt == _CREATE_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _create_version(
    connection: Connection,
    principal: Principal,
    name: str,
    content: PromptContent,
    fingerprint: str,
    team_id: str | None,
    team_given: bool,
    description: str | None,
    message: str | None,
) -> tuple[PromptVersion, bool]:
    now = datetime.now(UTC)
    prompt = _prompt_row(connection, name)
    if prompt is None:
        if not team_given and not principal.is_admin:
            team_id = principal.team_id  # a team admin's prompts are its team's
        if not may_write(principal, team_id):
            raise _write_refused(team_id)
        prompt_id = new_id("prm")
        connection.execute(
            insert(prompts).values(
                id=prompt_id,
                name=name,
                team_id=team_id,
                description=description,
                created_at=now,
                created_by=principal.key_id,
                updated_at=now,
            )
        )
        prompt = _prompt_row(connection, name)
        assert prompt is not None
    else:
        if not may_read(principal, prompt["team_id"]):
            raise InvalidRequestError(
                f"The prompt name '{name}' is taken; choose another.",
                param="name",
                code="prompt_name_taken",
            )
        if not may_write(principal, prompt["team_id"]):
            raise _write_refused(prompt["team_id"])
        if team_given and team_id != prompt["team_id"]:
            raise InvalidRequestError(
                f"The prompt '{name}' belongs to "
                + (f"team {prompt['team_id']}" if prompt["team_id"] else "the platform")
                + "; a prompt's owner does not change.",
                param="team",
                code="prompt_team_mismatch",
            )
        same = (
            connection.execute(
                select(prompt_versions).where(
                    prompt_versions.c.prompt_id == prompt["id"],
                    prompt_versions.c.fingerprint == fingerprint,
                )
            )
            .mappings()
            .first()
        )
        if same is not None:
            return _version(same, prompt), False
        if description is not None:
            connection.execute(
                update(prompts)
                .where(prompts.c.id == prompt["id"])
                .values(description=description, updated_at=now)
            )
    latest = connection.execute(
        select(func.max(prompt_versions.c.version)).where(
            prompt_versions.c.prompt_id == prompt["id"]
        )
    ).scalar()
    number = (latest or 0) + 1
    values = {
        "prompt_id": prompt["id"],
        "version": number,
        "content": content.to_json(),
        "fingerprint": fingerprint,
        "message": message,
        "created_at": now,
        "created_by": principal.key_id,
    }
    connection.execute(insert(prompt_versions).values(**values))
    connection.execute(update(prompts).where(prompts.c.id == prompt["id"]).values(updated_at=now))
    record_audit(
        connection,
        actor=principal.key_id,
        action="prompt.version.create",
        object_type="prompt",
        object_id=prompt["id"],
        before=None,
        after={"name": name, "version": number, "fingerprint": fingerprint},
    )
    version = PromptVersion(
        prompt["id"], name, prompt["team_id"], number, content, fingerprint, message, now,
        principal.key_id,
    )  # fmt: skip
    return version, True


def load_version(
    connection: Connection, name: str, *, label: str | None = None, version: int | None = None
) -> PromptVersion:
    """A version by number, or the one a label points at (default ``production``;
    ``latest``: the newest), with no access check: the caller checks :func:`may_read`."""
    prompt = _prompt_row(connection, name)
    if prompt is None:
        raise prompt_not_found(name)
    return load_prompt_version(connection, prompt, label, version)


def load_prompt_version(
    connection: Connection, prompt: RowMapping, label: str | None, version: int | None
) -> PromptVersion:
    """The version of a prompt row by number or label (see :func:`load_version`)."""
    name = prompt["name"]
    if version is None:
        label = label or DEFAULT_LABEL
        if label == LATEST:
            version = connection.execute(
                select(func.max(prompt_versions.c.version)).where(
                    prompt_versions.c.prompt_id == prompt["id"]
                )
            ).scalar()
        else:
            version = connection.execute(
                select(prompt_labels.c.version).where(
                    prompt_labels.c.prompt_id == prompt["id"], prompt_labels.c.label == label
                )
            ).scalar()
        if version is None:
            raise NotFoundError(
                f"The prompt '{name}' has no label '{label}'.",
                param="label",
                code="prompt_label_not_found",
            )
    row = (
        connection.execute(
            select(prompt_versions).where(
                prompt_versions.c.prompt_id == prompt["id"], prompt_versions.c.version == version
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(
            f"The prompt '{name}' has no version {version}.",
            param="version",
            code="prompt_version_not_found",
        )
    return _version(row, prompt)


def get_version(
    engine: Engine,
    principal: Principal,
    name: str,
    *,
    label: str | None = None,
    version: int | None = None,
) -> PromptVersion:
    """A version the caller may read (404 otherwise, as for an unknown prompt)."""
    with engine.connect() as connection:
        prompt = readable_prompt(connection, principal, name)
        return load_prompt_version(connection, prompt, label, version)


def _labels(connection: Connection, prompt_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    if prompt_ids:
        rows = connection.execute(
            select(prompt_labels).where(prompt_labels.c.prompt_id.in_(prompt_ids))
        ).mappings()
        for row in rows:
            found.setdefault(row["prompt_id"], {})[row["label"]] = row["version"]
    return found


def _prompts(connection: Connection, rows: Sequence[RowMapping]) -> list[Prompt]:
    ids = [row["id"] for row in rows]
    labels = _labels(connection, ids)
    latest: dict[str, int] = {}
    if ids:
        latest = {
            prompt_id: number
            for prompt_id, number in connection.execute(
                select(prompt_versions.c.prompt_id, func.max(prompt_versions.c.version))
                .where(prompt_versions.c.prompt_id.in_(ids))
                .group_by(prompt_versions.c.prompt_id)
            ).all()
        }
    return [
        Prompt(
            id=row["id"],
            name=row["name"],
            team_id=row["team_id"],
            description=row["description"],
            latest_version=latest.get(row["id"], 0),
            labels=labels.get(row["id"], {}),
            created_at=aware(row["created_at"]),
            created_by=row["created_by"],
            updated_at=aware(row["updated_at"]),
        )
        for row in rows
    ]


def get_prompt(engine: Engine, principal: Principal, name: str) -> Prompt:
    """A prompt the caller may read, with its labels."""
    with engine.connect() as connection:
        return _prompts(connection, [readable_prompt(connection, principal, name)])[0]


def list_prompts(
    engine: Engine, principal: Principal, *, team_id: str | None = None
) -> list[Prompt]:
    """The prompts the caller may read, by name (of one team and the platform's, when
    ``team_id`` is given)."""
    query = select(prompts).order_by(prompts.c.name)
    if team_id is not None:
        query = query.where((prompts.c.team_id == team_id) | prompts.c.team_id.is_(None))
    elif not principal.is_admin:
        query = query.where((prompts.c.team_id == principal.team_id) | prompts.c.team_id.is_(None))
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
        return _prompts(connection, [row for row in rows if may_read(principal, row["team_id"])])


def list_versions(engine: Engine, principal: Principal, name: str) -> list[PromptVersion]:
    """Every version of a prompt the caller may read, newest first."""
    with engine.connect() as connection:
        prompt = readable_prompt(connection, principal, name)
        rows = connection.execute(
            select(prompt_versions)
            .where(prompt_versions.c.prompt_id == prompt["id"])
            .order_by(prompt_versions.c.version.desc())
        ).mappings()
        return [_version(row, prompt) for row in rows]
