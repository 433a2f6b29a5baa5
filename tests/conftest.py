"""Shared fixtures: a real gateway process in front of the upstream simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import GatewayProcess, simulator_model

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    """One shared gateway: ``mock``, ``mock-embed`` and ``sim`` (the simulator)."""
    tmp: Path = tmp_path_factory.mktemp("gateway")
    models = [
        {"name": "mock", "deployments": [{"provider": "mock"}],
         "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        {"name": "mock-embed", "deployments": [{"provider": "mock"}],
         "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.0}},
        simulator_model("sim", upstream_simulator_session.url),
        simulator_model("sim-slow", upstream_simulator_session.url, timeout_s=0.5),
        simulator_model("down", "http://127.0.0.1:9/v1"),
    ]
    process = GatewayProcess(tmp, models, env={"LLMPLANE_MAX_REQUEST_BODY_BYTES": "65536"})
    with process:
        yield process


@pytest.fixture
def sim(upstream_simulator: UpstreamSimulator) -> UpstreamSimulator:
    """The simulator behind the shared gateway, reset for this test."""
    return upstream_simulator
