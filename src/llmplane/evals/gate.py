"""The promotion gate of the eval harness: a label move waits for a suite that passed.

A label with a stored gate (:func:`llmplane.prompts.gates.set_gate`) moves to version v
only when the newest finished run of the gate's suite against ``name@v`` passed its
thresholds and, with ``require_no_regression`` and a label that already points at a
version, was compared with a run against that version (``--baseline
prompt:name@current``) without a significant regression. Runs of the prompt's team and
of the admin key count (a platform prompt: the admin key's). Otherwise the move is
refused with the evidence: the suite, the run, its verdict, the thresholds it missed, the
metrics that regressed, or the command that makes the missing run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import desc, or_, select
from sqlalchemy.engine import Connection

from llmplane.prompts.gates import GateConfig, GateRefusedError, ProposedMove, stored_gate
from llmplane.store.tables import eval_runs, prompts

_SCANNED_RUNS = 50  # the newest finished runs of the suite against the version looked at


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _regressions(summary: dict[str, Any]) -> list[dict[str, Any]]:
    comparison = summary.get("comparison") or {}
    found = []
    for name in comparison.get("regressions", []):
        metric = comparison.get("metrics", {}).get(name, {})
        found.append(
            {
                "metric": name,
                "mean_baseline": metric.get("mean_baseline"),
                "mean": metric.get("mean"),
                "delta": metric.get("delta"),
                "ci": metric.get("ci"),
                "pass_rate_baseline": metric.get("pass_rate_baseline"),
                "pass_rate": metric.get("pass_rate"),
                "mcnemar_p": metric.get("mcnemar_p"),
                "newly_failing": metric.get("newly_failing"),
            }
        )
    return found


class SuiteGate:
    """The :class:`llmplane.prompts.gates.LabelGate` that checks a label's stored gate
    against the stored eval runs (one query for the gate, one for the runs)."""

    def check(self, connection: Connection, move: ProposedMove) -> None:
        """Allow the move, or raise :class:`GateRefusedError` with the evidence."""
        prompt_id = connection.execute(
            select(prompts.c.id).where(prompts.c.name == move.name)
        ).scalar()
        if prompt_id is None:
            return
        gate = stored_gate(connection, prompt_id, move.name, move.label)
        if gate is None:
            return
        target = f"{move.name}@{move.to_version}"
        against = (
            f"{move.name}@{move.from_version}"
            if gate.require_no_regression and move.from_version is not None
            else None
        )
        run = self._run(connection, gate, move.team_id, target, against)
        evidence: dict[str, Any] = {
            "suite": gate.suite,
            "label": move.label,
            "prompt": target,
            "against": against,
            "require_no_regression": gate.require_no_regression,
            "max_age_days": gate.max_age_days,
        }
        if run is None:
            baseline = f"prompt:{against}" if against is not None else "none"
            command = (
                f"llmplane eval run <{gate.suite} suite.yaml> --prompt-version "
                f"{move.to_version} --baseline {baseline}"
            )
            evidence.update(run_id=None, verdict=None, command=command)
            within = f" in the last {gate.max_age_days} days" if gate.max_age_days else ""
            compared = f" compared with {against}" if against is not None else ""
            raise GateRefusedError(
                f"Promotion refused: the label '{move.label}' needs suite '{gate.suite}' to "
                f"pass against {target}{compared}; no finished run found{within}. "
                f"Run `{command}` (or `llmplane prompts promote ... --suite`).",
                evidence,
            )
        summary = run["summary"] or {}
        thresholds = [t for t in summary.get("thresholds", []) if not t.get("passed")]
        regressions = _regressions(summary) if against is not None else []
        evidence.update(
            run_id=run["id"],
            finished_at=_aware(run["finished_at"]).isoformat() if run["finished_at"] else None,
            verdict=summary.get("verdict"),
            failed_thresholds=thresholds,
            regressions=regressions,
        )
        if thresholds or regressions:
            what = [f"{t['metric']} {t['value']:.3f} < {t['min']}" for t in thresholds]
            what += [f"{r['metric']} regressed significantly against {against}"
                     for r in regressions]  # fmt: skip
            raise GateRefusedError(
                f"Promotion refused: suite '{gate.suite}' run {run['id']} against {target} "
                f"failed: {'; '.join(what)}.",
                evidence,
            )

    def _run(
        self,
        connection: Connection,
        gate: GateConfig,
        team_id: str | None,
        target: str,
        against: str | None,
    ) -> Any:
        team = eval_runs.c.team_id
        owners = team.is_(None) if team_id is None else or_(team == team_id, team.is_(None))
        query = (
            select(eval_runs.c.id, eval_runs.c.summary, eval_runs.c.finished_at)
            .where(
                owners,
                eval_runs.c.suite == gate.suite,
                eval_runs.c.prompt == target,
                eval_runs.c.status == "finished",
            )
            .order_by(desc(eval_runs.c.started_at))
            .limit(_SCANNED_RUNS)
        )
        if gate.max_age_days is not None:
            since = datetime.now(UTC) - timedelta(days=gate.max_age_days)
            query = query.where(eval_runs.c.finished_at >= since)
        for run in connection.execute(query).mappings():
            summary = run["summary"] or {}
            compared = (summary.get("comparison") or {}).get("baseline_prompt")
            if against is None or compared == against:
                return run
        return None
