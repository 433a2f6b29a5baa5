"""Stored request logs in the store (SQLite and PostgreSQL): the writer's rows, the
query filters, a user's deletion (audited) and the retention purge."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from llmplane.accounting.audit import list_audit
from llmplane.accounting.keys import Principal
from llmplane.accounting.request_logs import delete_user_logs, get_log, list_logs, purge_expired
from llmplane.errors import NotFoundError
from llmplane.store import create_engine, migrate
from llmplane.store.tables import request_logs
from llmplane.telemetry import RequestTrace
from llmplane.telemetry.content import LogPolicy, RequestContent
from llmplane.telemetry.stored_logs import StoredLogWriter
from tests.helpers import usage_row

_BODY = {"model": "mock", "messages": [{"role": "user", "content": "hello sk-lp-secret123"}]}


def _trace(
    request_id: str,
    *,
    bodies: str = "full",
    team: str = "team_a",
    key: str = "key_a",
    user: str | None = "alice",
    model: str = "mock",
    days: int = 30,
) -> RequestTrace:
    trace = RequestTrace(request_id, "POST", "/v1/chat/completions", time.time(), 0.0)
    trace.operation, trace.model, trace.status, trace.duration_s = (
        "chat.completions",
        model,
        200,
        0.01,
    )
    trace.principal = Principal(key_id=key, name=key, team_id=team)
    trace.attempts.append(usage_row(request_id, 1500, model=model, key_id=key, team_id=team))
    trace.content = RequestContent(LogPolicy(bodies, days), _BODY, user)
    trace.content.reply = b'{"choices":[{"message":{"content":"hi there"}}]}'
    return trace


def _write(engine: Engine, *traces: RequestTrace) -> StoredLogWriter:
    writer = StoredLogWriter(engine, interval_s=0.01).start()
    for trace in traces:
        writer.request_finished(trace)
    assert writer.flush(10)
    writer.close()
    return writer


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(request_logs)).scalar_one())


def test_the_writer_stores_one_row_per_logged_request(engine: Engine) -> None:
    unlogged = _trace("req_none")
    unlogged.content = None  # the policy none: nothing to write
    _write(engine, _trace("req_full"), _trace("req_meta", bodies="metadata"), unlogged)
    assert _count(engine) == 2
    full = get_log(engine, "req_full")
    assert full["request"] == {
        "model": "mock",
        "messages": [{"role": "user", "content": "hello <API_KEY>"}],
    }
    assert full["response"] == {"choices": [{"message": {"content": "hi there"}}]}
    assert (full["cost_usd"], full["prompt_tokens"], full["user"]) == (1.5e-6, 10, "alice")
    meta = get_log(engine, "req_meta")
    assert meta["request"] is None and meta["response"] is None
    assert meta["params"] == {"messages": 1}
    with pytest.raises(NotFoundError):
        get_log(engine, "req_none")


@pytest.mark.parametrize(
    ("said", "stored"),
    [
        # token_urlsafe keys: "--" inside, a leading or a trailing "-".
        ("my key is sk-lp-Ab3--_Y7Ls now", "my key is <API_KEY> now"),
        ("sk-lp--x9Qw and more", "<API_KEY> and more"),
        ("key sk-lp-x9Qw-.", "key <API_KEY>."),
        ("admin: sk-lp-admin-Zx_-0", "admin: <API_KEY>"),
        # As a model may echo it, spaced around its dashes.
        ("it was sk - lp - abc - def, right", "it was <API_KEY>, right"),
        ("a help page about sk-lp keys", "a help page about sk-lp keys"),
    ],
)
def test_no_shape_of_platform_key_reaches_a_stored_body(
    engine: Engine, said: str, stored: str
) -> None:
    trace = _trace("req_key")
    assert trace.content is not None
    trace.content.request = {"model": "mock", "messages": [{"role": "user", "content": said}]}
    _write(engine, trace)
    assert get_log(engine, "req_key")["request"]["messages"][0]["content"] == stored


def test_redacted_rows_without_a_redactor_keep_no_bodies(engine: Engine) -> None:
    def broken() -> Any:
        raise ImportError("presidio is not installed")

    writer = StoredLogWriter(engine, broken, interval_s=0.01).start()
    writer.request_finished(_trace("req_redacted", bodies="redacted"))
    assert writer.flush(10)
    writer.close()
    row = get_log(engine, "req_redacted")
    assert row["policy"] == "redacted" and row["request"] is None and row["response"] is None
    assert row["status"] == 200


def test_filters(engine: Engine) -> None:
    _write(
        engine,
        _trace("r1", user="alice"),
        _trace("r2", user="bob", key="key_b"),
        _trace("r3", team="team_b", model="other"),
    )

    def ids(**filters: Any) -> list[str]:
        return sorted(row["request_id"] for row in list_logs(engine, **filters))

    assert ids() == ["r1", "r2", "r3"]
    assert ids(user_id="alice") == ["r1", "r3"]
    assert ids(key_id="key_b") == ["r2"]
    assert ids(team_id="team_b") == ["r3"]
    assert ids(model="other") == ["r3"]
    assert ids(request_id="r2") == ["r2"]
    assert ids(since=datetime.now(UTC) + timedelta(minutes=1)) == []
    assert ids(until=datetime.now(UTC) - timedelta(minutes=1)) == []
    assert len(list_logs(engine, limit=2)) == 2
    assert "request" not in list_logs(engine)[0]


def test_deleting_a_users_logs_is_audited(engine: Engine) -> None:
    _write(engine, _trace("a1"), _trace("a2", team="team_b"), _trace("b1", user="bob"))
    assert delete_user_logs(engine, "alice", team_id="team_b", actor="admin") == 1
    assert delete_user_logs(engine, "alice", actor="admin") == 1
    assert [row["request_id"] for row in list_logs(engine)] == ["b1"]
    entries = list_audit(engine, object_type="user")
    assert [e["after"]["deleted"] for e in entries] == [1, 1]
    assert entries[1]["after"] == {"user": "alice", "team_id": "team_b", "deleted": 1}


def test_purge_deletes_only_expired_rows_in_batches(engine: Engine) -> None:
    _write(engine, *(_trace(f"old{i}", days=1) for i in range(5)), _trace("fresh", days=1))
    with engine.begin() as connection:
        connection.execute(
            update(request_logs)
            .where(request_logs.c.request_id.like("old%"))
            .values(expires_at=datetime.now(UTC) - timedelta(hours=1))
        )
    assert purge_expired(engine, batch_size=2) == 5
    assert [row["request_id"] for row in list_logs(engine)] == ["fresh"]
    assert purge_expired(engine, now=datetime.now(UTC) + timedelta(days=2)) == 1
    assert _count(engine) == 0


def test_a_failing_store_delays_rows_but_loses_none(tmp_path: Path) -> None:
    store = create_engine(f"sqlite:///{tmp_path / 'late.db'}")  # no tables yet: writes fail
    writer = StoredLogWriter(store, interval_s=0.01).start()
    for i in range(5):
        writer.request_finished(_trace(f"late{i}"))
    assert not writer.flush(0.3)  # still retrying
    migrate(store)  # the store comes back
    assert writer.flush(10)
    writer.close()
    assert _count(store) == 5 and writer.rejected == 0
    store.dispose()


def test_requests_beyond_the_queue_are_dropped_and_counted(engine: Engine) -> None:
    writer = StoredLogWriter(engine, limit=3)  # not started: nothing is taken yet
    for i in range(5):
        writer.request_finished(_trace(f"q{i}"))
    assert (writer.depth, writer.dropped) == (3, 2)
    writer.start()
    assert writer.flush(10)
    writer.close()
    assert _count(engine) == 3
