"""Model and deployment changes found at start-up, on SQLite and PostgreSQL: each recorded
once (also by replicas starting together), named by field, never with a secret."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from llmplane.config.platform import PlatformConfig, parse_platform_config
from llmplane.incidents import list_changes, record_config_changes

SECRETS = ("sk-upstream-secret-1", "Bearer hdr-secret-2", "url-password-3", "aws-secret-4")


def _platform(**east: Any) -> PlatformConfig:
    deployment = {
        "name": "openai-east",
        "provider": "openai",
        "api_base": "https://proxy-user:url-password-3@east.example/v1",
        "api_key": "sk-upstream-secret-1",
        "headers": {"Authorization": "Bearer hdr-secret-2"},
        "model": "gpt-4o",
        **east,
    }
    return parse_platform_config(
        {
            "models": [
                {"name": "gpt-4o", "deployments": [deployment, {"provider": "mock"}]},
                {
                    "name": "gemini",
                    "deployments": [
                        {
                            "provider": "litellm",
                            "model": "gemini/gemini-2.5-flash",
                            "litellm_params": {"aws_secret": "aws-secret-4", "stream": True},
                        }
                    ],
                },
            ]
        },
        file="test",
        env={},
    )


def _changes(engine: Engine) -> list[tuple[str, str, str]]:
    return sorted((c.kind, c.subject, c.action) for c in list_changes(engine, limit=1000))


def test_first_start_adds_every_model_and_deployment(engine: Engine) -> None:
    recorded = record_config_changes(engine, _platform())
    assert sorted((c.kind, c.subject, c.action) for c in recorded) == [
        ("deployment", "gemini[0]", "added"),
        ("deployment", "gpt-4o[1]", "added"),
        ("deployment", "openai-east", "added"),
        ("model", "gemini", "added"),
        ("model", "gpt-4o", "added"),
    ]
    assert all(c.actor == "gateway" for c in recorded)
    assert record_config_changes(engine, _platform()) == []
    assert len(_changes(engine)) == 5


def test_a_changed_deployment_is_one_change_naming_its_fields(engine: Engine) -> None:
    record_config_changes(engine, _platform())
    changed = record_config_changes(engine, _platform(timeout_s=30, weight=2))
    assert [(c.kind, c.subject, c.action) for c in changed] == [
        ("deployment", "openai-east", "changed")
    ]
    assert changed[0].summary == "deployment openai-east changed: timeout_s, weight"
    assert record_config_changes(engine, _platform(timeout_s=30, weight=2)) == []


def test_a_new_key_is_not_a_change_but_a_new_url_is(engine: Engine) -> None:
    record_config_changes(engine, _platform())
    assert record_config_changes(engine, _platform(api_key="sk-rotated")) == []
    assert record_config_changes(engine, _platform(headers={"Authorization": "other"})) == []
    moved = record_config_changes(engine, _platform(api_base="https://west.example/v1"))
    assert [c.summary for c in moved] == ["deployment openai-east changed: api_base"]


def test_removed_models_and_deployments(engine: Engine) -> None:
    record_config_changes(engine, _platform())
    smaller = parse_platform_config(
        {"models": [{"name": "gpt-4o", "deployments": [{"provider": "mock"}]}]},
        file="test",
        env={},
    )
    recorded = record_config_changes(engine, smaller)
    assert sorted((c.kind, c.subject, c.action) for c in recorded) == [
        ("deployment", "gemini[0]", "removed"),
        ("deployment", "gpt-4o[0]", "added"),
        ("deployment", "gpt-4o[1]", "removed"),
        ("deployment", "openai-east", "removed"),
        ("model", "gemini", "removed"),
    ]
    assert record_config_changes(engine, smaller) == []


def test_no_secret_reaches_the_store(engine: Engine) -> None:
    record_config_changes(engine, _platform())
    record_config_changes(engine, _platform(api_key="sk-upstream-secret-1x", timeout_s=5))
    with engine.connect() as connection:
        dump = " ".join(
            str(row)
            for table in ("changes", "config_fingerprints", "audit_log")
            for row in connection.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
        )
    assert "east.example" in dump  # the URL is kept, without its credentials
    for secret in SECRETS:
        assert secret not in dump


def test_replicas_starting_together_record_each_change_once(engine: Engine) -> None:
    record_config_changes(engine, _platform())
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            record_config_changes(engine, _platform(timeout_s=12))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [c for c in _changes(engine) if c[2] == "changed"] == [
        ("deployment", "openai-east", "changed")
    ]
