"""``llmplane up`` records the model and deployment changes of its config file: once per
change, also when two gateways start together on one store, and never a secret."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import GatewayProcess, cli
from tests.postgres import fresh_database

_NOWHERE = "http://127.0.0.1:9/v1"


def _models(timeout_s: float = 600.0) -> list[dict[str, Any]]:
    return [
        {"name": "mock", "deployments": [{"provider": "mock"}]},
        {
            "name": "upstream",
            "deployments": [
                {
                    "name": "openai-east",
                    "provider": "openai",
                    "api_base": _NOWHERE,
                    "api_key": "sk-upstream-secret",
                    "timeout_s": timeout_s,
                }
            ],
        },
    ]


def _changes(gateway: GatewayProcess) -> list[tuple[Any, ...]]:
    return gateway.sql("SELECT kind, subject, action, summary FROM changes ORDER BY id")


def _restart(gateway: GatewayProcess, models: list[dict[str, Any]]) -> None:
    assert gateway.config is not None
    gateway.config.write_text(yaml.safe_dump({"models": models}))
    with gateway:
        pass


@pytest.fixture
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The gateways' store: SQLite, or PostgreSQL as the shared gateway's (``make test``)."""
    if os.environ.get("LLMPLANE_TEST_STORE") == "postgresql":
        return {"LLMPLANE_DATABASE_URL": fresh_database(request.getfixturevalue("postgres_url"))}
    return {}


def test_restarts_record_each_config_change_once(tmp_path: Path, store_env: dict[str, str]) -> None:
    gateway = GatewayProcess(tmp_path, _models(), env=store_env)
    with gateway:
        listed = cli("changes", "list", "--json", url=gateway.url).stdout
    assert '"subject": "openai-east"' in listed
    assert sorted(row[:3] for row in _changes(gateway)) == [
        ("deployment", "mock[0]", "added"),
        ("deployment", "openai-east", "added"),
        ("model", "mock", "added"),
        ("model", "upstream", "added"),
    ]
    _restart(gateway, _models())
    assert len(_changes(gateway)) == 4  # unchanged: nothing recorded

    _restart(gateway, _models(timeout_s=30))
    changes = _changes(gateway)
    assert changes[4:] == [
        ("deployment", "openai-east", "changed", "deployment openai-east changed: timeout_s")
    ]

    # Two replicas start together on the same store with the next version of the file.
    (tmp_path / "twin").mkdir()
    twin = GatewayProcess(tmp_path / "twin", _models(timeout_s=20), env=store_env)
    twin.data_dir = gateway.data_dir
    assert gateway.config is not None
    gateway.config.write_text(yaml.safe_dump({"models": _models(timeout_s=20)}))
    starters = [threading.Thread(target=g.start) for g in (gateway, twin)]
    try:
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join()
    finally:
        for process in (gateway, twin):
            process.stop()
    assert [row[:3] for row in _changes(gateway)[5:]] == [("deployment", "openai-east", "changed")]

    dump = " ".join(
        str(row)
        for table in ("changes", "config_fingerprints", "audit_log")
        for row in gateway.sql(f"SELECT * FROM {table}")  # noqa: S608
    )
    assert "openai-east" in dump and "sk-upstream-secret" not in dump
