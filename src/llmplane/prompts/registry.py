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

Every label move is one transaction: the label, its history row, an audit entry and a
``prompt`` change (subject ``name@version``) for the incident log.
"""

from __future__ import annotations

import re
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
from llmplane.incidents.changes import record_change
from llmplane.prompts.content import PromptContent, check_name
from llmplane.prompts.gates import GateRefusedError, LabelGate, ProposedMove
from llmplane.store.tables import prompt_label_history, prompt_labels, prompt_versions, prompts

DEFAULT_LABEL = "production"
LATEST = "latest"
"""A label no one sets: it always means the newest version."""
LABEL = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_REASON = 500
_CREATE_TRIES = 3


def _aware(value: datetime) -> datetime:
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


def check_label(label: Any, param: str = "label") -> str:
    """A label name: lower-case letters, digits, '_' and '-', starting with a letter."""
    if not isinstance(label, str) or not LABEL.fullmatch(label):
        raise InvalidRequestError(
            "A label is 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter.",
            param=param,
            code="invalid_label",
        )
    return label


def _reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON:
        raise InvalidRequestError(
            f"'reason' must be at most {MAX_REASON} characters.", param="reason"
        )
    return reason.strip()


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


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One row of a label's history."""

    id: int
    name: str
    label: str
    action: str  # set | rollback | refused
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    evidence: dict[str, Any] | None
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "evidence": self.evidence,
            "at": self.at.isoformat(),
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
        created_at=_aware(row["created_at"]),
        created_by=row["created_by"],
    )


def _prompt_row(connection: Connection, name: str) -> RowMapping | None:
    return connection.execute(select(prompts).where(prompts.c.name == name)).mappings().first()


def _readable(connection: Connection, principal: Principal, name: str) -> RowMapping:
    row = _prompt_row(connection, name)
    if row is None or not may_read(principal, row["team_id"]):
        raise prompt_not_found(name)
    return row


def _writable(connection: Connection, principal: Principal, name: str) -> RowMapping:
    row = _readable(connection, principal, name)
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
    return _load_version(connection, prompt, label, version)


def _load_version(
    connection: Connection, prompt: RowMapping, label: str | None, version: int | None
) -> PromptVersion:
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
        prompt = _readable(connection, principal, name)
        return _load_version(connection, prompt, label, version)


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
            created_at=_aware(row["created_at"]),
            created_by=row["created_by"],
            updated_at=_aware(row["updated_at"]),
        )
        for row in rows
    ]


def get_prompt(engine: Engine, principal: Principal, name: str) -> Prompt:
    """A prompt the caller may read, with its labels."""
    with engine.connect() as connection:
        return _prompts(connection, [_readable(connection, principal, name)])[0]


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
        prompt = _readable(connection, principal, name)
        rows = connection.execute(
            select(prompt_versions)
            .where(prompt_versions.c.prompt_id == prompt["id"])
            .order_by(prompt_versions.c.version.desc())
        ).mappings()
        return [_version(row, prompt) for row in rows]


def _move(row: RowMapping, name: str) -> LabelMove:
    return LabelMove(
        id=row["id"],
        name=name,
        label=row["label"],
        action=row["action"],
        from_version=row["from_version"],
        to_version=row["to_version"],
        actor=row["actor"],
        reason=row["reason"],
        evidence=row["evidence"],
        at=_aware(row["created_at"]),
    )


def _current(connection: Connection, prompt_id: str, label: str) -> int | None:
    return connection.execute(
        select(prompt_labels.c.version).where(
            prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.label == label
        )
    ).scalar()


def _record_move(
    connection: Connection,
    principal: Principal,
    prompt: RowMapping,
    label: str,
    action: str,
    before: int | None,
    after: int | None,
    reason: str | None,
    evidence: dict[str, Any] | None = None,
) -> LabelMove:
    now = datetime.now(UTC)
    name, actor = prompt["name"], principal.key_id
    if action != "refused":
        assert after is not None
        if before is None:
            connection.execute(
                insert(prompt_labels).values(
                    prompt_id=prompt["id"],
                    label=label,
                    version=after,
                    updated_at=now,
                    updated_by=actor,
                )
            )
        else:
            connection.execute(
                update(prompt_labels)
                .where(prompt_labels.c.prompt_id == prompt["id"], prompt_labels.c.label == label)
                .values(version=after, updated_at=now, updated_by=actor)
            )
    values = {
        "prompt_id": prompt["id"],
        "label": label,
        "action": action,
        "from_version": before,
        "to_version": after,
        "actor": actor,
        "reason": reason,
        "evidence": evidence,
        "created_at": now,
    }
    new = connection.execute(insert(prompt_label_history).values(**values)).inserted_primary_key
    assert new is not None
    record_audit(
        connection,
        actor=actor,
        action=f"prompt.label.{action}",
        object_type="prompt",
        object_id=prompt["id"],
        before={"name": name, "label": label, "version": before},
        after={"name": name, "label": label, "version": after, "reason": reason},
    )
    if action != "refused":
        moved = f"{label}: " + (f"v{before} -> v{after}" if before is not None else f"v{after}")
        summary = f"{action} {moved}" + (f" ({reason})" if reason else "")
        record_change(
            connection,
            "prompt",
            f"{name}@{after}",
            summary=summary[:500],
            actor=actor,
            action="added" if before is None else "changed",
            team_id=prompt["team_id"],
        )
    return LabelMove(int(new[0]), name, label, action, before, after, actor, reason, evidence, now)


def set_label(
    engine: Engine,
    principal: Principal,
    name: str,
    label: str,
    version: int,
    *,
    reason: str | None = None,
    gates: Sequence[LabelGate] = (),
) -> LabelMove | None:
    """Point ``label`` at ``version``; ``None`` when it already does (nothing recorded).

    Each of ``gates`` sees the proposed move first and may refuse it
    (:class:`GateRefusedError`): the refusal is recorded in the history (``refused``, with
    the gate's evidence) and raised; the label does not move."""
    check_label(label)
    if label == LATEST:
        raise InvalidRequestError(
            "'latest' always means the newest version; it cannot be set.",
            param="label",
            code="invalid_label",
        )
    reason = _reason(reason)
    with engine.begin() as connection:
        prompt = _writable(connection, principal, name)
        _load_version(connection, prompt, None, version)  # 404 for a version that is not
        before = _current(connection, prompt["id"], label)
        if before == version:
            return None
        proposed = ProposedMove(name, prompt["team_id"], label, before, version, principal.key_id)
        try:
            for gate in gates:
                gate.check(connection, proposed)
        except GateRefusedError as refused:
            refusal = refused
        else:
            return _record_move(
                connection, principal, prompt, label, "set", before, version, reason
            )
    with engine.begin() as connection:  # the refusal is kept; the move is not made
        _record_move(
            connection, principal, prompt, label, "refused", before, version, reason,
            refusal.evidence,
        )  # fmt: skip
    raise refusal


def rollback_target(moves: Sequence[LabelMove]) -> int | None:
    """The version a label held before its last move that was not itself undone, replaying
    ``moves`` oldest first: a set pushes the version it replaced, a rollback pops it, so
    successive rollbacks walk back through earlier versions."""
    stack: list[int] = []
    current: int | None = None
    for move in moves:
        if move.action == "set":
            if current is not None:
                stack.append(current)
            current = move.to_version
        elif move.action == "rollback":
            if stack:
                stack.pop()
            current = move.to_version
    return stack[-1] if stack else None


def rollback(
    engine: Engine, principal: Principal, name: str, label: str, *, reason: str | None = None
) -> LabelMove:
    """Move ``label`` back to the version it held before (no gate is asked: a rollback must
    always be possible during an incident)."""
    check_label(label)
    reason = _reason(reason)
    with engine.begin() as connection:
        prompt = _writable(connection, principal, name)
        rows = connection.execute(
            select(prompt_label_history)
            .where(
                prompt_label_history.c.prompt_id == prompt["id"],
                prompt_label_history.c.label == label,
            )
            .order_by(prompt_label_history.c.id)
        ).mappings()
        target = rollback_target([_move(row, name) for row in rows])
        before = _current(connection, prompt["id"], label)
        if target is None or before is None:
            raise InvalidRequestError(
                f"The label '{label}' of '{name}' has no earlier version to roll back to.",
                param="label",
                code="nothing_to_roll_back",
            )
        return _record_move(
            connection, principal, prompt, label, "rollback", before, target, reason
        )


def label_history(
    engine: Engine,
    principal: Principal,
    name: str,
    *,
    label: str | None = None,
    limit: int = 100,
) -> list[LabelMove]:
    """A prompt's label moves (of one label), newest first."""
    with engine.connect() as connection:
        prompt = _readable(connection, principal, name)
        query = (
            select(prompt_label_history)
            .where(prompt_label_history.c.prompt_id == prompt["id"])
            .order_by(prompt_label_history.c.id.desc())
            .limit(limit)
        )
        if label is not None:
            query = query.where(prompt_label_history.c.label == check_label(label))
        return [_move(row, name) for row in connection.execute(query).mappings()]
