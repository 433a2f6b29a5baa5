"""Labels of prompts: moves, rollbacks and the history of both.

Every label move is one transaction: the label, its history row (who, when, from,
to, action, reason), an audit entry and a ``prompt`` change (subject ``name@version``)
for the incident log. Gates (:mod:`llmplane.prompts.gates`) see a proposed move first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, PermissionDeniedError
from llmplane.incidents.changes import record_change
from llmplane.prompts.gates import GateRefusedError, LabelGate, ProposedMove
from llmplane.prompts.registry import (
    LATEST,
    MAX_REASON,
    aware,
    load_prompt_version,
    readable_prompt,
    writable_prompt,
)
from llmplane.store.tables import prompt_label_history, prompt_labels

LABEL = re.compile(r"[a-z][a-z0-9_-]{0,63}")


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
class LabelMove:
    """One row of a label's history."""

    id: int
    name: str
    label: str
    action: str  # set | rollback | refused | forced
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
        at=aware(row["created_at"]),
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
    force: bool = False,
) -> LabelMove | None:
    """Point ``label`` at ``version``; ``None`` when it already does (nothing recorded).

    Each of ``gates`` sees the proposed move first and may refuse it
    (:class:`GateRefusedError`): the refusal is recorded in the history (``refused``, with
    the gate's evidence) and raised; the label does not move. With ``force`` (the admin
    key only, with a reason) a refused move is made anyway and recorded as ``forced``
    with the gate's evidence."""
    check_label(label)
    if label == LATEST:
        raise InvalidRequestError(
            "'latest' always means the newest version; it cannot be set.",
            param="label",
            code="invalid_label",
        )
    reason = _reason(reason)
    if force and not principal.is_admin:
        raise PermissionDeniedError(
            "Only the admin key can force a move past a promotion gate.", code="admin_only"
        )
    if force and reason is None:
        raise InvalidRequestError(
            "A forced move needs a 'reason' (kept in the history and the audit log).",
            param="reason",
        )
    with engine.begin() as connection:
        prompt = writable_prompt(connection, principal, name)
        load_prompt_version(connection, prompt, None, version)  # 404 for a version that is not
        before = _current(connection, prompt["id"], label)
        if before == version:
            return None
        proposed = ProposedMove(name, prompt["team_id"], label, before, version, principal.key_id)
        try:
            for gate in gates:
                gate.check(connection, proposed)
        except GateRefusedError as refused:
            if force:
                return _record_move(
                    connection, principal, prompt, label, "forced", before, version, reason,
                    refused.evidence,
                )  # fmt: skip
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
    ``moves`` oldest first: a set (or a forced one) pushes the version it replaced, a
    rollback pops it, so successive rollbacks walk back through earlier versions."""
    stack: list[int] = []
    current: int | None = None
    for move in moves:
        if move.action in ("set", "forced"):
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
        prompt = writable_prompt(connection, principal, name)
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
        prompt = readable_prompt(connection, principal, name)
        query = (
            select(prompt_label_history)
            .where(prompt_label_history.c.prompt_id == prompt["id"])
            .order_by(prompt_label_history.c.id.desc())
            .limit(limit)
        )
        if label is not None:
            query = query.where(prompt_label_history.c.label == check_label(label))
        return [_move(row, name) for row in connection.execute(query).mappings()]
