"""The incidents section of the platform report: how many, how fast resolved, and how
many came from prompt, model and deployment changes.

Definitions (also in the README), over the window ``[since, until)``:

- *opened*, *closed*: incidents opened, closed in the window; *open_now*: open at
  ``until`` (whenever opened);
- *mean time to resolve*: over the incidents closed in the window, from the start of
  impact (``--started``, else the opening) to the closing;
- *by cause*: incidents opened in the window by the kind of their cause (a linked
  change's kind, or the kind named directly; ``unknown`` without a cause);
- *attributable share*: of the incidents opened in the window, those caused by a
  prompt, model or deployment change;
- *incidents per change* of a kind: incidents opened in the window with a cause of that
  kind, over the changes of that kind recorded in the window (a team's report counts the
  team's changes and the platform-wide ones).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from llmplane.incidents.changes import CHANGE_KINDS
from llmplane.incidents.incidents import SEVERITIES, incident_from_row
from llmplane.store.tables import changes, incidents

ATTRIBUTABLE_KINDS = ("prompt", "model", "deployment")
"""Causes that count as prompt and model changes (a deployment serves a model)."""
UNKNOWN = "unknown"


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def incident_report(
    connection: Connection, since: datetime, until: datetime, team_id: str | None = None
) -> dict[str, Any]:
    """The incidents section for ``[since, until)`` (of one team, if given)."""
    table = incidents.c
    query = select(incidents).where(
        table.opened_at < until, or_(table.closed_at.is_(None), table.closed_at >= since)
    )
    if team_id is not None:
        query = query.where(table.team_id == team_id)
    overlapping = [incident_from_row(row) for row in connection.execute(query).mappings()]
    opened = [i for i in overlapping if since <= i.opened_at]
    closed = [i for i in overlapping if i.closed_at is not None and since <= i.closed_at < until]
    open_now = [i for i in overlapping if i.closed_at is None or i.closed_at >= until]
    resolve_s = [(i.closed_at - i.started_at).total_seconds() for i in closed if i.closed_at]

    by_cause = dict.fromkeys((*CHANGE_KINDS, UNKNOWN), 0)
    for incident in opened:
        by_cause[incident.cause.kind if incident.cause is not None else UNKNOWN] += 1
    attributable = sum(by_cause[kind] for kind in ATTRIBUTABLE_KINDS)

    counted = (
        select(changes.c.kind, func.count())
        .where(changes.c.created_at >= since, changes.c.created_at < until)
        .group_by(changes.c.kind)
    )
    if team_id is not None:
        counted = counted.where(or_(changes.c.team_id == team_id, changes.c.team_id.is_(None)))
    change_counts = {kind: int(count) for kind, count in connection.execute(counted)}

    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "opened": len(opened),
        "closed": len(closed),
        "open_now": len(open_now),
        "mean_time_to_resolve_s": (
            round(sum(resolve_s) / len(resolve_s), 3) if resolve_s else None
        ),
        "by_severity": [
            {"severity": severity, "opened": sum(i.severity == severity for i in opened)}
            for severity in SEVERITIES
        ],
        "by_cause": [
            {"kind": kind, "incidents": count, "share": _share(count, len(opened))}
            for kind, count in by_cause.items()
        ],
        "attributable_to_changes": attributable,
        "attributable_share": _share(attributable, len(opened)),
        "change_rates": [
            {
                "kind": kind,
                "changes": change_counts.get(kind, 0),
                "incidents": by_cause[kind],
                "incidents_per_change": _share(by_cause[kind], change_counts.get(kind, 0)),
            }
            for kind in CHANGE_KINDS
        ],
    }
