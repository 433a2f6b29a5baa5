"""The whole-suite secret scan (tests/canary.py) fails a run that leaks a canary and
passes one that does not: small pytest sessions in a subprocess, with a real gateway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A whole canary as tests/canary.py makes them (the inner run's are its own).
WHOLE_CANARY = re.compile(r"CANARY-[0-9a-f]{6}-[0-9a-f]{16}")

COMMON = """
import json

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.helpers import (
    ADMIN_KEY, PROVIDER_KEY, WRONG_KEY, GatewayProcess, cli, http, openai_client,
    serve_in_process,
)

MODELS = [{"name": "mock", "deployments": [{"provider": "mock"}]}]


def mint(gateway):
    created = cli("keys", "create", "--name", "app", "--json", url=gateway.url)
    return json.loads(created.stdout)["key"]
"""

CLEAN = """
def test_a_gateway_that_keeps_its_secrets(tmp_path):
    with GatewayProcess(tmp_path, MODELS) as gateway:
        key = mint(gateway)
        client = openai_client(base_url=gateway.base_url, api_key=key, max_retries=0)
        assert client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "hi"}]
        ).choices
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=[{"role": "user", "content": ""}])
        assert http("GET", f"{gateway.base_url}/models", key=WRONG_KEY)[0] == 401
        assert http("GET", f"{gateway.url}/metrics")[0] == 200
        assert cli("keys", "list", url=gateway.url).stdout
        print("the key is", key[:8], "…", key[-4:])  # a hint, as admins see keys
"""

LEAKY = """
def _echo_the_key(request: Request) -> JSONResponse:
    said = request.headers["authorization"]
    return JSONResponse({"error": {"message": f"bad key {said}"}}, status_code=401)


def test_a_gateway_log_line(tmp_path):
    with GatewayProcess(tmp_path, MODELS) as gateway:
        mint(gateway)
    with gateway.log.open("a") as log:
        log.write(f'{{"level":"ERROR","message":"refused admin {ADMIN_KEY}"}}\\n')


def test_an_error_body(tmp_path):
    app = Starlette(routes=[Route("/v1/models", _echo_the_key)])
    with serve_in_process(app) as url:
        assert http("GET", f"{url}/v1/models", key=PROVIDER_KEY)[0] == 401
        client = openai_client(base_url=f"{url}/v1", api_key=WRONG_KEY, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


def test_captured_output():
    print("a key nobody registered: sk-lp-" + "Q" * 43)
    print("most of the admin key:", ADMIN_KEY[:-3])
"""


def _run(tmp_path: Path, name: str, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / f"{name}.py").write_text(COMMON + body)
    path = os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    # Only the scan's plugin: the inner run does not depend on what else is installed.
    env = {**os.environ, "PYTHONPATH": path, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.canary", "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )


def test_a_run_whose_outputs_hold_no_secret_passes(tmp_path: Path) -> None:
    result = _run(tmp_path, "test_clean", CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "secrets leaked" not in result.stdout


def test_a_leak_fails_the_run_and_says_what_leaked_where(tmp_path: Path) -> None:
    result = _run(tmp_path, "test_leaks", LEAKY)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "3 passed" in output  # every test passed: the scan alone fails the run
    report = output.split("secrets leaked", 1)[1]
    for line in (
        "- admin key in the log of the gateway ",
        "(started in test_leaks.py::test_a_gateway_log_line)",
        "- provider key in error body (401) of GET /v1/models in test_leaks.py::test_an_error_body",
        "- wrong key sent by a client in error body (401) of GET /v1/models in "
        "test_leaks.py::test_an_error_body",
        "- an llmplane key (found by its shape) in captured stdout call of "
        "test_leaks.py::test_captured_output",
        "- a piece of a canary in captured stdout call of test_leaks.py::test_captured_output",
        "refused admin <admin key: ",
        "bad key Bearer <provider key: ",
    ):
        assert line in report, report
    assert "5 secret(s) found" in report
    # The report names and masks each secret; it never repeats one.
    assert not WHOLE_CANARY.search(report) and "Q" * 43 not in report
