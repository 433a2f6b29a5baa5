"""Shared fixtures: a real gateway process in front of the upstream simulator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from llmplane.store import create_engine, migrate
from llmplane.testing.upstream import UpstreamSimulator
from tests import canary
from tests.helpers import GatewayProcess, close_sdk_clients, simulator_model
from tests.postgres import fresh_database, postgres_cluster
from tests.redis_server import redis_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_configure(config: pytest.Config) -> None:
    """Turn on the whole-suite secret scan (tests/canary.py): the run fails if a canary
    secret reaches an output of the platform."""
    if not config.pluginmanager.has_plugin("tests.canary"):
        config.pluginmanager.register(canary, "tests.canary")


@pytest.fixture(scope="session")
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream_simulator_session: UpstreamSimulator,
) -> Iterator[GatewayProcess]:
    """One shared gateway: ``mock``, ``mock-embed`` and ``sim`` (the simulator).

    Its store is SQLite, or a fresh PostgreSQL database when ``LLMPLANE_TEST_STORE`` is
    ``postgresql`` (``make test`` runs the gateway and CLI tests both ways).
    """
    tmp: Path = tmp_path_factory.mktemp("gateway")
    env = {"LLMPLANE_MAX_REQUEST_BODY_BYTES": "65536"}
    if os.environ.get("LLMPLANE_TEST_STORE") == "postgresql":
        env["LLMPLANE_DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres_url"))
    models = [
        {
            "name": "mock",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        },
        {
            "name": "mock-embed",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.0},
        },
        simulator_model("sim", upstream_simulator_session.url),
        simulator_model("sim-slow", upstream_simulator_session.url, timeout_s=0.5),
        simulator_model("down", "http://127.0.0.1:9/v1"),
    ]
    process = GatewayProcess(tmp, models, env=env)
    with process:
        yield process


@pytest.fixture
def sim(upstream_simulator: UpstreamSimulator) -> UpstreamSimulator:
    """The simulator behind the shared gateway, reset for this test."""
    return upstream_simulator


def _throwaway(server: Iterator[str | None], required_by: str, package: str) -> Iterator[str]:
    """Yield a server's URL; skip where its binaries are missing, unless CI requires them."""
    url = next(server)
    if url is None:
        if os.environ.get(required_by):
            pytest.fail(f"{package} is not installed (apt-get install {package})")
        pytest.skip(f"{package} is not installed (apt-get install {package})")
    yield url
    with contextlib.suppress(StopIteration):
        next(server)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster."""
    yield from _throwaway(postgres_cluster(), "LLMPLANE_REQUIRE_POSTGRES", "postgresql")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A store with no tables yet on SQLite and on PostgreSQL (a fresh database per test)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = fresh_database(request.getfixturevalue("postgres_url"))
    store = create_engine(url)
    yield store
    store.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """A migrated store on SQLite and on PostgreSQL (a fresh database per test)."""
    migrate(empty_engine)
    return empty_engine


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway Redis server."""
    yield from _throwaway(redis_server(), "LLMPLANE_REQUIRE_REDIS", "redis-server")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    """A client of the throwaway Redis, emptied for this test."""
    from llmplane.accounting.redis_counters import connect

    client = connect(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def _close_sdk_clients() -> Iterator[None]:
    """Close the SDK clients a test made with ``tests.helpers.openai_client``."""
    yield
    close_sdk_clients()
