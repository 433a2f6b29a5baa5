"""The incident log on SQLite and PostgreSQL: causes, closing, listing and the audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from llmplane.accounting.audit import list_audit
from llmplane.errors import InvalidRequestError, NotFoundError
from llmplane.incidents import (
    Cause,
    close_incident,
    list_incidents,
    open_incident,
    parse_cause,
    record_change,
)


def test_causes_are_parsed() -> None:
    assert parse_cause("model:gpt-4o") == Cause("model", "gpt-4o")
    assert parse_cause("prompt:support-bot@7") == Cause("prompt", "support-bot@7")
    assert parse_cause("deployment:openai-east") == Cause("deployment", "openai-east")
    assert parse_cause("change:42") == Cause("change", None, 42)
    assert parse_cause(None) is None
    assert parse_cause("unknown") is None and parse_cause("none") is None
    for bad in ("gpt-4o", "weather:rain", "change:abc", "model:"):
        with pytest.raises(InvalidRequestError) as refused:
            parse_cause(bad)
        assert refused.value.param == "cause"


def test_an_incident_linked_to_a_change_takes_its_kind_and_subject(engine: Engine) -> None:
    change = record_change(
        engine, "prompt", "support-bot@7", summary="new tone", actor="ci", action="added"
    )
    incident = open_incident(
        engine,
        "support bot answers in French",
        actor="admin",
        severity="sev2",
        cause=parse_cause(f"change:{change.id}"),
        team_id="team_x",
    )
    assert incident.cause == Cause("prompt", "support-bot@7", change.id)
    assert (incident.status, incident.severity, incident.team_id) == ("open", "sev2", "team_x")
    with pytest.raises(NotFoundError):
        open_incident(engine, "x", actor="admin", cause=Cause("change", None, change.id + 99))


def test_closing_records_resolution_and_time_to_resolve(engine: Engine) -> None:
    opened_at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    incident = open_incident(
        engine,
        "gpt-4o timeouts",
        actor="admin",
        cause=parse_cause("model:gpt-4o"),
        started_at=opened_at - timedelta(minutes=30),
        now=opened_at,
    )
    closed = close_incident(
        engine,
        str(incident.id),
        actor="admin",
        resolution="rolled back",
        now=opened_at + timedelta(hours=1),
    )
    answer = closed.to_json()
    assert (answer["status"], answer["resolution"], answer["closed_by"]) == (
        "closed",
        "rolled back",
        "admin",
    )
    assert answer["time_to_resolve_s"] == 5400.0  # from the start of impact
    with pytest.raises(InvalidRequestError) as twice:
        close_incident(engine, incident.id, actor="admin")
    assert twice.value.code == "incident_closed"
    with pytest.raises(NotFoundError):
        close_incident(engine, "999", actor="admin")
    with pytest.raises(NotFoundError):
        close_incident(engine, "nope", actor="admin")
    actions = [entry["action"] for entry in list_audit(engine, object_type="incident")]
    assert actions == ["incident.close", "incident.open"]


def test_bad_incidents_are_refused(engine: Engine) -> None:
    for kwargs, param in [
        ({"title": " "}, "title"),
        ({"title": "x", "severity": "sev0"}, "severity"),
        ({"title": "x", "started_at": datetime.now(UTC) + timedelta(hours=1)}, "started_at"),
    ]:
        with pytest.raises(InvalidRequestError) as refused:
            open_incident(engine, actor="admin", **kwargs)  # type: ignore[arg-type]
        assert refused.value.param == param
    with pytest.raises(InvalidRequestError):
        record_change(engine, "weather", "rain", summary="", actor="ci")
    with pytest.raises(InvalidRequestError):
        record_change(engine, "model", "gpt-4o", summary="x" * 501, actor="ci")
    assert list_incidents(engine) == []


def test_listing_by_status_and_team(engine: Engine) -> None:
    first = open_incident(engine, "one", actor="admin", team_id="team_a")
    second = open_incident(engine, "two", actor="admin", team_id="team_b")
    third = open_incident(engine, "three", actor="admin", team_id="team_a")
    close_incident(engine, first.id, actor="admin")
    assert [i.id for i in list_incidents(engine)] == [third.id, second.id, first.id]
    assert [i.id for i in list_incidents(engine, status="open")] == [third.id, second.id]
    assert [i.id for i in list_incidents(engine, team_id="team_a")] == [third.id, first.id]
    assert [i.id for i in list_incidents(engine, status="closed", team_id="team_b")] == []
