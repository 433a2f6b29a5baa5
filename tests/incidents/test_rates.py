"""The incidents section of the platform report, exact on a known set of incidents and
changes, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from llmplane.accounting.report import platform_report
from llmplane.incidents import close_incident, open_incident, parse_cause, record_change

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # with weeks=2 the window opens 18 Feb 12:00


def _at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _incident(
    engine: Engine,
    opened: datetime,
    *,
    cause: str | None = None,
    severity: str = "sev3",
    team_id: str | None = None,
    started: datetime | None = None,
    closed: datetime | None = None,
) -> None:
    incident = open_incident(
        engine,
        f"incident at {opened.isoformat()}",
        actor="admin",
        severity=severity,
        cause=parse_cause(cause),
        team_id=team_id,
        started_at=started,
        now=opened,
    )
    if closed is not None:
        close_incident(engine, incident.id, actor="admin", now=closed)


def _known_history(engine: Engine) -> None:
    def change(kind: str, subject: str, at: datetime, team_id: str | None = None) -> int:
        return record_change(
            engine, kind, subject, summary="", actor="ci", at=at, team_id=team_id
        ).id

    change("model", "old-model", _at(2, 1))  # before the window
    change("prompt", "support-bot@6", _at(2, 19))
    bot7 = change("prompt", "support-bot@7", _at(2, 20))
    change("prompt", "support-bot@8", _at(2, 27), team_id="team_b")
    change("prompt", "faq@2", _at(3, 1))
    change("model", "gpt-4o", _at(2, 24))
    change("model", "gemini", _at(3, 2))
    change("deployment", "openai-east", _at(2, 28))
    change("other", "deploy-x", _at(3, 3))

    # In the window: A, B, C, D, E opened; A, B, E, F closed; C, D, H open at the end.
    _incident(  # A: 2 h from the start of impact
        engine,
        _at(2, 20, 10),
        started=_at(2, 20, 9),
        closed=_at(2, 20, 11),
        cause=f"change:{bot7}",
        severity="sev2",
        team_id="team_a",
    )
    _incident(  # B: 30 min
        engine,
        _at(2, 25),
        closed=_at(2, 25, 0, 30),
        cause="model:gpt-4o",
        severity="sev1",
        team_id="team_a",
    )
    _incident(engine, _at(3, 1), cause="deployment:openai-east", team_id="team_b")  # C
    _incident(engine, _at(3, 2), team_id="team_a")  # D: cause unknown
    _incident(engine, _at(3, 3), closed=_at(3, 3, 1), cause="other:dns", severity="sev4")  # E
    _incident(  # F: opened before the window, closed in it after 9 days
        engine,
        _at(2, 10),
        closed=_at(2, 19),
        cause="prompt:faq@2",
        severity="sev2",
        team_id="team_a",
    )
    _incident(engine, _at(2, 1), closed=_at(2, 5), cause="model:gpt-4o")  # G: all before
    _incident(engine, _at(2, 15), team_id="team_b")  # H: opened before, still open
    _incident(engine, NOW + timedelta(hours=1), cause="model:gpt-4o")  # I: after the window


def _section(engine: Engine, team_id: str | None = None) -> Any:
    return platform_report(engine, now=NOW, weeks=2, team_id=team_id)["incidents"]


def test_the_incident_numbers_of_a_known_history(engine: Engine) -> None:
    _known_history(engine)
    section = _section(engine)
    assert (section["since"], section["until"]) == (
        "2026-02-18T12:00:00+00:00",
        "2026-03-04T12:00:00+00:00",
    )
    assert (section["opened"], section["closed"], section["open_now"]) == (5, 4, 3)
    assert section["mean_time_to_resolve_s"] == (7200 + 1800 + 3600 + 9 * 86400) / 4
    assert {row["severity"]: row["opened"] for row in section["by_severity"]} == {
        "sev1": 1,
        "sev2": 1,
        "sev3": 2,
        "sev4": 1,
    }
    assert {row["kind"]: (row["incidents"], row["share"]) for row in section["by_cause"]} == {
        "model": (1, 0.2),
        "deployment": (1, 0.2),
        "prompt": (1, 0.2),
        "config": (0, 0.0),
        "other": (1, 0.2),
        "unknown": (1, 0.2),
    }
    assert (section["attributable_to_changes"], section["attributable_share"]) == (3, 0.6)
    assert {
        row["kind"]: (row["changes"], row["incidents"], row["incidents_per_change"])
        for row in section["change_rates"]
    } == {
        "model": (2, 1, 0.5),
        "deployment": (1, 1, 1.0),
        "prompt": (4, 1, 0.25),
        "config": (0, 0, None),
        "other": (1, 1, 1.0),
    }


def test_a_teams_incidents_against_its_own_and_platform_changes(engine: Engine) -> None:
    _known_history(engine)
    section = _section(engine, "team_a")
    assert (section["opened"], section["closed"], section["open_now"]) == (3, 3, 1)
    assert section["mean_time_to_resolve_s"] == (7200 + 1800 + 9 * 86400) / 3
    assert (section["attributable_to_changes"], section["attributable_share"]) == (2, 0.666667)
    rates = {row["kind"]: row for row in section["change_rates"]}
    assert (rates["prompt"]["changes"], rates["prompt"]["incidents_per_change"]) == (3, 0.333333)


def test_no_incidents_no_rates(engine: Engine) -> None:
    section = _section(engine)
    assert (section["opened"], section["closed"], section["open_now"]) == (0, 0, 0)
    assert section["mean_time_to_resolve_s"] is None
    assert section["attributable_share"] is None
    assert all(row["incidents_per_change"] is None for row in section["change_rates"])
