"""The upstream simulator: a real HTTP server speaking the OpenAI protocol (and Anthropic's
Messages API at ``/v1/messages``), with faults.

It is the test double of the whole project (gateway tests point OpenAI-compatible
deployments at it) and the upstream of the performance benchmark::

    with UpstreamSimulator() as sim:               # a free port, in a background thread
        sim.add_faults({"kind": "status", "status": 503, "retry_after": 2})
        client = openai.OpenAI(base_url=sim.url, api_key="x")
        ...
        assert sim.requests[-1]["body"]["model"] == "sim-model"

From another process, the same is done over HTTP with the control API
(:mod:`llmplane.testing._control`) or per request with an ``x-sim-fault`` header.
``llmplane dev upstream`` runs it standalone through :func:`run_cli`.

The app is plain ASGI (:mod:`llmplane.testing._app`) served by uvicorn with
uvloop and httptools. To cut connections for the ``drop`` and ``break_stream``
faults, the server uses a subclass of uvicorn's httptools protocol that only
adds the connection's transport to each request's scope (the
``llmplane.transport`` extension); the app closes it, so the client sees the
socket close with no response, or a chunked body with no final chunk — never a
500. Idle connections are kept 75 s, longer than client pools keep them, so a
client never reuses a connection the simulator is closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmplane.testing._app import DEFAULT_MODELS, Behaviour, SimulatorApp
from llmplane.testing._asgi import TRANSPORT_EXTENSION
from llmplane.testing._faults import Fault, FaultSpecError

__all__ = [
    "DEFAULT_MODELS",
    "Behaviour",
    "Fault",
    "FaultSpecError",
    "SimulatorApp",
    "UpstreamSimulator",
    "create_app",
    "run_cli",
    "serve",
]

_KEEP_ALIVE_S = 75
_START_TIMEOUT_S = 10.0


class _TransportExposingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the transport in each request's scope."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {TRANSPORT_EXTENSION: {"transport": self.transport}}


def create_app(
    *,
    latency_ms: float = 0,
    ttft_ms: float = 0,
    tokens_per_second: float = 0,
    api_key: str | None = None,
    models: Sequence[str] | None = None,
) -> SimulatorApp:
    """The simulator's ASGI app, for serving it some other way."""
    return SimulatorApp(
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        api_key=api_key,
        models=models,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: SimulatorApp) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=_TransportExposingProtocol,
        lifespan="off",
        access_log=False,
        log_level="warning",
        log_config=None,  # leave the host process's logging alone
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=_KEEP_ALIVE_S,
        timeout_graceful_shutdown=2,
        backlog=4096,
    )
    return uvicorn.Server(config)


async def _run(server: uvicorn.Server, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Serve on ``sock`` until the server exits; a cancelled caller gets a graceful stop."""
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.005)
        if server.started:
            on_ready()
        await asyncio.shield(task)
    finally:
        server.should_exit = True
        await task
        sock.close()


async def serve(
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    latency_ms: float = 0,
    ttft_ms: float = 0,
    tokens_per_second: float = 0,
    api_key: str | None = None,
    models: Sequence[str] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the simulator in this event loop until cancelled or interrupted.

    ``on_ready`` receives the OpenAI base URL (``http://host:port/v1``) once the
    socket listens; ``port=0`` picks a free port.
    """
    app = create_app(
        latency_ms=latency_ms,
        ttft_ms=ttft_ms,
        tokens_per_second=tokens_per_second,
        api_key=api_key,
        models=models,
    )
    sock = _bind(host, port)
    url = _base_url(sock) + "/v1"
    await _run(_server(app), sock, lambda: on_ready(url) if on_ready else None)


def run_cli(
    host: str,
    port: int,
    latency_ms: float = 0,
    ttft_ms: float = 0,
    tokens_per_second: float = 0,
    api_key: str | None = None,
) -> None:
    """Serve in the foreground for ``llmplane dev upstream``, until Ctrl-C."""
    import uvloop  # only the standalone simulator needs its own loop

    def announce(url: str) -> None:
        print(f"upstream simulator listening on {url}", flush=True)

    with (
        contextlib.suppress(KeyboardInterrupt),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(
            serve(
                host,
                port,
                latency_ms=latency_ms,
                ttft_ms=ttft_ms,
                tokens_per_second=tokens_per_second,
                api_key=api_key,
                on_ready=announce,
            )
        )


class UpstreamSimulator:
    """The simulator in a background thread with its own event loop, for tests.

    Faults, settings and recorded requests may be used from any thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0,
        ttft_ms: float = 0,
        tokens_per_second: float = 0,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
    ) -> None:
        self.app = create_app(
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            tokens_per_second=tokens_per_second,
            api_key=api_key,
            models=models,
        )
        self._host = host
        self._port = port
        self._base: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base(self) -> str:
        """The server's root URL, ``http://127.0.0.1:PORT``."""
        if self._base is None:
            raise RuntimeError("the upstream simulator is not started")
        return self._base

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.base + "/v1"

    def start(self) -> UpstreamSimulator:
        """Start serving; returns once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("the upstream simulator is already started")
        sock = _bind(self._host, self._port)
        self._base = _base_url(sock)
        self._server = _server(self.app)
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._serve_in_thread,
            args=(self._server, sock),
            name=f"upstream-simulator {self._base}",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S) or self._error is not None:
            self.stop()
            raise RuntimeError("the upstream simulator failed to start") from self._error
        return self

    def _serve_in_thread(self, server: uvicorn.Server, sock: socket.socket) -> None:
        import uvloop

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_run(server, sock, self._ready.set))
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that called start()
            self._error = exc
        finally:
            sock.close()
            self._ready.set()

    def stop(self) -> None:
        """Stop serving: in-flight requests get up to 2 s to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT_S)
        self._thread = None
        self._server = None

    def __enter__(self) -> UpstreamSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def add_faults(self, *faults: Mapping[str, Any] | Fault) -> None:
        """Queue fault rules (validated first: a bad rule raises ``FaultSpecError``)."""
        self.app.add_faults(*faults)

    def configure(self, **settings: Any) -> None:
        """Override ``latency_ms``, ``ttft_ms`` or ``tokens_per_second`` until reset."""
        self.app.configure(**settings)

    def reset(self) -> None:
        """Clear faults, setting overrides and recorded requests."""
        self.app.reset()

    def clear_requests(self) -> None:
        """Forget the recorded requests (faults and settings stay)."""
        self.app.clear_requests()

    @property
    def disconnects(self) -> list[tuple[str, float]]:
        """(path, time.time()) of each client that closed its connection while its request
        was being delayed (latency or a ``delay`` fault)."""
        return list(self.app.disconnects)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The recorded requests (the last 1000), oldest first."""
        return self.app.recorded_requests()
