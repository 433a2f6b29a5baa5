"""pytest fixtures of llmplane, registered as the ``llmplane`` pytest11 entry point.

- ``upstream_simulator_session``: one :class:`~llmplane.testing.upstream.UpstreamSimulator`
  for the whole session, started on first use;
- ``upstream_simulator``: that same simulator, reset (no faults, no setting
  overrides, no recorded requests) before each test.

The simulator module is imported only when a fixture is used, so that loading
the plugin costs nothing to test runs that do not need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from llmplane.testing.upstream import UpstreamSimulator

__all__ = ["upstream_simulator", "upstream_simulator_session"]


@pytest.fixture(scope="session")
def upstream_simulator_session() -> Iterator[UpstreamSimulator]:
    """A simulator shared by the whole test session."""
    from llmplane.testing.upstream import UpstreamSimulator

    with UpstreamSimulator() as simulator:
        yield simulator


@pytest.fixture
def upstream_simulator(upstream_simulator_session: UpstreamSimulator) -> UpstreamSimulator:
    """The session's simulator, with no faults, overrides or recorded requests."""
    upstream_simulator_session.reset()
    return upstream_simulator_session
