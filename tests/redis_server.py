"""A throwaway Redis server for the multi-replica tests, started from the machine's binary."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.canary import canary
from tests.helpers import free_port


def redis_server() -> Iterator[str | None]:
    """Yield a ``redis://`` URL of a fresh server, or ``None`` if redis-server is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    workdir = Path(tempfile.mkdtemp(prefix="llmplane-redis-"))
    port = free_port()
    # A password (a canary, in the URL the gateways get): a leak is caught by the scan.
    password = canary("Redis password")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--requirepass",
            password,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"redis://:{password}@127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
