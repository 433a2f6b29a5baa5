"""Readiness follows the store: a gateway whose database is gone says so with a 503."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from tests.helpers import GatewayProcess, http


def test_ready_turns_503_when_the_store_is_gone(tmp_path: Path, postgres_url: str) -> None:
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql("DROP DATABASE IF EXISTS readiness")
        connection.exec_driver_sql("CREATE DATABASE readiness")
    database = postgres_url.rsplit("/", 1)[0] + "/readiness"
    gateway = GatewayProcess(
        tmp_path,
        [{"name": "mock", "deployments": [{"provider": "mock"}]}],
        env={"LLMPLANE_DATABASE_URL": database},
    )
    with gateway:
        assert http("GET", f"{gateway.url}/health/ready", key=None)[0] == 200
        with admin.connect() as connection:
            connection.exec_driver_sql("DROP DATABASE readiness WITH (FORCE)")
        status, _, body = http("GET", f"{gateway.url}/health/ready", key=None)
        assert status == 503
        assert body["error"]["code"] == "store_unavailable"
        assert "readiness" not in body["error"]["message"]  # no connection details leak
        assert http("GET", f"{gateway.url}/health/live", key=None)[0] == 200
    admin.dispose()
