"""A throwaway PostgreSQL cluster for the store tests, started from the machine's binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.canary import canary
from tests.helpers import free_port


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI and these machines run tests as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def postgres_cluster() -> Iterator[str | None]:
    """Yield a SQLAlchemy URL of a fresh cluster, or ``None`` if no binaries are installed."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        yield None
        return
    # Not under pytest's tmp dir: that is private to root, and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="llmplane-pg-"))
    data = workdir / "pgdata"
    data.mkdir(parents=True)
    # A password (a canary, in every database URL the gateways get), not trust: a URL that
    # leaks it is caught by the secret scan.
    password = canary("PostgreSQL password")
    password_file = workdir / "password"
    password_file.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(data, "postgres")
        shutil.chown(password_file, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-A",
                "scram-sha-256",
                "-U",
                "llmplane",
                f"--pwfile={password_file}",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(data / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://llmplane:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """Create an empty database on the cluster at ``server_url``; return its URL."""
    import uuid

    import sqlalchemy

    name = f"t_{uuid.uuid1().hex}"
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
