"""Starting a real ``llmplane up`` process for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from llmplane.gateway.token_counters import counter_for
from llmplane.gateway.tokens import count_prompt
from tests import canary

# Canaries (tests/canary.py): the whole run is scanned for them when it ends.
ADMIN_KEY = canary.canary("admin key", "sk-lp-admin-")
PROVIDER_KEY = canary.canary("provider key", "sk-upstream-")
# A key no one was given, as a client would send by mistake: a secret all the same.
WRONG_KEY = canary.canary("wrong key sent by a client", "sk-lp-")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reserved_prompt_tokens(body: bytes, provider: str = "openai", model: str = "sim-model") -> int:
    """Prompt tokens the gateway reserves for ``body`` on a deployment of ``model`` (the
    simulator's ``sim-model`` is an unknown model: the documented estimate)."""
    return count_prompt(json.loads(body), counter_for(provider, model))[0]


def simulator_model(
    name: str, api_base: str, *, routing: dict[str, Any] | None = None, **deployment: Any
) -> dict[str, Any]:
    """A model served by the upstream simulator (provider key :data:`PROVIDER_KEY`).

    Without ``routing`` (the model's retries, fallbacks, …) it makes no retries, so that
    tests see each upstream failure as it is."""
    return {
        **(routing if routing is not None else {"retries": 0}),
        "name": name,
        "deployments": [
            {
                "provider": "openai",
                "api_base": api_base,
                "api_key": PROVIDER_KEY,
                "model": "sim-model",
                **deployment,
            }
        ],
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


class GatewayProcess:
    """``llmplane up`` in a subprocess, on a free port, with its own data dir; ``args`` are
    more options of ``llmplane up`` (``--with-phoenix``, …)."""

    def __init__(
        self,
        tmp: Path,
        models: list[dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        ready_timeout_s: float = 30,
    ) -> None:
        self.args = args or []
        self.ready_timeout_s = ready_timeout_s
        self.data_dir = tmp / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config: Path | None = None
        if models is not None:
            self.config = tmp / "llmplane.yaml"
            self.config.write_text(yaml.safe_dump({"models": models}))
        self.env = {**os.environ, "LLMPLANE_ADMIN_KEY": ADMIN_KEY, **(env or {})}
        self.env.pop("LLMPLANE_CONFIG", None)
        self.log = tmp / "gateway.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        """Start and wait until ``/health/ready`` answers."""
        args = [
            sys.executable,
            "-m",
            "llmplane",
            "up",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config is not None:
            args += ["--config", str(self.config)]
        canary.watch_file(self.log, "the log of the gateway")
        args += self.args
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"gateway not ready in {self.ready_timeout_s:.0f} s:\n{self.log.read_text()}"
        )

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    @property
    def base_url(self) -> str:
        """What the openai SDK takes as ``base_url``."""
        return f"{self.url}/v1"

    @property
    def db_path(self) -> Path:
        """The SQLite store (when no database URL is set)."""
        return self.data_dir / "llmplane.db"

    @property
    def store_url(self) -> str:
        """The gateway's store: its database URL, or the SQLite file."""
        return self.env.get("LLMPLANE_DATABASE_URL") or f"sqlite:///{self.db_path}"

    def sql(self, statement: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of one query against the gateway's store (``:name`` parameters)."""
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.store_url)
        try:
            with engine.connect() as connection:
                result = connection.execute(sqlalchemy.text(statement), params)
                return [tuple(row) for row in result]
        finally:
            engine.dispose()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def cli(
    *args: str, url: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the ``llmplane`` CLI against a gateway."""
    full_env = {**os.environ, "LLMPLANE_URL": url, "LLMPLANE_ADMIN_KEY": ADMIN_KEY, **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "llmplane", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if args[:2] in (("keys", "create"), ("keys", "rotate")) and result.returncode == 0:
        canary.register_minted(result.stdout)  # where a new key is meant to be shown
    else:
        canary.scan(result.stdout, f"stdout of llmplane {args[0]}")
    canary.scan(result.stderr, f"stderr of llmplane {args[0]}")
    if check and result.returncode != 0:
        raise AssertionError(f"llmplane {' '.join(args)} failed:\n{result.stderr}")
    return result


def http(
    method: str,
    url: str,
    body: bytes | dict[str, Any] | None = None,
    key: str | None = ADMIN_KEY,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One raw HTTP call: status, lower-cased headers and the parsed JSON (or text) body."""
    import json
    import urllib.error

    data = json.dumps(body).encode() if isinstance(body, dict) else body
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), exc.headers
    lowered = {k.lower(): v for k, v in got.items()}
    scan_answer(method, url, status, raw)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return status, lowered, parsed


def scan_answer(method: str, url: str, status: int, raw: bytes) -> None:
    """Hand an answer of the platform to the secret scan: error bodies, ``/metrics`` and
    admin API answers are scanned, except the one place a key is meant to be shown, the
    answer that mints or rotates it, which registers it."""
    path = urllib.parse.urlsplit(url).path
    if status >= 400:
        canary.scan(raw, f"error body ({status}) of {method} {path}")
    elif method == "POST" and path.startswith("/admin/keys"):
        canary.register_minted(raw.decode(errors="replace"))
    elif path.endswith("/metrics") or path.startswith("/admin/"):
        canary.scan(raw, f"answer to {method} {path}")


def scan_error_body(response: Any) -> None:
    """httpx response hook of the test clients: scan an error body for secrets."""
    if response.status_code >= 400:
        response.read()
        scan_answer(response.request.method, str(response.request.url), response.status_code,
                     response.content)  # fmt: skip


async def scan_error_body_async(response: Any) -> None:
    """:func:`scan_error_body` for async clients."""
    if response.status_code >= 400:
        await response.aread()
        scan_answer(response.request.method, str(response.request.url), response.status_code,
                     response.content)  # fmt: skip


def usage_row(
    request_id: str,
    cost_nanousd: int,
    *,
    model: str = "mock",
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    **attribution: Any,
) -> Any:
    """A ledger row of a successful chat call (attribution: key_id, team_id, …)."""
    from datetime import UTC, datetime

    from llmplane.accounting.ledger import UsageRecord

    return UsageRecord(
        request_id=request_id,
        created_at=datetime.now(UTC),
        model=model,
        deployment=f"{model}[0]",
        provider="mock",
        endpoint="chat.completions",
        stream=False,
        status=200,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=0,
        cost_nanousd=cost_nanousd,
        latency_ms=1.0,
        **attribution,
    )


async def record_spend(engine: Any, cost_nanousd: int, **attribution: str) -> None:
    """Write one ledger row of ``cost_nanousd`` attributed to ``key_id``/``team_id``/…"""
    from llmplane.accounting.ledger import UsageLedger

    ledger = UsageLedger(engine)
    ledger.start()
    ledger.record(
        usage_row(
            f"spent-{cost_nanousd}-{sorted(attribution.items())}",
            cost_nanousd,
            prompt_tokens=1,
            completion_tokens=1,
            **attribution,
        )
    )
    await ledger.close()


def spread_rows(count: int, start: Any, days: int, seed: int = 1) -> list[Any]:
    """Ledger rows at random times in ``days`` days from ``start``, attributed at random to
    teams, services, keys, users, models and deployments (or to none); some at the exact
    start of an hour, some written with another UTC offset, some failed, some tagged."""
    import random
    from datetime import timedelta, timezone

    rng = random.Random(seed)
    india = timezone(timedelta(hours=5, minutes=30))
    rows = []
    for i in range(count):
        created = start + timedelta(seconds=rng.randrange(days * 86400), microseconds=i)
        if i % 11 == 0:
            created = created.replace(minute=0, second=0, microsecond=0)
        if i % 7 == 0:
            created = created.astimezone(india)
        model = rng.choice(["mock", "sim", "big"])
        row = usage_row(
            f"req_{seed}_{i}",
            rng.randrange(1, 10**9),
            model=model,
            prompt_tokens=rng.randrange(1, 500),
            completion_tokens=rng.randrange(500),
            key_id=rng.choice(["key_a", "key_b", "key_c", None]),
            team_id=rng.choice(["team_x", "team_y", "team_gone", None]),
            service_id=rng.choice(["svc_1", "svc_2", None]),
            user_id=rng.choice(["alice", "bob", None]),
            tags=rng.choice([{"feature": "search"}, {"feature": "chat", "env": "prod"}, None]),
        )
        row.created_at = created
        row.deployment = f"{model}[{rng.randrange(2)}]"
        row.status = rng.choice([200, 200, 200, 429, 500])
        row.cached_tokens = rng.randrange(50)
        row.latency_ms = rng.random() * 100
        rows.append(row)
    return rows


async def write_rows(engine: Any, rows: list[Any], batch_size: int = 64) -> Any:
    """Write ``rows`` through the usage ledger's writer; return the ledger for its counters."""
    from llmplane.accounting.ledger import UsageLedger

    ledger = UsageLedger(engine, batch_size=batch_size, flush_interval_s=0.01)
    ledger.start()
    for row in rows:
        ledger.record(row)
    await ledger.close()
    return ledger


_sdk_clients: list[Any] = []


def openai_client(**options: Any) -> Any:
    """An ``openai.OpenAI`` client that is closed when the test ends (the ``conftest``
    fixture ``_close_sdk_clients``), so no socket outlives its test; its error bodies go
    to the secret scan."""
    import openai

    hooks = {"response": [scan_error_body]}
    client = openai.OpenAI(http_client=openai.DefaultHttpxClient(event_hooks=hooks), **options)
    _sdk_clients.append(client)
    return client


def async_openai_client(**options: Any) -> Any:
    """An ``openai.AsyncOpenAI`` client whose error bodies go to the secret scan (the
    caller closes it)."""
    import openai

    hooks = {"response": [scan_error_body_async]}
    return openai.AsyncOpenAI(
        http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks), **options
    )


def anthropic_client(**options: Any) -> Any:
    """An ``anthropic.Anthropic`` client, closed when the test ends, whose error bodies
    go to the secret scan."""
    import anthropic

    hooks = {"response": [scan_error_body]}
    client = anthropic.Anthropic(
        http_client=anthropic.DefaultHttpxClient(event_hooks=hooks), **options
    )
    _sdk_clients.append(client)
    return client


def close_sdk_clients() -> None:
    """Close every client made by :func:`openai_client` so far."""
    while _sdk_clients:
        _sdk_clients.pop().close()


@contextlib.contextmanager
def serve_in_process(app: Any) -> Iterator[str]:
    """Serve an ASGI ``app`` (lifespan on) with uvicorn in a thread; yields its root URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, log_config=None, lifespan="on", loop="uvloop")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def leave_during_call(
    url: str, body: dict[str, Any], request_id: str, after_s: float = 0.5
) -> float:
    """POST ``body`` to ``url`` as the admin and hang up after ``after_s`` (before any
    answer); returns the ``time.time()`` of hanging up."""
    import asyncio

    import aiohttp

    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "x-request-id": request_id}

    async def leave() -> float:
        async with aiohttp.ClientSession(headers=headers) as session:
            try:
                async with asyncio.timeout(after_s):
                    await session.post(url, json=body)
            except TimeoutError:
                return time.time()
        raise AssertionError(f"the call to {url} answered within {after_s}s")

    return asyncio.run(leave())


def first_disconnect(sim: Any, within_s: float = 2.0) -> float | None:
    """When the simulator first saw a client (the gateway) hang up, waiting ``within_s``."""
    deadline = time.monotonic() + within_s
    while not sim.disconnects and time.monotonic() < deadline:
        time.sleep(0.02)
    return sim.disconnects[0][1] if sim.disconnects else None
