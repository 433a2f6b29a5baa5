"""Stored request logs through a real gateway: each team policy stores exactly what it says
(none, metadata, redacted, full) for JSON and streamed chat, Responses and Messages; the
logs are found by request id, key, model, team, user and time; a user's logs are deleted
on request (audited); expired logs are purged; no key is ever stored."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import GatewayProcess, cli, http

_ids = itertools.count()

EMAIL, CARD, OPENAI_KEY = (
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "sk-proj-Ab12Cd34Ef56Gh78Ij90",
)
PROMPT = f"My email is {EMAIL}, card {CARD}, my key {OPENAI_KEY}. Call lookup."
# The mock calls a forced tool with arguments built from its schema: these consts put the
# same PII into the completion.
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {
            "type": "object",
            "properties": {
                "email": {"const": EMAIL},
                "card": {"const": CARD},
                "key": {"const": OPENAI_KEY},
            },
        },
    },
}
FORCE_LOOKUP = {"type": "function", "function": {"name": "lookup"}}


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


class Team:
    """A team with a request-log policy and a key (with its own end user)."""

    def __init__(self, gateway: GatewayProcess, bodies: str | None, **fields: Any) -> None:
        self.gateway = gateway
        self.name = _unique(f"logs-{bodies or 'default'}")
        body = {"name": self.name, **fields}
        if bodies is not None:
            body["log_bodies"] = bodies
        status, _, team = http("POST", f"{gateway.url}/admin/teams", body)
        assert status == 201, team
        self.id = team["id"]
        self.key_name = _unique("logs-key")
        status, _, key = http(
            "POST", f"{gateway.url}/admin/keys", {"name": self.key_name, "team": self.name}
        )
        assert status == 201, key
        self.key, self.key_id = key["key"], key["id"]

    def call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        user: str | None = None,
        request_id: str | None = None,
    ) -> tuple[str, Any]:
        """Make one model call; returns its request id and answer (JSON or SSE text)."""
        request_id = request_id or _unique("req-logs")
        headers = {"x-request-id": request_id}
        if user is not None:
            headers["x-llmplane-user"] = user
        status, _, answer = http(
            "POST", f"{self.gateway.url}{path}", body, key=self.key, headers=headers
        )
        assert status == 200, answer
        return request_id, answer

    def log(self, request_id: str) -> dict[str, Any]:
        status, _, row = http("GET", f"{self.gateway.url}/admin/logs/{request_id}")
        assert status == 200, row
        return dict(row)

    def logs(self, query: str = "") -> list[dict[str, Any]]:
        status, _, answer = http("GET", f"{self.gateway.url}/admin/logs?team={self.name}{query}")
        assert status == 200, answer
        return list(answer["data"])


def _chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": "mock",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": PROMPT},
        ],
        "tools": [LOOKUP],
        "tool_choice": FORCE_LOOKUP,
        "temperature": 0.3,
        "max_tokens": 64,
        "stream": stream,
        **extra,
    }


def _sse(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.loads(line[6:]))
    return events


def _stored_text(gateway: GatewayProcess, request_id: str) -> str:
    """Every column of the stored row(s) of a request, as one text."""
    rows = gateway.sql("SELECT * FROM request_logs WHERE request_id = :r", r=request_id)
    assert rows, f"no stored row for {request_id}"
    return " ".join(str(value) for row in rows for value in row)


def test_policy_none_stores_nothing(gateway: GatewayProcess) -> None:
    team = Team(gateway, None)  # the platform default: none
    request_id, _ = team.call("/v1/chat/completions", _chat())
    assert team.logs() == []
    status, _, answer = http("GET", f"{gateway.url}/admin/logs/{request_id}")
    assert status == 404 and answer["error"]["code"] == "request_log_not_found"
    # The call happened and was accounted for: only its log was not kept.
    http("GET", f"{gateway.url}/admin/spend")  # waits for the ledger's writer
    assert (
        gateway.sql("SELECT count(*) FROM usage_ledger WHERE request_id = :r", r=request_id)[0][0]
        == 1
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_policy_metadata_stores_who_what_how_much_and_no_content(
    gateway: GatewayProcess, stream: bool
) -> None:
    team = Team(gateway, "metadata")
    request_id, _ = team.call("/v1/chat/completions", _chat(stream), user="end-user-meta")
    row = team.log(request_id)
    assert row["policy"] == "metadata"
    assert row["request"] is None and row["response"] is None
    assert (row["team_id"], row["key_id"], row["user"]) == (team.id, team.key_id, "end-user-meta")
    assert (row["operation"], row["model"], row["deployment"]) == (
        "chat.completions",
        "mock",
        "mock[0]",
    )
    assert row["status"] == 200 and row["stream"] is stream and row["attempts"] == 1
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["cost_usd"] > 0
    assert row["params"] == {
        "temperature": 0.3,
        "max_tokens": 64,
        "stream": stream,
        "tools": ["lookup"],
        "tool_choice": "lookup",
        "messages": 2,
    }
    stored = _stored_text(gateway, request_id)
    for content in ("mock reply", "terse", EMAIL, CARD, OPENAI_KEY, "lookup\\"):
        assert content not in stored


def _assert_redacted(text: str) -> None:
    for secret in (EMAIL, CARD, OPENAI_KEY):
        assert secret not in text
    for placeholder in ("<EMAIL_ADDRESS>", "<CREDIT_CARD>", "<API_KEY>"):
        assert placeholder in text


def test_policy_redacted_replaces_pii_and_secrets_in_prompt_and_completion(
    gateway: GatewayProcess,
) -> None:
    team = Team(gateway, "redacted")
    request_id, answer = team.call("/v1/chat/completions", _chat())
    # The client got the real thing; the log keeps it redacted.
    arguments = answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert EMAIL in arguments
    row = team.log(request_id)
    assert row["policy"] == "redacted"
    prompt = row["request"]["messages"][1]["content"]
    assert (
        prompt == "My email is <EMAIL_ADDRESS>, card <CREDIT_CARD>, my key <API_KEY>. Call lookup."
    )
    stored_arguments = row["response"]["choices"][0]["message"]["tool_calls"][0]["function"][
        "arguments"
    ]
    _assert_redacted(stored_arguments)
    assert row["request"]["messages"][0]["content"] == "You are terse."  # no PII: kept
    assert row["response"]["usage"] == answer["usage"]
    _assert_redacted(_stored_text(gateway, request_id))


def test_policy_redacted_stream_keeps_the_assembled_answer_redacted(
    gateway: GatewayProcess,
) -> None:
    team = Team(gateway, "redacted")
    request_id, answer = team.call("/v1/chat/completions", _chat(stream=True))
    streamed = "".join(
        call["function"].get("arguments") or ""
        for event in _sse(answer)
        for choice in event.get("choices", [])
        for call in choice["delta"].get("tool_calls") or []
    )
    assert EMAIL in streamed
    row = team.log(request_id)
    message = row["response"]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "lookup"
    _assert_redacted(message["tool_calls"][0]["function"]["arguments"])
    assert row["response"]["choices"][0]["finish_reason"] == "tool_calls"
    _assert_redacted(_stored_text(gateway, request_id))


def test_policy_full_stores_the_bodies_exactly(gateway: GatewayProcess) -> None:
    team = Team(gateway, "full")
    body = {
        "model": "mock",
        "messages": [{"role": "user", "content": PROMPT}],
        "temperature": 0.3,
    }
    request_id, answer = team.call("/v1/chat/completions", body)
    row = team.log(request_id)
    assert row["policy"] == "full" and row["truncated"] is False
    assert row["request"] == body
    assert row["response"] == answer
    assert CARD in answer["choices"][0]["message"]["content"]


def test_policy_full_stream_stores_the_text_the_client_got(gateway: GatewayProcess) -> None:
    team = Team(gateway, "full")
    body = {
        "model": "mock",
        "stream": True,
        "messages": [{"role": "user", "content": f"Tell {EMAIL} about card {CARD}"}],
    }
    request_id, answer = team.call("/v1/chat/completions", body)
    text = "".join(
        choice["delta"].get("content") or ""
        for event in _sse(answer)
        for choice in event.get("choices", [])
    )
    row = team.log(request_id)
    assert row["request"] == body
    assert row["response"]["choices"][0]["message"]["content"] == text
    assert row["response"]["choices"][0]["finish_reason"] == "stop"
    assert CARD in text


def test_policy_full_for_responses_stream_and_messages(gateway: GatewayProcess) -> None:
    team = Team(gateway, "full")
    body = {"model": "mock", "input": f"hello {CARD}", "stream": True}
    request_id, answer = team.call("/v1/responses", body)
    completed = next(e for e in _sse(answer) if e.get("type") == "response.completed")
    row = team.log(request_id)
    assert row["operation"] == "responses" and row["stream"] is True
    assert row["request"] == body
    assert row["response"] == completed["response"]

    body = {"model": "mock", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    request_id, answer = team.call("/v1/messages", body)
    row = team.log(request_id)
    assert row["operation"] == "messages"
    assert (row["request"], row["response"]) == (body, answer)


def test_redacted_messages_stream(gateway: GatewayProcess) -> None:
    team = Team(gateway, "redacted")
    body = {
        "model": "mock",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": f"card {CARD} please"}],
    }
    request_id, answer = team.call("/v1/messages", body)
    streamed = "".join(
        event["delta"].get("text", "")
        for event in _sse(answer)
        if event.get("type") == "content_block_delta"
    )
    assert CARD in streamed
    row = team.log(request_id)
    text = row["response"]["content"][0]["text"]
    assert "<CREDIT_CARD>" in text and CARD not in text
    assert row["request"]["messages"][0]["content"] == "card <CREDIT_CARD> please"


def test_no_key_is_ever_stored(gateway: GatewayProcess) -> None:
    team = Team(gateway, "full")
    body = {
        "model": "mock",
        "messages": [{"role": "user", "content": f"my platform key is {team.key}"}],
    }
    request_id, _ = team.call("/v1/chat/completions", body)
    row = team.log(request_id)
    assert row["request"]["messages"][0]["content"] == "my platform key is <API_KEY>"
    stored = _stored_text(gateway, request_id)
    assert team.key not in stored
    assert team.key[len("sk-lp-") :][:20] not in stored


def test_the_platform_default_policy_the_body_cap_and_the_retention_job(tmp_path: Path) -> None:
    config = {
        "models": [{"name": "mock", "deployments": [{"provider": "mock"}]}],
        "defaults": {"request_logs": {"bodies": "full", "max_body_bytes": 4096}},
    }
    gateway = GatewayProcess(
        tmp_path, config["models"], env={"LLMPLANE_REQUEST_LOGS_PURGE_INTERVAL_S": "0.2"}
    )
    assert gateway.config is not None
    gateway.config.write_text(yaml.safe_dump(config))
    with gateway:
        inherits = Team(gateway, None)
        opted_out = Team(gateway, "none")
        long = "word " * 2000  # 10 kB, more than the 4 KiB kept per body
        request_id, _ = inherits.call(
            "/v1/chat/completions",
            {"model": "mock", "messages": [{"role": "user", "content": long}]},
        )
        row = inherits.log(request_id)
        assert row["policy"] == "full" and row["truncated"] is True
        kept = row["request"]["messages"][0]["content"]
        assert kept.endswith("…[truncated]") and 4096 <= len(kept) < len(long)
        assert row["response"]["choices"][0]["message"]["content"].startswith("This is a mock")
        opted_out.call("/v1/chat/completions", _chat())
        assert opted_out.logs() == []
        # The gateway's own retention job deletes the row once it has expired.
        _expire(gateway, request_id)
        deadline = time.monotonic() + 10
        while http("GET", f"{gateway.url}/admin/logs/{request_id}")[0] != 404:
            assert time.monotonic() < deadline, "the expired row was not purged"
            time.sleep(0.1)


def test_logs_are_found_by_request_id_key_model_user_and_time(gateway: GatewayProcess) -> None:
    team = Team(gateway, "metadata")
    other = Team(gateway, "metadata")
    first, _ = team.call("/v1/chat/completions", _chat(), user="alice")
    second, _ = team.call("/v1/embeddings", {"model": "mock-embed", "input": "a b"}, user="bob")
    theirs, _ = other.call("/v1/chat/completions", _chat(), user="alice")

    assert [r["request_id"] for r in team.logs()] == [second, first]
    assert [r["request_id"] for r in team.logs("&user=alice")] == [first]
    assert [r["request_id"] for r in team.logs("&model=mock-embed")] == [second]
    assert [r["request_id"] for r in team.logs(f"&key={team.key_name}")] == [second, first]
    assert [r["request_id"] for r in team.logs(f"&key={team.key_id}&limit=1")] == [second]
    _, _, by_id = http("GET", f"{gateway.url}/admin/logs?request_id={theirs}")
    assert [(r["request_id"], r["team_id"]) for r in by_id["data"]] == [(theirs, other.id)]
    created = team.logs()[0]["created_at"]
    assert team.logs(f"&until={created.replace('+00:00', 'Z')}") == team.logs("&user=alice")
    assert team.logs("&since=2999-01-01") == []
    for bad in ("0", "1001", "ten"):  # refused, not silently clamped
        status, _, error = http("GET", f"{gateway.url}/admin/logs?limit={bad}")
        assert status == 400 and error["error"]["param"] == "limit", bad

    listed = json.loads(
        cli(
            "logs", "--team", team.name, "--user", "bob", "--since", "1h", "--json", url=gateway.url
        ).stdout
    )
    assert [r["request_id"] for r in listed] == [second]
    table = cli("logs", "--request-id", first, url=gateway.url).stdout
    assert first in table and "alice" in table
    shown = json.loads(cli("logs", "show", first, url=gateway.url).stdout)
    assert shown["request_id"] == first and shown["request"] is None


def test_a_team_admin_reads_only_its_own_teams_logs(gateway: GatewayProcess) -> None:
    team = Team(gateway, "full")
    other = Team(gateway, "full")
    mine, _ = team.call("/v1/chat/completions", _chat())
    theirs, _ = other.call("/v1/chat/completions", _chat())
    status, _, created = http(
        "POST",
        f"{gateway.url}/admin/keys",
        {"name": _unique("logs-admin"), "team": team.name, "role": "team_admin"},
    )
    admin_key = created["key"]
    status, _, answer = http("GET", f"{gateway.url}/admin/logs", key=admin_key)
    assert status == 200 and {r["team_id"] for r in answer["data"]} == {team.id}
    assert http("GET", f"{gateway.url}/admin/logs/{mine}", key=admin_key)[0] == 200
    assert http("GET", f"{gateway.url}/admin/logs/{theirs}", key=admin_key)[0] == 403
    # Request ids are the clients' own: another team reusing one hides nothing of this one.
    other.call("/v1/chat/completions", _chat(), request_id=mine)
    status, _, row = http("GET", f"{gateway.url}/admin/logs/{mine}", key=admin_key)
    assert status == 200 and row["team_id"] == team.id
    assert http("GET", f"{gateway.url}/admin/logs/{mine}")[2]["team_id"] == other.id
    status, _, _ = http("GET", f"{gateway.url}/admin/logs?team={other.name}", key=admin_key)
    assert status == 403
    # It reads its team's policy but cannot change it.
    status, _, shown = http("GET", f"{gateway.url}/admin/teams/{team.name}", key=admin_key)
    assert shown["log_bodies"] == "full"
    status, _, _ = http(
        "PATCH", f"{gateway.url}/admin/teams/{team.name}", {"log_bodies": "none"}, key=admin_key
    )
    assert status == 403


def test_deleting_a_users_logs_removes_only_theirs_and_is_audited(
    gateway: GatewayProcess,
) -> None:
    team = Team(gateway, "full")
    user, bystander = _unique("forget-me"), _unique("keep-me")
    gone = [team.call("/v1/chat/completions", _chat(), user=user)[0] for _ in range(2)]
    kept, _ = team.call("/v1/chat/completions", _chat(), user=bystander)
    result = json.loads(
        cli("logs", "delete", "--user", user, "--yes", "--json", url=gateway.url).stdout
    )
    assert result["deleted"] == 2
    for request_id in gone:
        assert http("GET", f"{gateway.url}/admin/logs/{request_id}")[0] == 404
    assert team.log(kept)["user"] == bystander
    _, _, audit = http("GET", f"{gateway.url}/admin/audit?object_type=user")
    entry = next(e for e in audit["data"] if e["object_id"] == user)
    assert entry["action"] == "request_logs.delete_user" and entry["after"]["deleted"] == 2
    status, _, refused = http("DELETE", f"{gateway.url}/admin/logs")
    assert status == 400 and refused["error"]["param"] == "user"


def test_expired_logs_are_purged_and_the_others_kept(gateway: GatewayProcess) -> None:
    team = Team(gateway, "metadata", log_retention_days=7)
    old, _ = team.call("/v1/chat/completions", _chat())
    fresh, _ = team.call("/v1/chat/completions", _chat())
    row = team.log(fresh)
    assert row["expires_at"][:10] > row["created_at"][:10]
    _expire(gateway, old)
    result = json.loads(cli("logs", "purge", "--json", url=gateway.url).stdout)
    assert result["deleted"] >= 1
    assert http("GET", f"{gateway.url}/admin/logs/{old}")[0] == 404
    assert team.log(fresh)["request_id"] == fresh


def _expire(gateway: GatewayProcess, request_id: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(gateway.store_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text("UPDATE request_logs SET expires_at = :past WHERE request_id = :r"),
                {"past": "2000-01-01 00:00:00.000000", "r": request_id},
            )
    finally:
        engine.dispose()


def test_the_writers_queue_is_in_the_metrics(gateway: GatewayProcess) -> None:
    team = Team(gateway, "metadata")
    team.log(team.call("/v1/chat/completions", _chat())[0])
    status, _, exposition = http("GET", f"{gateway.url}/metrics")
    assert status == 200
    samples = dict(
        line.rsplit(" ", 1)
        for line in exposition.splitlines()
        if line.startswith("llmplane_request_logs")
    )
    assert samples["llmplane_request_logs_queue_depth"] == "0.0"
    assert samples["llmplane_request_logs_dropped_rows_total"] == "0.0"
    assert samples["llmplane_request_logs_rejected_rows_total"] == "0.0"


def test_team_policy_from_the_cli(gateway: GatewayProcess) -> None:
    name = _unique("cli-logs")
    created = json.loads(
        cli(
            "teams",
            "create",
            name,
            "--log-bodies",
            "redacted",
            "--log-retention-days",
            "14",
            "--json",
            url=gateway.url,
        ).stdout
    )
    assert (created["log_bodies"], created["log_retention_days"]) == ("redacted", 14)
    updated = json.loads(
        cli(
            "teams",
            "update",
            name,
            "--log-bodies",
            "default",
            "--log-retention-days",
            "none",
            "--json",
            url=gateway.url,
        ).stdout
    )
    assert (updated["log_bodies"], updated["log_retention_days"]) == (None, None)
    status, _, refused = http(
        "PATCH", f"{gateway.url}/admin/teams/{name}", {"log_bodies": "everything"}
    )
    assert status == 400 and refused["error"]["param"] == "log_bodies"
