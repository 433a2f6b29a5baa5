"""The Phoenix child process of ``llmplane up --with-phoenix`` (``python -m`` this module).

Runs Phoenix's own ``serve`` command with two changes:

- its OTLP/gRPC receiver listens on 127.0.0.1: Phoenix binds it to every interface
  (``[::]``) whatever ``PHOENIX_HOST`` says, which would let anyone on the network write
  spans into an unauthenticated local Phoenix;
- it stops itself when its parent (the gateway) is gone, even a parent killed outright,
  so no Phoenix outlives its ``llmplane up``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

_LOOPBACK = "127.0.0.1"
_PARENT_CHECK_S = 1.0


def _on_loopback(address: str) -> str:
    """``[::]:4317`` (any host, a port) as ``127.0.0.1:4317``."""
    return f"{_LOOPBACK}:{address.rpartition(':')[2]}"


def hold_grpc_to_loopback() -> None:
    """Make every gRPC asyncio server of this process bind its ports on loopback only."""
    import grpc.aio

    make_server = grpc.aio.server

    def loopback_server(*args: Any, **kwargs: Any) -> Any:
        server = make_server(*args, **kwargs)
        add_insecure_port = server.add_insecure_port
        add_secure_port = server.add_secure_port
        server.add_insecure_port = lambda address: add_insecure_port(_on_loopback(address))
        server.add_secure_port = lambda address, credentials: add_secure_port(
            _on_loopback(address), credentials
        )
        return server

    grpc.aio.server = loopback_server


def stop_with_parent() -> None:
    """SIGTERM this process (Phoenix then shuts down gracefully) once its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def main() -> None:
    """Serve Phoenix, configured by the ``PHOENIX_*`` environment its parent set."""
    hold_grpc_to_loopback()
    stop_with_parent()
    from phoenix.server.main import main as phoenix_main

    sys.argv = ["phoenix", "serve"]
    phoenix_main()


if __name__ == "__main__":
    main()
