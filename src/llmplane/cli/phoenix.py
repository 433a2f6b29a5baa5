"""Arize Phoenix as a child process: the local trace backend of ``llmplane up --with-phoenix``.

Phoenix runs as ``python -m llmplane.cli._phoenix_server`` (Phoenix's own server, held to
loopback and tied to its parent), on 127.0.0.1, with its SQLite store and log file in its
own working directory, and with everything that would reach the internet switched off:
its analytics pixels, external web resources (fonts), the agent assistant (it calls a
hosted docs server) and the code sandboxes (Phoenix downloads the WASM one's runtime from
github.com at start unless ``PHOENIX_WASM_BINARY_PATH`` names a file: a placeholder here).
The gateway exports its spans to Phoenix's OTLP/HTTP endpoint, ``{url}/v1/traces``.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from llmplane.errors import ConfigError

INSTALL_HINT = "pip install 'llmplane[phoenix]'"
DEFAULT_PORT = 6006
_HOST = "127.0.0.1"
_LOG_TAIL_CHARS = 3000
# Loopback calls never go through an HTTP proxy set in the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Always set: where Phoenix listens and keeps its state, and nothing leaving the machine.
_PINNED_ENV = {
    "PHOENIX_HOST": _HOST,
    "PHOENIX_TELEMETRY_ENABLED": "false",
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
}
# Off unless the environment says otherwise: features that reach out when they start.
_DEFAULT_ENV = {
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
}
_SANDBOX_ENV = ("PHOENIX_ALLOWED_SANDBOX_PROVIDERS", "PHOENIX_WASM_BINARY_PATH")
_NO_WASM = (
    "Stands in for the CPython WASM runtime of Phoenix's code sandbox, which llmplane\n"
    "turns off (PHOENIX_ALLOWED_SANDBOX_PROVIDERS=NONE): without a file here Phoenix\n"
    "downloads the runtime from github.com each time it starts.\n"
)


def phoenix_installed() -> bool:
    """Whether the ``phoenix`` extra (Arize Phoenix) is installed; asks the package
    metadata, as importing any part of ``phoenix`` loads all of Phoenix."""
    try:
        importlib.metadata.version("arize-phoenix")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


class PhoenixProcess:
    """One Phoenix server on ``127.0.0.1:port``, started and stopped by ``llmplane up``."""

    def __init__(self, working_dir: Path, port: int = DEFAULT_PORT) -> None:
        self.working_dir = working_dir
        self.port = port
        self.url = f"http://{_HOST}:{port}"
        self.log_path = working_dir / "phoenix.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        """The base URL the gateway's OTLP/HTTP exporter is given (it adds ``/v1/traces``)."""
        return self.url

    def start(self) -> None:
        """Start Phoenix (not yet ready: see :meth:`wait_ready`); refuses a busy port."""
        if not phoenix_installed():
            raise ConfigError(f"--with-phoenix needs Arize Phoenix: {INSTALL_HINT}")
        if not _port_free(self.port):
            raise ConfigError(
                f"port {self.port} on {_HOST} is in use; pick another with --phoenix-port"
            )
        self.working_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Phoenix gets no llmplane setting (the admin key among them) and none of the
        # gateway's OTLP exporter settings (Phoenix reads OTEL_EXPORTER_OTLP_ENDPOINT).
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("LLMPLANE_", "OTEL_"))
        }
        env = {
            **_DEFAULT_ENV,
            **inherited,
            **_PINNED_ENV,
            "PHOENIX_PORT": str(self.port),
            # Its OTLP/gRPC receiver, unused by llmplane, needs a port of its own.
            "PHOENIX_GRPC_PORT": str(_free_port()),
            "PHOENIX_WORKING_DIR": str(self.working_dir.resolve()),
        }
        if not any(name in os.environ for name in _SANDBOX_ENV):
            placeholder = self.working_dir / "wasm-sandbox-off.txt"
            placeholder.write_text(_NO_WASM)
            env["PHOENIX_WASM_BINARY_PATH"] = str(placeholder.resolve())
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "llmplane.cli._phoenix_server"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.working_dir,
                # Its own session: Ctrl-C in the terminal reaches the gateway only, which
                # flushes its last spans to Phoenix before stopping it.
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float, on_wait: Callable[[], None] | None = None) -> float:
        """Block until Phoenix answers ``/readyz``; returns the seconds it took. Calls
        ``on_wait`` about once a second meanwhile (progress). Raises :class:`ConfigError`
        with the end of Phoenix's log if it exits or is not ready in ``timeout_s``."""
        process = self._require_started()
        started = time.monotonic()
        last_tick = started
        while (elapsed := time.monotonic() - started) < timeout_s:
            if process.poll() is not None:
                raise ConfigError(f"Phoenix exited with code {process.returncode}{self._tail()}")
            if _answers(f"{self.url}/readyz"):
                return elapsed
            if on_wait is not None and time.monotonic() - last_tick >= 1:
                last_tick = time.monotonic()
                on_wait()
            time.sleep(0.2)
        self.stop()
        raise ConfigError(f"Phoenix was not ready in {timeout_s:.0f} s{self._tail()}")

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM (Phoenix shuts down gracefully) and wait; SIGKILL if it does not."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("PhoenixProcess.start() was not called")
        return self._process

    def _tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return f"; the end of {self.log_path}:\n{text[-_LOG_TAIL_CHARS:]}"


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the server will: a port left in TIME_WAIT by closed connections is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])
