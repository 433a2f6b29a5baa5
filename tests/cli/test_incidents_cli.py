"""``llmplane incidents`` and ``llmplane changes`` against a running gateway, and the
incidents in ``llmplane report``."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import GatewayProcess, cli


def _json(gateway: GatewayProcess, *args: str) -> Any:
    return json.loads(cli(*args, "--json", url=gateway.url).stdout)


def test_incidents_from_opening_to_the_report(gateway: GatewayProcess) -> None:
    before = _json(gateway, "report", "--weeks", "1")["incidents"]
    cli("teams", "create", "cli-incidents", url=gateway.url)
    change = _json(
        gateway,
        "changes",
        "record",
        "prompt",
        "support-bot@7",
        "--summary",
        "friendlier tone",
        "--action",
        "added",
        "--actor",
        "release-bot",
    )
    assert (change["kind"], change["subject"], change["actor"]) == (
        "prompt",
        "support-bot@7",
        "release-bot",
    )
    listed = _json(gateway, "changes", "list", "--since", "1h", "--kind", "prompt")
    assert listed[0]["id"] == change["id"]

    from_prompt = _json(
        gateway,
        "incidents",
        "open",
        "support bot rude to customers",
        "--severity",
        "sev2",
        "--cause",
        f"change:{change['id']}",
        "--team",
        "cli-incidents",
    )
    assert from_prompt["cause"] == {
        "kind": "prompt",
        "subject": "support-bot@7",
        "change_id": change["id"],
    }
    opened = cli("incidents", "open", "sim latency", "--cause", "model:sim", url=gateway.url).stdout
    assert "cause model:sim" in opened
    number = opened.split()[2]
    unknown = _json(gateway, "incidents", "open", "something odd", "--severity", "sev4")
    assert unknown["cause"] is None

    open_ids = {i["id"] for i in _json(gateway, "incidents", "list", "--open")}
    assert {from_prompt["id"], int(number), unknown["id"]} <= open_ids
    closed = _json(gateway, "incidents", "close", number, "--resolution", "rerouted")
    assert (closed["status"], closed["resolution"]) == ("closed", "rerouted")
    assert int(number) not in {i["id"] for i in _json(gateway, "incidents", "list", "--open")}
    again = cli("incidents", "close", number, url=gateway.url, check=False)
    assert again.returncode == 1 and "already closed" in again.stderr
    bad = cli("incidents", "open", "x", "--cause", "gpt-4o", url=gateway.url, check=False)
    assert bad.returncode == 1 and "KIND:SUBJECT" in bad.stderr
    table = cli("incidents", "list", url=gateway.url).stdout
    assert "prompt:support-bot@7" in table and "rerouted" not in table

    after = _json(gateway, "report", "--weeks", "1")["incidents"]
    assert after["opened"] - before["opened"] == 3
    assert after["closed"] - before["closed"] == 1
    assert after["open_now"] - before["open_now"] == 2
    by_cause = {row["kind"]: row["incidents"] for row in after["by_cause"]}
    was = {row["kind"]: row["incidents"] for row in before["by_cause"]}
    assert by_cause["prompt"] - was["prompt"] == 1 and by_cause["model"] - was["model"] == 1
    team = _json(gateway, "report", "--weeks", "1", "--team", "cli-incidents")["incidents"]
    assert (team["opened"], team["attributable_to_changes"], team["attributable_share"]) == (
        1,
        1,
        1.0,
    )
    text = cli("report", "--weeks", "1", url=gateway.url).stdout
    assert "Incidents since" in text and "PER CHANGE" in text
    assert "from prompt, model and deployment changes" in text
