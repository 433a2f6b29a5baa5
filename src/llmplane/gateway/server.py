"""Run the gateway under uvicorn (uvloop + httptools): the process behind ``llmplane up``."""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn

from llmplane.config.platform import PlatformConfig
from llmplane.config.settings import Settings
from llmplane.gateway.app import build_services, create_app
from llmplane.incidents import record_config_changes
from llmplane.store import create_engine, migrate

log = logging.getLogger("llmplane.gateway")

_GIL_SWITCH_INTERVAL_S = 0.0005


def run_gateway(settings: Settings, platform: PlatformConfig, admin_key: str) -> None:
    """Migrate the store, record the model and deployment changes since the last start,
    then serve until SIGINT/SIGTERM; in-flight streams finish and the ledger is flushed
    before the process exits."""
    engine = create_engine(settings.resolved_database_url())
    migrate(engine)
    try:
        record_config_changes(engine, platform)
    except Exception as exc:  # noqa: BLE001 - the change log must not keep traffic out
        # Nothing was marked recorded that was not: the next start records the rest.
        log.warning("recording configuration changes failed: %s", type(exc).__name__)
    app = create_app(build_services(settings, platform, engine, admin_key))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        proxy_headers=False,
        # One line per request is the JSON request log's (llmplane.requests); uvicorn's
        # records propagate to the handler of `llmplane up` (formatted and scrubbed).
        access_log=False,
        log_config=None,
        log_level="warning",
        server_header=False,
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s) or None,
    )
    # The ledger writer thread runs Python between its database calls; a short switch
    # interval bounds how long a request waits for the GIL (p99 at low concurrency).
    sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)
    # Everything loaded so far lives for the whole process: keep the cyclic GC from
    # rescanning it on every full collection (multi-millisecond pauses otherwise).
    gc.collect()
    gc.freeze()
    # uvicorn re-raises SIGINT/SIGTERM once its graceful shutdown is done; by then the
    # shutdown was orderly, so exit 0 rather than die by the signal.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_cleanly)
    try:
        _Server(config).run()
    finally:
        engine.dispose()


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("ready: listening on http://%s:%d/v1", self.config.host, self.config.port)


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)
