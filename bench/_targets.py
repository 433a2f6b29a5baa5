"""The servers under test: the upstream simulator, the llmplane gateway and LiteLLM's proxy."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from _procs import (
    BenchError,
    Server,
    ensure_port_free,
    start_server,
    stop_server,
    wait_ready,
)

BENCH_DIR = Path(__file__).resolve().parent
LITELLM_VENV = BENCH_DIR / ".venv-litellm"
UPSTREAM_PORT = 9000
LLMPLANE_PORT = 4000
LITELLM_PORT = 4001
REDIS_PORT = 6390
OTLP_PORT = 4318
MODEL = "sim"

# The cores are fixed by the bench's design (see README): servers under test on 0,
# the simulator and wrk on 1.
GATEWAY_CORE = 0
UPSTREAM_CORE = 1
LOAD_CORE = 1


@dataclass
class Target:
    """One row group of the report: where to send requests and which process to watch."""

    name: str
    base_url: str
    headers: dict[str, str]
    server: Server
    notes: list[str] = field(default_factory=list)
    admin_env: dict[str, str] | None = None  # for ``llmplane spend`` after the run
    otlp_stats_url: str | None = None  # the OTLP sink's counters, when spans are exported

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"


def chat_body(*, stream: bool) -> dict[str, object]:
    """The request every cell sends: a short conversation, 16 completion tokens."""
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello to the benchmark in a few words."},
        ],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
    return body


def _llmplane_bin() -> Path:
    candidate = Path(sys.executable).parent / "llmplane"
    if not candidate.exists():
        raise BenchError(
            f"{candidate} not found; run the bench with the project's venv: "
            ".venv/bin/python bench/run.py"
        )
    return candidate


def preflight(target: Target, *, stream: bool) -> None:
    """Send one request and insist on a 200, so that a broken setup fails loudly, not as 0 req/s."""
    data = json.dumps(chat_body(stream=stream)).encode()
    headers = {"Content-Type": "application/json", **target.headers}
    request = urllib.request.Request(  # noqa: S310 (always http://127.0.0.1)
        target.chat_url, data=data, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (127.0.0.1)
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise BenchError(
            f"{target.name}: {target.chat_url} answered HTTP {exc.code}: "
            f"{exc.read()[:500]!r}\nlog {target.server.log_path}:\n{target.server.log_tail()}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BenchError(f"{target.name}: {target.chat_url} failed: {exc}") from exc
    expected = b"data:" if stream else b'"choices"'
    if expected not in payload:
        raise BenchError(f"{target.name}: unexpected response: {payload[:500]!r}")


def start_upstream(stack: contextlib.ExitStack, log_dir: Path, latency_ms: float) -> Target:
    """The simulator on the load generator's core; it is also the ``direct`` target."""
    ensure_port_free(UPSTREAM_PORT)
    argv = [str(_llmplane_bin()), "dev", "upstream", "--host", "127.0.0.1"]
    argv += ["--port", str(UPSTREAM_PORT), "--latency-ms", str(latency_ms)]
    server = start_server("upstream", argv, core=UPSTREAM_CORE, env=os.environ, log_dir=log_dir)
    stack.callback(stop_server, server)
    wait_ready(server, f"http://127.0.0.1:{UPSTREAM_PORT}/health", timeout_s=30)
    base = f"http://127.0.0.1:{UPSTREAM_PORT}"
    return Target("direct", base, {"Authorization": "Bearer sk-sim"}, server)


def _write_llmplane_config(path: Path) -> None:
    path.write_text(
        "models:\n"
        f"  - name: {MODEL}\n"
        "    deployments:\n"
        "      - provider: openai\n"
        f"        api_base: http://127.0.0.1:{UPSTREAM_PORT}/v1\n"
        "        api_key: sk-sim\n"
        "        model: sim-model\n"
        "    price: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
    )


# Budgets on key and team and an rpm limit, all far above what a run can use, so that every
# request goes through admission and settlement without being refused.
LIMIT_ARGS = (
    "--team",
    "bench-team",
    "--service",
    "bench-service",
    "--budget-usd",
    "1000000",
    "--rpm",
    "100000000",
    "--tpm",
    "100000000000",
)
_FAR = ("--rpm", "100000000", "--tpm", "100000000000")


def _create_virtual_key(env: dict[str, str], notes: list[str], *extra: str) -> str:
    """A normal (non-admin) key, so the measured auth path is the one product teams use."""
    completed = subprocess.run(
        [str(_llmplane_bin()), "keys", "create", "--name", "bench", "--json", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    if completed.returncode == 0:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(json.loads(completed.stdout)["key"])
    notes.append(
        "`llmplane keys create` failed, so requests used the admin key: "
        f"{(completed.stderr or completed.stdout).strip()[:200]}"
    )
    return env["LLMPLANE_ADMIN_KEY"]


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(_llmplane_bin()), *args], capture_output=True, env=env, timeout=30, check=True
    )


def start_llmplane_limits(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane`, with a team budget, a key budget and rpm/tpm limits on the
    key, its service, its team and the team's model."""
    return start_llmplane(stack, work_dir, limits=True)


def start_llmplane_redis(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane_limits`, with budgets and rpm counted in a Redis server
    (started here, on the upstream's core, as replicas would share it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("redis-server is missing: apt-get install -y redis-server")
    ensure_port_free(REDIS_PORT)
    argv = [
        binary,
        "--port",
        str(REDIS_PORT),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work_dir),
    ]
    redis = start_server("redis", argv, core=UPSTREAM_CORE, env=os.environ, log_dir=work_dir)
    stack.callback(stop_server, redis)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", REDIS_PORT)) == 0:
                break
        time.sleep(0.05)
    return start_llmplane(
        stack, work_dir, limits=True, redis_url=f"redis://127.0.0.1:{REDIS_PORT}/0"
    )


def start_llmplane_no_telemetry(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane`, with telemetry off (no Prometheus metrics, no request
    log lines, no stored request logs, no spans), to measure what the default telemetry
    costs per request."""
    return start_llmplane(stack, work_dir, metrics=False, request_log=False)


def start_llmplane_logs_full(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane`, with the key's team storing full request logs (bodies as
    sent), to measure what storing them costs."""
    return start_llmplane(stack, work_dir, log_bodies="full")


def start_llmplane_logs_redacted(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane`, with the key's team storing redacted request logs (PII
    and secrets replaced, by Presidio in the writer thread)."""
    return start_llmplane(stack, work_dir, log_bodies="redacted")


def start_llmplane_metrics_only(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane`, with Prometheus metrics but no request log lines, to tell
    the two observers' costs apart."""
    return start_llmplane(stack, work_dir, request_log=False)


def start_llmplane_tracing(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """As :func:`start_llmplane` (metrics and request log lines), with spans exported over
    OTLP/HTTP to ``bench/otlp_sink.py``, a receiver that counts and discards them, started
    here on the load generator's core (so its CPU is not the gateway's)."""
    ensure_port_free(OTLP_PORT)
    argv = [sys.executable, str(BENCH_DIR / "otlp_sink.py"), "--port", str(OTLP_PORT)]
    sink = start_server("otlp-sink", argv, core=LOAD_CORE, env=os.environ, log_dir=work_dir)
    stack.callback(stop_server, sink)
    base = f"http://127.0.0.1:{OTLP_PORT}"
    wait_ready(sink, f"{base}/health", timeout_s=30)
    target = start_llmplane(stack, work_dir, otel_endpoint=base)
    target.otlp_stats_url = f"{base}/stats"
    return target


def start_llmplane(
    stack: contextlib.ExitStack,
    work_dir: Path,
    *,
    limits: bool = False,
    redis_url: str | None = None,
    metrics: bool = True,
    request_log: bool = True,
    otel_endpoint: str | None = None,
    log_bodies: str | None = None,
) -> Target:
    """``llmplane up`` on the gateway core, with a fresh SQLite ledger and a virtual key
    (and the default telemetry: Prometheus metrics and request log lines; spans too when
    ``otel_endpoint`` is given)."""
    ensure_port_free(LLMPLANE_PORT)
    config = work_dir / "llmplane.yaml"
    _write_llmplane_config(config)
    admin_key = f"sk-bench-admin-{secrets.token_hex(16)}"
    # A developer's own LLMPLANE_* settings (database URL, config) must not leak into the bench.
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMPLANE_")}
    env |= {
        "LLMPLANE_ADMIN_KEY": admin_key,
        "LLMPLANE_URL": f"http://127.0.0.1:{LLMPLANE_PORT}",
    }
    argv = [str(_llmplane_bin()), "up", "--host", "127.0.0.1", "--port", str(LLMPLANE_PORT)]
    name = "llmplane+redis" if redis_url else "llmplane+limits" if limits else "llmplane"
    if redis_url:
        env["LLMPLANE_REDIS_URL"] = redis_url
    # Tracing is on only in llmplane+tracing: no other target sets an OTLP endpoint.
    if otel_endpoint:
        env["LLMPLANE_OTEL_ENDPOINT"] = otel_endpoint
        name = "llmplane+tracing"
    if not metrics:
        env["LLMPLANE_METRICS"] = "false"
    if not request_log:
        env["LLMPLANE_REQUEST_LOG"] = "false"
        name = f"{name}-{'metrics-only' if metrics else 'no-telemetry'}"
    if not metrics and not request_log:
        env["LLMPLANE_STORED_LOGS"] = "false"
    if log_bodies is not None:
        name = f"{name}-logs-{log_bodies}"
    data_dir = work_dir / f"{name}-data"
    argv += ["--config", str(config), "--data-dir", str(data_dir)]
    server = start_server("llmplane", argv, core=GATEWAY_CORE, env=env, log_dir=work_dir)
    stack.callback(stop_server, server)
    wait_ready(server, f"http://127.0.0.1:{LLMPLANE_PORT}/health/ready", timeout_s=60)
    notes: list[str] = []
    if limits:
        _cli(
            env,
            "teams",
            "create",
            "bench-team",
            *_FAR,
            "--model-limit",
            f"{MODEL}:rpm=100000000,tpm=100000000000",
        )
        _cli(env, "services", "create", "bench-service", "--team", "bench-team", *_FAR)
        _cli(
            env,
            "budgets",
            "set",
            "--scope",
            "team",
            "--target",
            "bench-team",
            "--limit-usd",
            "1000000",
            "--period",
            "month",
        )
        notes.append(
            "team budget, key budget (month), and rpm + tpm limits on the key, its service, "
            "its team and the team's use of the model; none is reached"
        )
    key_args: tuple[str, ...] = LIMIT_ARGS if limits else ()
    if log_bodies is not None:
        _cli(env, "teams", "create", "bench-logs", "--log-bodies", log_bodies)
        key_args = (*key_args, "--team", "bench-logs")
        notes.append(f"the key's team stores {log_bodies} request logs")
    key = _create_virtual_key(env, notes, *key_args)
    base = f"http://127.0.0.1:{LLMPLANE_PORT}"
    return Target(name, base, {"Authorization": f"Bearer {key}"}, server, notes, env)


def ledger_note(target: Target, completed_requests: int) -> str | None:
    """Compare the gateway's usage ledger with what wrk saw complete (proof the ledger was on)."""
    if target.admin_env is None:
        return None
    time.sleep(1.0)  # the ledger is flushed in batches off the request path
    completed = subprocess.run(
        [str(_llmplane_bin()), "spend", "--json"],
        capture_output=True,
        text=True,
        env=target.admin_env,
        timeout=60,
        check=False,
    )
    try:
        rows = int(json.loads(completed.stdout)["total"]["requests"])
    except (ValueError, KeyError, TypeError):
        return f"`llmplane spend --json` failed: {completed.stderr.strip()[:200]}"
    return (
        f"usage ledger holds {rows:,} requests; wrk completed {completed_requests:,} "
        "(warmups and preflights included; requests in flight when wrk stops are not counted)"
    )


def tracing_note(target: Target, completed_requests: int) -> str | None:
    """Compare the spans the OTLP sink received with what wrk saw complete (proof that
    tracing was on and kept up)."""
    if target.otlp_stats_url is None:
        return None
    time.sleep(1.5)  # spans leave the gateway once a second
    try:
        with urllib.request.urlopen(target.otlp_stats_url, timeout=10) as response:  # noqa: S310
            stats = json.load(response)
    except (OSError, ValueError) as exc:
        return f"the OTLP sink's counters could not be read: {exc}"
    return (
        f"the OTLP sink received {stats['spans']:,} spans in {stats['requests']:,} requests "
        f"({stats['bytes'] / max(stats['spans'], 1):,.0f} bytes a span); wrk completed "
        f"{completed_requests:,} (warmups and preflights included)"
    )


def litellm_missing_reason() -> str | None:
    """Why LiteLLM cannot be benchmarked here (with the fix), or None when it can."""
    if (LITELLM_VENV / "bin" / "litellm").exists():
        return None
    return (
        f"LiteLLM skipped: {LITELLM_VENV} not found. Create it with:\n"
        "  python3 -m venv bench/.venv-litellm && "
        "bench/.venv-litellm/bin/pip install 'litellm[proxy]==1.108.7'"
    )


def litellm_version() -> str:
    """The installed LiteLLM version, read from its dist-info (no 4-second import)."""
    for dist in (LITELLM_VENV / "lib").glob("python3*/site-packages/litellm-*.dist-info"):
        return dist.name.removeprefix("litellm-").removesuffix(".dist-info")
    return "unknown"


def start_litellm(stack: contextlib.ExitStack, work_dir: Path) -> Target:
    """LiteLLM's proxy (one uvicorn worker, no database, master key on) on the gateway core."""
    ensure_port_free(LITELLM_PORT)
    master_key = f"sk-bench-master-{secrets.token_hex(16)}"
    config = work_dir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        "      model: openai/sim-model\n"
        f"      api_base: http://127.0.0.1:{UPSTREAM_PORT}/v1\n"
        "      api_key: sk-sim\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "general_settings:\n"
        f"  master_key: {master_key}\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH"}
    }
    env |= {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "DISABLE_ADMIN_UI": "True",
        "NO_DOCS": "True",
    }
    argv = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(LITELLM_PORT), "--num_workers", "1"]
    server = start_server("litellm", argv, core=GATEWAY_CORE, env=env, log_dir=work_dir)
    stack.callback(stop_server, server)
    wait_ready(server, f"http://127.0.0.1:{LITELLM_PORT}/health/liveliness", timeout_s=120)
    base = f"http://127.0.0.1:{LITELLM_PORT}"
    notes = ["no database, so no virtual keys: requests use the master key"]
    return Target("litellm", base, {"Authorization": f"Bearer {master_key}"}, server, notes)
