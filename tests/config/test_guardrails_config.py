"""The ``guardrails:`` section of ``llmplane.yaml``: shapes and references checked at load,
detectors built at start, every error naming the file and the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmplane.config.guardrails import GuardrailsConfig
from llmplane.config.platform import load_platform_config, parse_platform_config
from llmplane.errors import ConfigError
from llmplane.guardrails.policy import build_policies

BLOCK = {"detector": "blocklist", "options": {"terms": ["x"]}, "action": "block"}


def _error(guardrails: dict[str, Any], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_platform_config({"guardrails": guardrails}, file="llmplane.yaml", env=env or {})
    return caught.value


def test_a_full_section_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "llmplane.yaml"
    path.write_text(
        """
guardrails:
  hash_secret: ${HASH_SECRET}
  policies:
    strict:
      on_error: closed
      timeout_ms: 200
      input:
        - {detector: blocklist, options: {terms: [project falcon]}, action: block}
        - {detector: blocklist, options: {patterns: ['\\d{4}']}, action: hash, sources: [user]}
      output:
        - {detector: blocklist, options: {terms: [zebra]}, action: redact, threshold: 0.5}
    relaxed: {}
  teams: {support: strict}
  keys: {batch-key: relaxed}
  default: strict
"""
    )
    config = load_platform_config(path, env={"HASH_SECRET": "s3cret"})
    guardrails = config.guardrails
    assert guardrails.hash_secret is not None
    assert guardrails.hash_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(guardrails)
    policies = build_policies(guardrails, file=str(path))
    strict = policies["strict"]
    assert [rule.id for rule in strict.input] == ["input[0]", "input[1]"]
    assert strict.input[1].sources == frozenset({"user"})
    assert strict.input[0].sources == frozenset({"user", "tool", "document"})
    assert strict.fail_closed and strict.timeout_s == 0.2
    assert policies["relaxed"].input == ()


def test_who_gets_which_policy() -> None:
    config = GuardrailsConfig.model_validate(
        {
            "policies": {"a": {}, "b": {}, "c": {}, "d": {}},
            "teams": {"team_1": "a", "support": "b"},
            "keys": {"key_9": "c", "batch": "d"},
        }
    )
    assert config.policy_for("key_9", "any", "team_1", "support") == "c"  # key id
    assert config.policy_for("key_2", "batch", "team_1", "support") == "d"  # key name
    assert config.policy_for("key_2", "other", "team_1", "support") == "a"  # team id
    assert config.policy_for("key_2", "other", "team_2", "support") == "b"  # team name
    assert config.policy_for("key_2", "other", None, None) is None  # no default
    assert GuardrailsConfig().enabled is False


@pytest.mark.parametrize(
    ("guardrails", "key_path", "reason"),
    [
        ({"teams": {"t": "missing"}}, "guardrails", "teams.t names policy 'missing'"),
        ({"default": "missing"}, "guardrails", "default names policy 'missing'"),
        (
            {"policies": {"p": {"input": [{"detector": "blocklist", "action": "hash"}]}}},
            "guardrails",
            "the hash action needs guardrails.hash_secret",
        ),
        (
            {"policies": {"p": {"output": [{"detector": "pii", "action": "pseudonymize"}]}}},
            "guardrails.policies.p",
            "pseudonymize is an input action",
        ),
        (
            {"policies": {"p": {"output": [{"detector": "pii", "sources": ["user"]}]}}},
            "guardrails.policies.p",
            "sources is for input rules",
        ),
        (
            {"policies": {"p": {"input": [{"detector": "pii", "action": "drop"}]}}},
            "guardrails.policies.p.input[0].action",
            "",
        ),
        (
            {"policies": {"p": {"input": [{"detector": "pii", "treshold": 1}]}}},
            "guardrails.policies.p.input[0].treshold",
            "unknown key",
        ),
        (
            {"policies": {"p": {"input": [{"detector": "pii", "threshold": 2}]}}},
            "guardrails.policies.p.input[0].threshold",
            "",
        ),
        ({"policies": {"p": {"on_error": "maybe"}}}, "guardrails.policies.p.on_error", ""),
    ],
)
def test_bad_sections_name_the_key(guardrails: dict[str, Any], key_path: str, reason: str) -> None:
    error = _error(guardrails)
    assert error.file == "llmplane.yaml"
    assert error.key_path == key_path
    assert reason in error.reason


@pytest.mark.parametrize(
    ("rule", "key_path", "reason"),
    [
        ({"detector": "nope"}, "guardrails.policies.p.input[0].detector", "unknown detector"),
        (
            {"detector": "blocklist", "options": {"terms": []}},
            "guardrails.policies.p.input[0].options",
            "needs terms or patterns",
        ),
        (
            {"detector": "blocklist", "options": {"colour": "red"}},
            "guardrails.policies.p.input[0].options",
            "colour",
        ),
    ],
)
def test_detectors_that_cannot_be_built_name_the_rule(
    rule: dict[str, Any], key_path: str, reason: str
) -> None:
    config = GuardrailsConfig.model_validate({"policies": {"p": {"input": [BLOCK, rule]}}})
    # The second rule of the policy: its own index, not the first one's.
    key_path = key_path.replace("input[0]", "input[1]")
    with pytest.raises(ConfigError) as caught:
        build_policies(config, file="llmplane.yaml")
    assert (caught.value.file, caught.value.key_path) == ("llmplane.yaml", key_path)
    assert reason in caught.value.reason


def test_a_plugin_that_does_not_import_stops_the_start() -> None:
    config = GuardrailsConfig.model_validate(
        {"plugins": ["tests.guardrails.plugin_detectors", "no_such_plugin_module"]}
    )
    with pytest.raises(ConfigError) as caught:
        build_policies(config, file="llmplane.yaml")
    assert caught.value.key_path == "guardrails.plugins[1]"
    assert "no_such_plugin_module" in caught.value.reason


def test_up_imports_the_plugins_and_refuses_a_rule_it_cannot_build(tmp_path: Path) -> None:
    path = tmp_path / "llmplane.yaml"
    path.write_text(
        """
guardrails:
  plugins: [tests.guardrails.plugin_detectors]
  policies:
    p:
      input: [{detector: test_email, options: {colour: red}}]
  default: p
"""
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmplane",
            "up",
            "--config",
            str(path),
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],  # where the plugin module is importable
    )
    assert result.returncode == 2, result.stderr
    # The plugin was imported (the detector is known); its option is refused by key path.
    assert f"{path}: guardrails.policies.p.input[0].options" in result.stderr
    assert "colour" in result.stderr
    assert "Traceback" not in result.stderr
