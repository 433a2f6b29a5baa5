"""The incident log: opened, closed, and linked to the change that caused them.

A cause is a recorded change (``change:42``), or a kind and subject named directly
(``prompt:support-bot@7``, ``model:gpt-4o``, ``deployment:openai-east``,
``config:defaults``, ``other:…``); without one the cause is unknown. Every write is
audited in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.errors import InvalidRequestError, NotFoundError
from llmplane.incidents.changes import (
    CHANGE_KINDS,
    aware,
    check_kind,
    check_subject,
    get_change,
    not_in_future,
)
from llmplane.store.tables import incidents

SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
"""sev1 is the worst."""
DEFAULT_SEVERITY = "sev3"
UNKNOWN_CAUSES = ("", "none", "unknown")
MAX_RESOLUTION = 2000


@dataclass(frozen=True, slots=True)
class Cause:
    """What caused an incident: a change's kind and subject, and the change when known."""

    kind: str
    subject: str | None
    change_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "subject": self.subject, "change_id": self.change_id}


def parse_cause(text: str | None) -> Cause | None:
    """``change:ID`` or ``KIND:SUBJECT`` (``None``, ``none`` or ``unknown``: no cause). A
    change's kind and subject are filled in by :func:`open_incident`."""
    if text is None or text.strip().lower() in UNKNOWN_CAUSES:
        return None
    kind, sep, subject = text.strip().partition(":")
    if kind == "change":
        if not subject.strip().isdigit():
            raise InvalidRequestError(
                "'cause' change:ID needs the number of a recorded change.", param="cause"
            )
        return Cause("change", None, int(subject))
    if not sep or kind not in CHANGE_KINDS:
        raise InvalidRequestError(
            f"'cause' must be change:ID, KIND:SUBJECT (KIND one of {', '.join(CHANGE_KINDS)}) "
            "or unknown.",
            param="cause",
        )
    return Cause(kind, check_subject(subject, "cause"))


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident of the log."""

    id: int
    title: str
    severity: str
    status: str
    started_at: datetime
    opened_at: datetime
    closed_at: datetime | None
    opened_by: str
    closed_by: str | None
    resolution: str | None
    cause: Cause | None
    team_id: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form, with the time to resolve in seconds (from the start of impact)."""
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "opened_at": self.opened_at.isoformat(),
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "opened_by": self.opened_by,
            "closed_by": self.closed_by,
            "resolution": self.resolution,
            "cause": None if self.cause is None else self.cause.to_json(),
            "team_id": self.team_id,
            "time_to_resolve_s": (
                None
                if self.closed_at is None
                else (self.closed_at - self.started_at).total_seconds()
            ),
        }


def incident_from_row(row: RowMapping) -> Incident:
    """An :class:`Incident` from its row."""
    kind = row["cause_kind"]
    return Incident(
        id=row["id"],
        title=row["title"],
        severity=row["severity"],
        status=row["status"],
        started_at=aware(row["started_at"]),
        opened_at=aware(row["opened_at"]),
        closed_at=None if row["closed_at"] is None else aware(row["closed_at"]),
        opened_by=row["opened_by"],
        closed_by=row["closed_by"],
        resolution=row["resolution"],
        cause=(None if kind is None else Cause(kind, row["cause_subject"], row["cause_change_id"])),
        team_id=row["team_id"],
    )


def open_incident(
    engine: Engine,
    title: str,
    *,
    actor: str,
    severity: str = DEFAULT_SEVERITY,
    cause: Cause | None = None,
    team_id: str | None = None,
    started_at: datetime | None = None,
    now: datetime | None = None,
) -> Incident:
    """Open an incident; ``started_at`` (when impact began, default now) counts for the
    time to resolve."""
    now = datetime.now(UTC) if now is None else aware(now)
    title = title.strip()
    if not title or len(title) > 300:
        raise InvalidRequestError("'title' must be 1 to 300 characters.", param="title")
    if severity not in SEVERITIES:
        raise InvalidRequestError(
            f"'severity' must be one of {', '.join(SEVERITIES)}.", param="severity"
        )
    started = now if started_at is None else not_in_future(started_at, "started_at", now)
    with engine.begin() as connection:
        if cause is not None and cause.change_id is not None:
            change = get_change(connection, cause.change_id)
            cause = Cause(change.kind, change.subject, change.id)
        elif cause is not None:
            check_kind(cause.kind, "cause")
        values = {
            "title": title,
            "severity": severity,
            "status": "open",
            "started_at": started,
            "opened_at": now,
            "opened_by": actor,
            "cause_kind": None if cause is None else cause.kind,
            "cause_subject": None if cause is None else cause.subject,
            "cause_change_id": None if cause is None else cause.change_id,
            "team_id": team_id,
        }
        key = connection.execute(insert(incidents).values(**values)).inserted_primary_key
        assert key is not None
        row = connection.execute(select(incidents).where(incidents.c.id == key[0])).mappings().one()
        incident = incident_from_row(row)
        record_audit(
            connection,
            actor=actor,
            action="incident.open",
            object_type="incident",
            object_id=str(incident.id),
            before=None,
            after=incident.to_json(),
        )
    return incident


def _incident_id(value: str | int) -> int:
    text = str(value).strip().removeprefix("#")
    if not text.isdigit():
        raise NotFoundError(f"No incident {value!r}.", code="incident_not_found")
    return int(text)


def close_incident(
    engine: Engine,
    incident_id: str | int,
    *,
    actor: str,
    resolution: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Close an open incident, with what resolved it."""
    now = datetime.now(UTC) if now is None else aware(now)
    if resolution is not None:
        resolution = resolution.strip() or None
        if resolution is not None and len(resolution) > MAX_RESOLUTION:
            raise InvalidRequestError(
                f"'resolution' must be at most {MAX_RESOLUTION} characters.", param="resolution"
            )
    number = _incident_id(incident_id)
    table = incidents.c
    with engine.begin() as connection:
        # The status check is in the UPDATE itself: two closers cannot both succeed.
        closed = connection.execute(
            update(incidents)
            .where(table.id == number, table.status == "open")
            .values(status="closed", closed_at=now, closed_by=actor, resolution=resolution)
        )
        row = connection.execute(select(incidents).where(table.id == number)).mappings().first()
        if row is None:
            raise NotFoundError(f"No incident {number}.", code="incident_not_found")
        if closed.rowcount != 1:
            raise InvalidRequestError(
                f"Incident {number} is already closed.", code="incident_closed"
            )
        incident = incident_from_row(row)
        record_audit(
            connection,
            actor=actor,
            action="incident.close",
            object_type="incident",
            object_id=str(number),
            before={"status": "open"},
            after=incident.to_json(),
        )
    return incident


def get_incident(engine: Engine, incident_id: str | int) -> Incident:
    """An incident by number."""
    number = _incident_id(incident_id)
    with engine.connect() as connection:
        row = (
            connection.execute(select(incidents).where(incidents.c.id == number)).mappings().first()
        )
    if row is None:
        raise NotFoundError(f"No incident {number}.", code="incident_not_found")
    return incident_from_row(row)


def list_incidents(
    engine: Engine,
    *,
    status: str | None = None,
    team_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Incident]:
    """The newest incidents first (only open or closed ones; one team's; opened since)."""
    table = incidents.c
    query = select(incidents).order_by(table.opened_at.desc(), table.id.desc()).limit(limit)
    if status is not None:
        if status not in ("open", "closed"):
            raise InvalidRequestError("'status' must be open or closed.", param="status")
        query = query.where(table.status == status)
    if team_id is not None:
        query = query.where(table.team_id == team_id)
    if since is not None:
        query = query.where(table.opened_at >= since)
    with engine.connect() as connection:
        return [incident_from_row(row) for row in connection.execute(query).mappings()]
