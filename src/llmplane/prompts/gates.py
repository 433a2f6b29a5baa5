"""The hook promotion gates plug into: each gate sees a proposed label move first.

:func:`llmplane.prompts.registry.set_label` asks every gate it is given, inside the
move's transaction, before the label changes. A gate refuses with
:class:`GateRefusedError` and its evidence (e.g. the suite run that failed, the metric
that regressed); the refusal is kept in the label history as a ``refused`` move and the
label stays. Rollbacks never ask gates. The eval harness provides the real gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, NotFoundError
from llmplane.prompts.registry import aware, readable_prompt, writable_prompt
from llmplane.store.tables import prompt_label_gates


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


# --- Stored gate configuration: which suite a label of a prompt requires -------------------

MAX_AGE_DAYS = 3650


@dataclass(frozen=True, slots=True)
class GateConfig:
    """A label's promotion gate: ``suite`` must have passed against the version being
    promoted (and, with ``require_no_regression``, not regressed against the version the
    label holds), in a run at most ``max_age_days`` old when set."""

    name: str
    label: str
    suite: str
    require_no_regression: bool
    max_age_days: int | None
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "object": "prompt.gate",
            "name": self.name,
            "label": self.label,
            "suite": self.suite,
            "require_no_regression": self.require_no_regression,
            "max_age_days": self.max_age_days,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


def _config(row: RowMapping, name: str) -> GateConfig:
    return GateConfig(
        name=name,
        label=row["label"],
        suite=row["suite"],
        require_no_regression=bool(row["require_no_regression"]),
        max_age_days=row["max_age_days"],
        created_by=row["created_by"],
        created_at=aware(row["created_at"]),
    )


def stored_gate(connection: Connection, prompt_id: str, name: str, label: str) -> GateConfig | None:
    """The gate configured for ``label`` of the prompt, if any."""
    row = (
        connection.execute(
            select(prompt_label_gates).where(
                prompt_label_gates.c.prompt_id == prompt_id, prompt_label_gates.c.label == label
            )
        )
        .mappings()
        .first()
    )
    return _config(row, name) if row is not None else None


def _check_suite(suite: Any) -> str:
    if not isinstance(suite, str) or not suite.strip() or len(suite) > 200:
        raise InvalidRequestError(
            "'suite' must be a suite name of 1 to 200 characters.", param="suite"
        )
    return suite.strip()


def set_gate(
    engine: Engine,
    principal: Principal,
    name: str,
    label: str,
    suite: Any,
    *,
    require_no_regression: bool = True,
    max_age_days: int | None = None,
) -> GateConfig:
    """Require ``suite`` for moves of ``label`` (replacing the label's gate), audited."""
    from llmplane.prompts.labels import check_label  # labels imports this module

    check_label(label)
    suite = _check_suite(suite)
    if max_age_days is not None and not 1 <= max_age_days <= MAX_AGE_DAYS:
        raise InvalidRequestError(
            f"'max_age_days' must be between 1 and {MAX_AGE_DAYS}.", param="max_age_days"
        )
    now = datetime.now(UTC)
    with engine.begin() as connection:
        prompt = writable_prompt(connection, principal, name)
        before = stored_gate(connection, prompt["id"], name, label)
        values = {
            "suite": suite,
            "require_no_regression": require_no_regression,
            "max_age_days": max_age_days,
            "created_by": principal.key_id,
            "created_at": now,
        }
        if before is None:
            connection.execute(
                insert(prompt_label_gates).values(prompt_id=prompt["id"], label=label, **values)
            )
        else:
            connection.execute(
                update(prompt_label_gates)
                .where(
                    prompt_label_gates.c.prompt_id == prompt["id"],
                    prompt_label_gates.c.label == label,
                )
                .values(**values)
            )
        after = GateConfig(name, label, suite, require_no_regression, max_age_days,
                           principal.key_id, now)  # fmt: skip
        record_audit(
            connection,
            actor=principal.key_id,
            action="prompt.gate.set",
            object_type="prompt",
            object_id=prompt["id"],
            before=before.to_json() if before is not None else None,
            after=after.to_json(),
        )
    return after


def list_gates(engine: Engine, principal: Principal, name: str) -> list[GateConfig]:
    """The gates of a prompt's labels, by label."""
    with engine.connect() as connection:
        prompt = readable_prompt(connection, principal, name)
        rows = connection.execute(
            select(prompt_label_gates)
            .where(prompt_label_gates.c.prompt_id == prompt["id"])
            .order_by(prompt_label_gates.c.label)
        ).mappings()
        return [_config(row, name) for row in rows]


def get_gate(engine: Engine, principal: Principal, name: str, label: str) -> GateConfig:
    """One label's gate (404 ``gate_not_found`` when the label has none)."""
    with engine.connect() as connection:
        prompt = readable_prompt(connection, principal, name)
        found = stored_gate(connection, prompt["id"], name, label)
    if found is None:
        raise _no_gate(name, label)
    return found


def delete_gate(engine: Engine, principal: Principal, name: str, label: str) -> GateConfig:
    """Remove a label's gate, audited; returns what was removed."""
    with engine.begin() as connection:
        prompt = writable_prompt(connection, principal, name)
        found = stored_gate(connection, prompt["id"], name, label)
        if found is None:
            raise _no_gate(name, label)
        connection.execute(
            delete(prompt_label_gates).where(
                prompt_label_gates.c.prompt_id == prompt["id"],
                prompt_label_gates.c.label == label,
            )
        )
        record_audit(
            connection,
            actor=principal.key_id,
            action="prompt.gate.delete",
            object_type="prompt",
            object_id=prompt["id"],
            before=found.to_json(),
            after={"name": name, "label": label, "suite": None},  # the label moves freely
        )
    return found


def _no_gate(name: str, label: str) -> NotFoundError:
    return NotFoundError(
        f"The label '{label}' of '{name}' has no promotion gate.",
        param="label",
        code="gate_not_found",
    )
