"""The registry on SQLite and PostgreSQL: versions, ownership, labels, rollback, history."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from llmplane import prompts
from llmplane.accounting.audit import list_audit
from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from llmplane.incidents import list_changes
from llmplane.prompts import GateRefusedError, PromptContent, ProposedMove
from llmplane.store.tables import prompt_label_history

ADMIN = Principal(key_id="key_admin", name="admin", is_admin=True)
A_ADMIN = Principal(key_id="key_a_admin", name="a-admin", team_id="team_a", role="team_admin")
A_MEMBER = Principal(key_id="key_a_member", name="a-member", team_id="team_a")
B_ADMIN = Principal(key_id="key_b_admin", name="b-admin", team_id="team_b", role="team_admin")


def _content(text: str = "Hello {{ name }}", **extra: Any) -> PromptContent:
    return PromptContent.parse(
        {"template": text, "variables": {"name": {"type": "string"}}, **extra}
    )


def test_same_content_returns_the_existing_version(engine: Engine) -> None:
    v1, created = prompts.create_version(engine, A_ADMIN, "greet", _content())
    assert (v1.version, created, v1.team_id) == (1, True, "team_a")  # a team admin's team
    again, created = prompts.create_version(engine, A_ADMIN, "greet", _content())
    assert (again.version, created) == (1, False)
    v2, created = prompts.create_version(
        engine, A_ADMIN, "greet", _content(params={"temperature": 0.1}), message="cooler"
    )
    assert (v2.version, created, v2.message) == (2, True, "cooler")
    versions = prompts.list_versions(engine, A_MEMBER, "greet")
    assert [v.version for v in versions] == [2, 1]
    assert versions[0].content.params == {"temperature": 0.1}
    entries = list_audit(engine, object_type="prompt")
    assert [e["action"] for e in entries] == ["prompt.version.create"] * 2


def test_ownership_decides_who_reads_and_writes(engine: Engine) -> None:
    prompts.create_version(engine, A_ADMIN, "team-a-only", _content())
    prompts.create_version(engine, ADMIN, "platform-wide", _content())
    # Another team's prompt is invisible: 404 as if it did not exist, on every read.
    with pytest.raises(NotFoundError):
        prompts.get_version(engine, B_ADMIN, "team-a-only", label="latest")
    with pytest.raises(NotFoundError):
        prompts.label_history(engine, B_ADMIN, "team-a-only")
    assert prompts.get_version(engine, A_MEMBER, "team-a-only", label="latest").version == 1
    assert prompts.get_version(engine, B_ADMIN, "platform-wide", label="latest").version == 1
    names = {p.name for p in prompts.list_prompts(engine, B_ADMIN)}
    assert names == {"platform-wide"}
    assert {p.name for p in prompts.list_prompts(engine, ADMIN)} == {"team-a-only", "platform-wide"}
    # Writes: the team's admins and the admin key; a platform prompt: the admin key only.
    with pytest.raises(PermissionDeniedError):
        prompts.create_version(engine, A_MEMBER, "team-a-only", _content("v2 {{ name }}"))
    with pytest.raises(PermissionDeniedError):
        prompts.create_version(engine, A_ADMIN, "platform-wide", _content("v2 {{ name }}"))
    with pytest.raises(PermissionDeniedError):
        prompts.set_label(engine, A_ADMIN, "platform-wide", "production", 1)
    # Names are unique platform-wide: another team cannot take one.
    with pytest.raises(InvalidRequestError) as taken:
        prompts.create_version(engine, B_ADMIN, "team-a-only", _content())
    assert taken.value.code == "prompt_name_taken"
    with pytest.raises(InvalidRequestError) as moved:
        prompts.create_version(
            engine, ADMIN, "team-a-only", _content("x {{ name }}"), team_id=None, team_given=True
        )
    assert moved.value.code == "prompt_team_mismatch"


def test_labels_move_roll_back_and_keep_their_history(engine: Engine) -> None:
    for text in ("one {{ name }}", "two {{ name }}", "three {{ name }}"):
        prompts.create_version(engine, A_ADMIN, "bot", _content(text))
    with pytest.raises(NotFoundError) as unlabelled:
        prompts.get_version(engine, A_MEMBER, "bot")  # default label: production
    assert unlabelled.value.code == "prompt_label_not_found"
    first = prompts.set_label(engine, A_ADMIN, "bot", "production", 1, reason="launch")
    assert first is not None and (first.from_version, first.to_version) == (None, 1)
    assert prompts.set_label(engine, ADMIN, "bot", "production", 1) is None  # no move
    prompts.set_label(engine, A_ADMIN, "bot", "production", 2)
    prompts.set_label(engine, A_ADMIN, "bot", "production", 3)
    assert prompts.get_version(engine, A_MEMBER, "bot").version == 3
    back = prompts.rollback(engine, ADMIN, "bot", "production", reason="bad answers")
    assert (back.action, back.from_version, back.to_version) == ("rollback", 3, 2)
    # A second rollback walks further back instead of undoing the first.
    assert prompts.rollback(engine, A_ADMIN, "bot", "production").to_version == 1
    with pytest.raises(InvalidRequestError) as nothing:
        prompts.rollback(engine, A_ADMIN, "bot", "production")
    assert nothing.value.code == "nothing_to_roll_back"
    assert prompts.get_version(engine, A_MEMBER, "bot").version == 1
    history = prompts.label_history(engine, A_ADMIN, "bot", label="production")
    assert [(m.action, m.from_version, m.to_version, m.actor) for m in history] == [
        ("rollback", 2, 1, "key_a_admin"),
        ("rollback", 3, 2, "key_admin"),
        ("set", 2, 3, "key_a_admin"),
        ("set", 1, 2, "key_a_admin"),
        ("set", None, 1, "key_a_admin"),
    ]
    assert history[1].reason == "bad answers" and history[-1].reason == "launch"
    # Every move is audited and logged as a prompt change for incidents.
    actions = [e["action"] for e in list_audit(engine, object_type="prompt")]
    assert actions.count("prompt.label.set") == 3 and actions.count("prompt.label.rollback") == 2
    changes = list_changes(engine, kind="prompt")
    assert [c.subject for c in changes] == ["bot@1", "bot@2", "bot@3", "bot@2", "bot@1"]
    assert changes[-1].action == "added" and changes[0].team_id == "team_a"
    assert "rollback production: v2 -> v1" in changes[0].summary
    with pytest.raises(NotFoundError):
        prompts.set_label(engine, A_ADMIN, "bot", "staging", 9)
    with pytest.raises(InvalidRequestError):
        prompts.set_label(engine, A_ADMIN, "bot", "Bad Label", 1)
    with pytest.raises(InvalidRequestError):
        prompts.set_label(engine, A_ADMIN, "bot", "latest", 1)


class _RefuseAbove:
    """A gate that refuses any version above ``limit`` (a stand-in for an eval suite)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: list[ProposedMove] = []

    def check(self, connection: Connection, move: ProposedMove) -> None:
        self.seen.append(move)
        if move.to_version > self.limit:
            raise GateRefusedError("suite failed", {"suite": "smoke", "passed": False})


def test_a_gate_refuses_a_move_and_the_refusal_is_kept(engine: Engine) -> None:
    for text in ("one {{ name }}", "two {{ name }}"):
        prompts.create_version(engine, ADMIN, "gated", _content(text))
    gate = _RefuseAbove(1)
    prompts.set_label(engine, ADMIN, "gated", "production", 1, gates=[gate])
    with pytest.raises(GateRefusedError):
        prompts.set_label(engine, ADMIN, "gated", "production", 2, gates=[gate])
    assert prompts.get_version(engine, ADMIN, "gated").version == 1
    assert gate.seen[-1].from_version == 1 and gate.seen[-1].to_version == 2
    history = prompts.label_history(engine, ADMIN, "gated")
    assert [(m.action, m.to_version) for m in history] == [("refused", 2), ("set", 1)]
    assert history[0].evidence == {"suite": "smoke", "passed": False}
    # A refused attempt is not a change and is not a step a rollback returns to.
    assert [c.subject for c in list_changes(engine, kind="prompt")] == ["gated@1"]
    with engine.connect() as connection:
        rows = connection.execute(select(prompt_label_history.c.action)).scalars().all()
    assert sorted(rows) == ["refused", "set"]
