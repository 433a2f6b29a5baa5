"""``llmplane.yaml``: the documented shape loads; every mistake names file, key path and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmplane.config.platform import load_platform_config
from llmplane.errors import ConfigError
from tests.canary import canary

EXAMPLE = """
models:
  - name: gpt-4o-mini                 # what clients ask for
    deployments:
      - provider: openai              # any OpenAI-compatible upstream
        api_base: ${OPENAI_BASE_URL:-https://api.openai.com/v1}
        api_key: ${OPENAI_API_KEY}
        model: gpt-4o-mini
  - name: local-llama
    deployments:
      - provider: openai              # vLLM / TGI / Ollama / llama.cpp speak this too
        api_base: http://127.0.0.1:8000/v1
        api_key: none
        model: meta-llama/Llama-3.1-8B-Instruct
    price: {input_per_mtok: 0.05, output_per_mtok: 0.10}   # internal price for self-hosted
  - name: mock
    deployments: [{provider: mock}]
    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmplane.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_loads(tmp_path: Path) -> None:
    secret = canary("provider key", "sk-")
    config = load_platform_config(_write(tmp_path, EXAMPLE), {"OPENAI_API_KEY": secret})
    assert [m.name for m in config.models] == ["gpt-4o-mini", "local-llama", "mock"]
    openai_deployment = config.models[0].deployments[0]
    assert openai_deployment.api_base == "https://api.openai.com/v1"
    assert openai_deployment.upstream_key() == secret
    assert secret not in repr(config)
    assert config.models[1].deployments[0].upstream_key() is None
    assert config.models[1].price is not None and config.models[1].price.output_per_mtok == 0.1


def test_a_litellm_deployment_keeps_its_params_secret(tmp_path: Path) -> None:
    text = (
        "models:\n  - name: claude-on-bedrock\n    deployments:\n"
        "      - provider: litellm\n"
        "        model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0\n"
        "        litellm_params:\n"
        "          aws_region_name: eu-west-1\n"
        "          aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}\n"
        "          drop_params: true\n"
    )
    aws_secret = canary("AWS secret key", "aws-")
    config = load_platform_config(_write(tmp_path, text), {"AWS_SECRET_ACCESS_KEY": aws_secret})
    params = config.models[0].deployments[0].litellm_params
    assert params["drop_params"] is True
    secret = params["aws_secret_access_key"]
    assert hasattr(secret, "get_secret_value") and secret.get_secret_value() == aws_secret
    assert aws_secret not in repr(config)


def test_env_default_is_overridden_by_the_environment(tmp_path: Path) -> None:
    config = load_platform_config(
        _write(tmp_path, EXAMPLE),
        {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9000/v1"},
    )
    assert config.models[0].deployments[0].api_base == "http://127.0.0.1:9000/v1"


def test_defaults_without_a_file() -> None:
    assert [m.name for m in load_platform_config(None, {}).models] == ["mock", "mock-embed"]
    with_openai = load_platform_config(None, {"OPENAI_API_KEY": "sk-x"})
    names = [m.name for m in with_openai.models]
    assert "gpt-4o-mini" in names and "text-embedding-3-small" in names


@pytest.mark.parametrize(
    ("text", "key_path", "reason"),
    [
        (EXAMPLE, "models[0].deployments[0].api_key", "OPENAI_API_KEY is not set"),
        (
            "models:\n  - name: a\n    deployments:\n      - provider: openai\n",
            "models[0].deployments[0]",
            "api_base is required",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - provider: bedrock-ish\n",
            "models[0].deployments[0].provider",
            "'openai', 'azure', 'anthropic', 'litellm' or 'mock'",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - {provider: litellm, model: gemini}\n",
            "models[0].deployments[0]",
            "provider 'litellm' needs model: LiteLLM's provider/model string",
        ),
        (
            "models:\n  - name: a\n    deployments:\n"
            "      - {provider: mock, litellm_params: {aws_region_name: eu-west-1}}\n",
            "models[0].deployments[0]",
            "litellm_params is for provider 'litellm'",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - {provider: mock, colour: red}\n",
            "models[0].deployments[0].colour",
            "unknown key",
        ),
        ("models:\n  - name: a\n    deployments: []\n", "models[0].deployments", "at least 1"),
        (
            "models:\n  - {name: a, deployments: [{provider: mock}]}\n"
            "  - {name: a, deployments: [{provider: mock}]}\n",
            None,
            "defined twice",
        ),
        (
            "models:\n  - name: a\n    deployments: [{provider: mock}]\n"
            "    price: {input_per_mtok: -1, output_per_mtok: 1}\n",
            "models[0].price.input_per_mtok",
            "greater than or equal to 0",
        ),
        (
            "models:\n  - {name: a, deployments: [{provider: mock, name: eu}]}\n"
            "  - {name: b, deployments: [{provider: mock, name: eu}]}\n",
            None,
            "deployment name 'eu' is used twice (models 'a' and 'b')",
        ),
        (
            "models:\n  - name: a\n    deployments: [{provider: mock, responses_api: native}]\n",
            "models[0].deployments[0]",
            "only as a bridge",
        ),
        (
            "models:\n  - name: a\n    deployments:\n      - {provider: openai, "
            "api_base: 'http://x/v1', responses_api: sometimes}\n",
            "models[0].deployments[0].responses_api",
            "'native' or 'bridge'",
        ),
        (
            "models:\n  - name: a\n    deployments: [{provider: mock}]\n"
            "    slo: {window_days: 7}\n",
            "models[0].slo",
            "an slo needs at least one of ttft_p95_ms, latency_p95_ms, error_rate",
        ),
        (
            "models:\n  - name: a\n    deployments: [{provider: mock, slo: {error_rate: 5}}]\n",
            "models[0].deployments[0].slo.error_rate",
            "less than 1",
        ),
        ("models: [unclosed\n", None, "invalid YAML at line 2"),
        ("- just\n- a list\n", None, "must contain a mapping"),
    ],
)
def test_errors_name_file_key_path_and_reason(
    tmp_path: Path, text: str, key_path: str | None, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_platform_config(path, {})
    assert caught.value.file == str(path)
    assert caught.value.key_path == key_path
    assert reason in caught.value.reason


def test_a_deployment_slo_overrides_its_models(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "models:\n  - name: a\n    slo: {ttft_p95_ms: 800, error_rate: 0.01}\n"
        "    deployments:\n      - {provider: mock}\n"
        "      - {provider: mock, name: a-eu, slo: {latency_p95_ms: 2000, window_days: 7}}\n"
        "  - {name: b, deployments: [{provider: mock}]}\n",
    )
    slos = load_platform_config(path, {}).deployment_slos()
    assert set(slos) == {"a[0]", "a-eu"}
    assert (slos["a[0]"].ttft_p95_ms, slos["a[0]"].error_rate, slos["a[0]"].window_days) == (
        800,
        0.01,
        30,
    )
    assert (slos["a-eu"].latency_p95_ms, slos["a-eu"].error_rate) == (2000, None)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_platform_config(tmp_path / "absent.yaml", {})


def test_up_refuses_to_start_on_a_bad_config(tmp_path: Path) -> None:
    path = _write(tmp_path, "models:\n  - name: a\n    deployments: [{provider: nope}]\n")
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
    )
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "models[0].deployments[0].provider" in result.stderr
