"""``llmplane up --with-phoenix`` end to end: a real gateway starts a real Arize Phoenix,
real traffic goes through, and the spans are read back from Phoenix's REST API.

These run where the ``phoenix`` extra is installed (``dev`` includes it); the last test
runs where it is not."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from llmplane.cli.phoenix import INSTALL_HINT, phoenix_installed
from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, GatewayProcess, free_port, http, openai_client, simulator_model

needs_phoenix = pytest.mark.skipif(
    not phoenix_installed(), reason=f"Arize Phoenix is not installed ({INSTALL_HINT})"
)
# Phoenix takes tens of seconds to start on a busy machine (a bound, not a measurement).
START_S = 240
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SECRETS = (ADMIN_KEY, "sk-upstream-secret", "a question for phoenix", "a stream for phoenix")


def _network_hook(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Env that makes the gateway and Phoenix (its child) record every connection or name
    lookup they make that is not loopback, and the file they write them to."""
    hook = tmp_path / "hook"
    hook.mkdir()
    seen = tmp_path / "outbound.txt"
    (hook / "sitecustomize.py").write_text(
        "import sys\n"
        "LOOPBACK = ('127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1', b'localhost')\n"
        "def _hook(event, args):\n"
        "    if event == 'socket.connect':\n"
        "        host = args[1][0] if isinstance(args[1], tuple) else None\n"
        "    elif event == 'socket.getaddrinfo':\n"
        "        host = args[0]\n"
        "    else:\n"
        "        return\n"
        "    if host is not None and host not in LOOPBACK:\n"
        f"        with open({str(seen)!r}, 'a') as out:\n"
        "            out.write(f'{event} {args!r}\\n')\n"
        "sys.addaudithook(_hook)\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": pythonpath}, seen


def _phoenix_pid(gateway: GatewayProcess) -> int:
    """The Phoenix child of the ``llmplane up`` process."""
    import psutil

    assert gateway.process is not None
    for child in psutil.Process(gateway.process.pid).children():
        if "llmplane.cli._phoenix_server" in child.cmdline():
            return int(child.pid)
    raise AssertionError(f"no Phoenix child:\n{gateway.log.read_text()}")


def _gone(pid: int, within_s: float = 20) -> bool:
    import psutil

    try:
        psutil.Process(pid).wait(within_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def _spans(phoenix_url: str, count: int, within_s: float = 30) -> list[dict[str, Any]]:
    """The spans of TRACE_ID in Phoenix's default project, once ``count`` have arrived (the
    gateway exports in batches, Phoenix inserts in batches)."""
    query = urllib.parse.urlencode({"trace_id": TRACE_ID, "limit": 100})
    deadline = time.monotonic() + within_s
    while True:
        status, _, body = http("GET", f"{phoenix_url}/v1/projects/default/spans?{query}", key=None)
        spans = body["data"] if status == 200 else []
        if len(spans) >= count or time.monotonic() > deadline:
            return list(spans)
        time.sleep(0.5)


@needs_phoenix
@pytest.mark.timeout(START_S + 120)
def test_gateway_spans_reach_phoenix_in_the_callers_trace(
    tmp_path: Path, upstream_simulator: UpstreamSimulator
) -> None:
    env, outbound = _network_hook(tmp_path)
    phoenix_port = free_port()
    phoenix_url = f"http://127.0.0.1:{phoenix_port}"
    gateway = GatewayProcess(
        tmp_path,
        [simulator_model("sim", upstream_simulator.url)],
        env=env,
        args=["--with-phoenix", "--phoenix-port", str(phoenix_port)],
        ready_timeout_s=START_S,
    )
    with gateway:
        phoenix_pid = _phoenix_pid(gateway)
        client = openai_client(base_url=gateway.base_url, api_key=ADMIN_KEY, max_retries=0)

        def headers(n: int) -> dict[str, str]:
            return {"traceparent": f"00-{TRACE_ID}-{n:016x}-01", "x-request-id": f"phx-{n}"}

        client.chat.completions.create(
            model="sim",
            messages=[{"role": "user", "content": "a question for phoenix"}],
            extra_headers=headers(1),
        )
        stream = client.chat.completions.create(
            model="sim",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "a stream for phoenix"}],
            extra_headers=headers(2),
        )
        assert list(stream)
        upstream_simulator.add_faults({"kind": "status", "status": 500, "count": 1})
        status, _, _ = http(
            "POST",
            f"{gateway.base_url}/chat/completions",
            {"model": "sim", "messages": [{"role": "user", "content": "x"}]},
            headers=headers(3),
        )
        assert status == 502

        spans = _spans(phoenix_url, 3)
        ledger = {
            request_id: (prompt, completion)
            for request_id, prompt, completion in gateway.sql(
                "SELECT request_id, SUM(prompt_tokens), SUM(completion_tokens) "
                "FROM usage_ledger WHERE request_id LIKE 'phx-%' GROUP BY request_id"
            )
        }
        import psutil

        phoenix = psutil.Process(phoenix_pid)
        listening = {
            conn.laddr.ip
            for conn in phoenix.net_connections("inet")
            if conn.status == psutil.CONN_LISTEN
        }
        phoenix_env = phoenix.environ()
    assert gateway.process is not None and gateway.process.returncode == 0
    assert _gone(phoenix_pid), "Phoenix outlived its gateway"

    by_request = {span["attributes"]["llmplane.request_id"]: span for span in spans}
    assert sorted(by_request) == ["phx-1", "phx-2", "phx-3"]
    for n, request_id in enumerate(sorted(by_request), start=1):
        span = by_request[request_id]
        attributes = span["attributes"]
        assert span["context"]["trace_id"] == TRACE_ID
        assert span["parent_id"] == f"{n:016x}"
        assert span["name"] == "chat sim"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["gen_ai.request.model"] == "sim"
        assert attributes["llmplane.stream"] is (n == 2)
    for request_id in ("phx-1", "phx-2"):
        attributes = by_request[request_id]["attributes"]
        assert attributes["gen_ai.provider.name"] == "openai"
        assert attributes["gen_ai.response.model"] == "sim"
        tokens = (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"])
        assert tokens == ledger[request_id]
        assert tokens[1] > 0
        assert by_request[request_id]["status_code"] != "ERROR"
    failed = by_request["phx-3"]
    assert failed["status_code"] == "ERROR"
    assert failed["attributes"]["http.response.status_code"] == 502
    assert failed["attributes"]["error.type"]
    stored = json.dumps(spans)
    assert [secret for secret in SECRETS if secret in stored] == []
    # Phoenix listened on loopback only (its UI and both OTLP receivers) …
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}
    # … and neither it nor the gateway reached past this machine.
    assert not outbound.exists(), outbound.read_text()
    assert phoenix_env["PHOENIX_TELEMETRY_ENABLED"] == "false"
    assert ADMIN_KEY not in phoenix_env.values()  # Phoenix is not given llmplane's secrets


@needs_phoenix
@pytest.mark.timeout(START_S + 60)
def test_phoenix_stops_when_the_gateway_fails_to_start(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, args=["--with-phoenix", "--phoenix-port", str(free_port())])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", gateway.port))
        taken.listen()
        with gateway.log.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llmplane",
                    "up",
                    "--port",
                    str(gateway.port),
                    "--data-dir",
                    str(gateway.data_dir),
                    *gateway.args,
                ],
                env=gateway.env,
                stdout=log,
                stderr=log,
            )
        gateway.process = process
        deadline = time.monotonic() + START_S
        phoenix_pid = None
        while phoenix_pid is None and process.poll() is None and time.monotonic() < deadline:
            try:
                phoenix_pid = _phoenix_pid(gateway)
            except AssertionError:
                time.sleep(0.2)
        assert phoenix_pid is not None, gateway.log.read_text()
        assert process.wait(START_S) != 0
    assert _gone(phoenix_pid), "Phoenix outlived a gateway that failed"
    assert "ready in" in gateway.log.read_text()  # Phoenix had started


@needs_phoenix
@pytest.mark.timeout(START_S + 60)
def test_phoenix_stops_itself_when_the_gateway_is_killed(tmp_path: Path) -> None:
    gateway = GatewayProcess(
        tmp_path,
        args=["--with-phoenix", "--phoenix-port", str(free_port())],
        ready_timeout_s=START_S,
    )
    with gateway:
        phoenix_pid = _phoenix_pid(gateway)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait()
        assert _gone(phoenix_pid), "Phoenix outlived a killed gateway"


@needs_phoenix
def test_a_busy_phoenix_port_stops_up_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _up(tmp_path, "--with-phoenix", "--phoenix-port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "--phoenix-port" in result.stderr
    assert "ready: listening" not in result.stdout + result.stderr


@pytest.mark.skipif(phoenix_installed(), reason="Arize Phoenix is installed here")
def test_without_phoenix_up_says_how_to_install_it(tmp_path: Path) -> None:
    result = _up(tmp_path, "--with-phoenix")
    assert result.returncode == 2
    assert INSTALL_HINT in result.stderr
    assert result.stdout == ""  # said before anything started
    assert not (tmp_path / "data").exists()


def _up(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LLMPLANE_ADMIN_KEY": ADMIN_KEY}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "llmplane",
            "up",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
