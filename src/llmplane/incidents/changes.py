"""The change log: every change that can cause an incident, with who made it and when.

The gateway records its own model and deployment changes at start-up
(:mod:`llmplane.incidents.config_changes`); the prompt registry records prompt
versions with :func:`record_change`; anything else (a deploy script, CI) goes through
``POST /admin/changes``. Rows hold no secrets: a kind, a subject, a short summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.engine import Connection, Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.errors import InvalidRequestError, NotFoundError
from llmplane.store.tables import changes

CHANGE_KINDS = ("model", "deployment", "prompt", "config", "other")
"""What can change; ``prompt`` subjects are ``name@version``."""
CHANGE_ACTIONS = ("added", "changed", "removed")
MAX_SUMMARY = 500
_SKEW = timedelta(minutes=1)


def aware(value: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite gives them back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def not_in_future(value: datetime, name: str, now: datetime) -> datetime:
    """``value`` in UTC, refused when later than ``now`` (a minute of clock skew allowed)."""
    value = aware(value)
    if value > now + _SKEW:
        raise InvalidRequestError(f"'{name}' cannot be in the future.", param=name)
    return value


def check_kind(kind: str, param: str = "kind") -> str:
    """One of :data:`CHANGE_KINDS`."""
    if kind not in CHANGE_KINDS:
        raise InvalidRequestError(
            f"'{param}' must be one of {', '.join(CHANGE_KINDS)}; got {kind!r}.", param=param
        )
    return kind


def check_subject(subject: str, param: str = "subject") -> str:
    """What changed: 1 to 200 characters."""
    subject = subject.strip()
    if not subject or len(subject) > 200:
        raise InvalidRequestError(f"'{param}' must be 1 to 200 characters.", param=param)
    return subject


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change."""

    id: int
    at: datetime
    kind: str
    subject: str
    action: str
    summary: str
    actor: str
    team_id: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "subject": self.subject,
            "action": self.action,
            "summary": self.summary,
            "actor": self.actor,
            "team_id": self.team_id,
        }


def _change(row: RowMapping) -> Change:
    return Change(
        row["id"],
        aware(row["created_at"]),
        row["kind"],
        row["subject"],
        row["action"],
        row["summary"],
        row["actor"],
        row["team_id"],
    )


def record_change(
    store: Engine | Connection,
    kind: str,
    subject: str,
    *,
    summary: str,
    actor: str,
    action: str = "changed",
    team_id: str | None = None,
    at: datetime | None = None,
) -> Change:
    """Record a change (and its audit entry) in ``store``: an engine, or a connection whose
    transaction the caller commits, e.g. with the prompt version it records."""
    if isinstance(store, Engine):
        with store.begin() as connection:
            return record_change(
                connection,
                kind,
                subject,
                summary=summary,
                actor=actor,
                action=action,
                team_id=team_id,
                at=at,
            )
    now = datetime.now(UTC)
    check_kind(kind)
    subject = check_subject(subject)
    if action not in CHANGE_ACTIONS:
        raise InvalidRequestError(
            f"'action' must be one of {', '.join(CHANGE_ACTIONS)}.", param="action"
        )
    summary = summary.strip()
    if len(summary) > MAX_SUMMARY:
        raise InvalidRequestError(
            f"'summary' must be at most {MAX_SUMMARY} characters.", param="summary"
        )
    when = now if at is None else not_in_future(at, "at", now)
    values = {
        "created_at": when,
        "kind": kind,
        "subject": subject,
        "action": action,
        "summary": summary,
        "actor": actor[:200],
        "team_id": team_id,
    }
    new_id = store.execute(insert(changes).values(**values)).inserted_primary_key
    assert new_id is not None
    change = Change(int(new_id[0]), when, kind, subject, action, summary, actor[:200], team_id)
    record_audit(
        store,
        actor=actor[:64],
        action="change.record",
        object_type="change",
        object_id=str(change.id),
        before=None,
        after=change.to_json(),
    )
    return change


def get_change(connection: Connection, change_id: int) -> Change:
    """A change by id."""
    row = connection.execute(select(changes).where(changes.c.id == change_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"No change with id {change_id}.", code="change_not_found")
    return _change(row)


def list_changes(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: str | None = None,
    team_id: str | None = None,
    limit: int = 100,
) -> list[Change]:
    """The newest changes first (of one kind; a team's and the platform-wide ones)."""
    query = select(changes).order_by(changes.c.created_at.desc(), changes.c.id.desc())
    if since is not None:
        query = query.where(changes.c.created_at >= since)
    if until is not None:
        query = query.where(changes.c.created_at < until)
    if kind is not None:
        query = query.where(changes.c.kind == check_kind(kind))
    if team_id is not None:
        query = query.where(or_(changes.c.team_id == team_id, changes.c.team_id.is_(None)))
    with engine.connect() as connection:
        rows = connection.execute(query.limit(limit)).mappings().all()
    return [_change(row) for row in rows]
