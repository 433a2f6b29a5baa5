"""Virtual keys through the CLI against a running gateway."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.helpers import GatewayProcess, cli, http, openai_client


def test_key_lifecycle_with_allowlist(gateway: GatewayProcess) -> None:
    created = json.loads(
        cli(
            "keys", "create", "--name", "search-team", "--models", "mock", "--json", url=gateway.url
        ).stdout
    )
    key = created["key"]
    assert key.startswith("sk-lp-")
    assert created["models"] == ["mock"]

    client = openai_client(base_url=gateway.base_url, api_key=key, max_retries=0)
    assert [m.id for m in client.models.list()] == ["mock"]
    assert client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "hi"}]
    ).choices
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="mock-embed", input="not allowed")

    listed = json.loads(cli("keys", "list", "--json", url=gateway.url).stdout)
    mine = next(k for k in listed if k["id"] == created["id"])
    assert key not in json.dumps(listed)
    assert mine["key_hint"].endswith(key[-4:])

    # Only the hash is stored.
    stored = gateway.sql("SELECT * FROM virtual_keys WHERE id = :id", id=created["id"])
    assert key not in json.dumps(stored, default=str)

    cli("keys", "revoke", created["id"], url=gateway.url)
    deadline = time.monotonic() + 1.0
    status = 200
    while time.monotonic() < deadline:
        status = http("GET", f"{gateway.base_url}/models", key=key)[0]
        if status == 401:
            break
    assert status == 401, "a revoked key must stop working within one second"
    table = cli("keys", "list", "--all", url=gateway.url).stdout
    assert "revoked" in table and "search-team" in table


def test_non_admin_key_cannot_manage_keys(gateway: GatewayProcess) -> None:
    key = json.loads(cli("keys", "create", "--name", "app", "--json", url=gateway.url).stdout)
    status, _, body = http("POST", f"{gateway.url}/admin/keys", {"name": "x"}, key=key["key"])
    assert status == 403
    assert body["error"]["code"] == "admin_only"
    result = cli(
        "keys",
        "create",
        "--name",
        "x",
        url=gateway.url,
        env={"LLMPLANE_ADMIN_KEY": key["key"]},
        check=False,
    )
    assert result.returncode == 1
    assert "admin key" in result.stderr


def test_key_for_unknown_model_is_refused(gateway: GatewayProcess) -> None:
    result = cli(
        "keys", "create", "--name", "typo", "--models", "gtp-4o", url=gateway.url, check=False
    )
    assert result.returncode == 1
    assert "gtp-4o" in result.stderr


def test_revoke_unknown_key_says_so(gateway: GatewayProcess) -> None:
    result = cli("keys", "revoke", "key_doesnotexist", url=gateway.url, check=False)
    assert result.returncode == 1
    assert "No active key" in result.stderr


def test_cli_without_server_tells_what_to_do() -> None:
    result = cli("keys", "list", url="http://127.0.0.1:9", check=False)
    assert result.returncode == 1
    assert "llmplane up" in result.stderr and "LLMPLANE_URL" in result.stderr


def test_rotation_swaps_the_secret_and_keeps_the_key(gateway: GatewayProcess) -> None:
    created = json.loads(
        cli(
            "keys", "create", "--name", "rotating", "--rpm", "1000", "--json", url=gateway.url
        ).stdout
    )
    assert http("GET", f"{gateway.base_url}/models", key=created["key"])[0] == 200
    rotated = json.loads(cli("keys", "rotate", "rotating", "--json", url=gateway.url).stdout)
    assert rotated["id"] == created["id"] and rotated["rpm"] == 1000
    assert rotated["key"] != created["key"]
    assert http("GET", f"{gateway.base_url}/models", key=created["key"])[0] == 401
    assert http("GET", f"{gateway.base_url}/models", key=rotated["key"])[0] == 200
    audit = json.loads(cli("audit", "--type", "key", "--json", url=gateway.url).stdout)
    assert any(e["action"] == "key.rotate" and e["object_id"] == created["id"] for e in audit)
