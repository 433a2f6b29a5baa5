"""The hook promotion gates plug into: each gate sees a proposed label move first.

:func:`llmplane.prompts.registry.set_label` asks every gate it is given, inside the
move's transaction, before the label changes. A gate refuses with
:class:`GateRefusedError` and its evidence (e.g. the suite run that failed, the metric
that regressed); the refusal is kept in the label history as a ``refused`` move and the
label stays. Rollbacks never ask gates. The eval harness provides the real gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from llmplane.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class ProposedMove:
    """A label move that has not been made yet."""

    name: str
    team_id: str | None
    label: str
    from_version: int | None
    to_version: int
    actor: str


class GateRefusedError(InvalidRequestError):
    """A gate refused a label move; ``evidence`` says why (JSON-ready, no secrets)."""

    def __init__(self, message: str, evidence: dict[str, Any]) -> None:
        super().__init__(message, param="label", code="promotion_refused")
        self.evidence = evidence


class LabelGate(Protocol):
    """Decides whether a proposed move may happen."""

    def check(self, connection: Connection, move: ProposedMove) -> None:
        """Return to allow the move; raise :class:`GateRefusedError` to refuse it."""
