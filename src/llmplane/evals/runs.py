"""Stored eval runs and their case results: plain synchronous functions over an engine
(the HTTP layer runs them in a worker thread).

A run belongs to the team of the key that started it (the admin key's runs to no team).
The admin key reads every run; any key of a team reads and writes its team's runs;
blessing a run (making it the suite's baseline) takes the admin key or a team admin.

The stored cases are also the output cache: :func:`cached_outputs` finds, among the
team's stored results without an error, one per cache key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, desc, insert, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.accounting.keys import Principal
from llmplane.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from llmplane.ids import new_id
from llmplane.store.tables import eval_cases, eval_runs

RUN_STATUSES = ("running", "finished", "capped", "failed")
FINAL_STATUSES = ("finished", "capped", "failed")
MAX_CASES_PER_CALL = 1000
MAX_CACHE_KEYS = 5000
_MAX_ERROR = 2000


def _aware(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()


def _run_json(row: RowMapping) -> dict[str, Any]:
    return {
        "object": "eval.run",
        "id": row["id"],
        "suite": row["suite"],
        "suite_fingerprint": row["suite_fingerprint"],
        "team_id": row["team_id"],
        "key_id": row["key_id"],
        "status": row["status"],
        "target": row["target"],
        "models": row["models"],
        "prompt": row["prompt"],
        "dataset": row["dataset"],
        "git_sha": row["git_sha"],
        "git_branch": row["git_branch"],
        "baseline_run_id": row["baseline_run_id"],
        "blessed": bool(row["blessed"]),
        "repetitions": row["repetitions"],
        "cases_total": row["cases_total"],
        "cost_usd": float(row["cost_usd"]),
        "summary": row["summary"],
        "started_at": _aware(row["started_at"]),
        "finished_at": _aware(row["finished_at"]),
    }


def _case_json(row: RowMapping) -> dict[str, Any]:
    return {
        "case_id": row["case_id"],
        "model": row["model"],
        "repetition": row["repetition"],
        "output": row["output"],
        "scores": row["scores"],
        "cost_usd": float(row["cost_usd"]),
        "latency_ms": row["latency_ms"],
        "error": row["error"],
        "cached": bool(row["cached"]),
        "cache_key": row["cache_key"],
    }


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a client says about a run it starts."""

    suite: str
    suite_fingerprint: str
    target: str
    models: list[str]
    repetitions: int
    cases_total: int
    prompt: str | None = None
    dataset: str | None = None  # a registered dataset's name@version
    git_sha: str | None = None
    git_branch: str | None = None
    baseline_run_id: str | None = None


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_eval_run")


def _load_run(connection: Connection, principal: Principal, run_id: str) -> RowMapping:
    row = connection.execute(select(eval_runs).where(eval_runs.c.id == run_id)).mappings().first()
    # Another team's run is answered as a missing one: run ids are not for other teams to
    # confirm (as prompt names are not).
    if row is None or (not principal.is_admin and row["team_id"] != principal.team_id):
        raise NotFoundError(f"No eval run '{run_id}'.", param="run", code="eval_run_not_found")
    return row


def create_run(engine: Engine, principal: Principal, run: NewRun) -> dict[str, Any]:
    """Record a run that starts now, owned by the caller's team."""
    values = {
        "id": new_id("evr"),
        "suite": run.suite,
        "suite_fingerprint": run.suite_fingerprint,
        "team_id": principal.team_id,
        "key_id": principal.key_id,
        "status": "running",
        "target": run.target,
        "models": run.models,
        "prompt": run.prompt,
        "dataset": run.dataset,
        "git_sha": run.git_sha,
        "git_branch": run.git_branch,
        "baseline_run_id": run.baseline_run_id,
        "blessed": False,
        "repetitions": run.repetitions,
        "cases_total": run.cases_total,
        "cost_usd": 0.0,
        "summary": None,
        "started_at": datetime.now(UTC),
        "finished_at": None,
    }
    with engine.begin() as connection:
        connection.execute(insert(eval_runs).values(values))
        row = connection.execute(select(eval_runs).where(eval_runs.c.id == values["id"]))
        return _run_json(row.mappings().one())


def get_run(
    engine: Engine, principal: Principal, run_id: str, *, with_cases: bool = True
) -> dict[str, Any]:
    """A run (and its case results, in case, model, repetition order)."""
    with engine.connect() as connection:
        run = _run_json(_load_run(connection, principal, run_id))
        if with_cases:
            rows = connection.execute(
                select(eval_cases)
                .where(eval_cases.c.run_id == run_id)
                .order_by(eval_cases.c.case_id, eval_cases.c.model, eval_cases.c.repetition)
            ).mappings()
            run["cases"] = [_case_json(r) for r in rows]
    return run


def list_runs(
    engine: Engine,
    principal: Principal,
    *,
    suite: str | None = None,
    branch: str | None = None,
    status: str | None = None,
    prompt: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The caller's visible runs, newest first (the admin key sees every team's)."""
    query = select(eval_runs).order_by(desc(eval_runs.c.started_at)).limit(limit)
    if not principal.is_admin:
        query = query.where(eval_runs.c.team_id == principal.team_id)
    if suite is not None:
        query = query.where(eval_runs.c.suite == suite)
    if branch is not None:
        query = query.where(eval_runs.c.git_branch == branch)
    if status is not None:
        query = query.where(eval_runs.c.status == status)
    if prompt is not None:
        query = query.where(eval_runs.c.prompt == prompt)
    with engine.connect() as connection:
        return [_run_json(r) for r in connection.execute(query).mappings()]


def _case_values(run_id: str, case: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    error = case.get("error")
    return {
        "run_id": run_id,
        "case_id": str(case["case_id"])[:200],
        "model": str(case.get("model") or "")[:200],
        "repetition": int(case.get("repetition", 0)),
        "output": case.get("output"),
        "scores": case.get("scores") or {},
        "cost_usd": float(case.get("cost_usd") or 0.0),
        "latency_ms": case.get("latency_ms"),
        "error": str(error)[:_MAX_ERROR] if error is not None else None,
        "cached": bool(case.get("cached", False)),
        "cache_key": case.get("cache_key"),
        "created_at": now,
    }


def add_cases(
    engine: Engine, principal: Principal, run_id: str, cases: Sequence[Mapping[str, Any]]
) -> int:
    """Store finished case results of a running run; a result already stored (same case,
    model and repetition: a resumed run re-sending it) is kept as it was. Returns how many
    were new."""
    if len(cases) > MAX_CASES_PER_CALL:
        raise _bad(f"At most {MAX_CASES_PER_CALL} cases per call.", "cases")
    now = datetime.now(UTC)
    values = [_case_values(run_id, case, now) for case in cases]
    with engine.begin() as connection:
        run = _load_run(connection, principal, run_id)
        if run["status"] != "running":
            raise _bad(f"Eval run '{run_id}' is {run['status']}; resume it first.", "run")
        stored = {
            (r.case_id, r.model, r.repetition)
            for r in connection.execute(
                select(eval_cases.c.case_id, eval_cases.c.model, eval_cases.c.repetition).where(
                    eval_cases.c.run_id == run_id
                )
            )
        }
        new = []
        for value in values:
            key = (value["case_id"], value["model"], value["repetition"])
            if key not in stored:
                stored.add(key)
                new.append(value)
        if new:
            connection.execute(insert(eval_cases), new)
            spent = sum(v["cost_usd"] for v in new if not v["cached"])
            connection.execute(
                update(eval_runs)
                .where(eval_runs.c.id == run_id)
                .values(cost_usd=eval_runs.c.cost_usd + spent)
            )
    return len(new)


def finish_run(
    engine: Engine,
    principal: Principal,
    run_id: str,
    status: str,
    summary: Mapping[str, Any] | None,
    baseline_run_id: str | None = None,
) -> dict[str, Any]:
    """Close a run (finished, capped or failed) with its summary."""
    if status not in FINAL_STATUSES:
        raise _bad(f"'status' must be one of {', '.join(FINAL_STATUSES)}.", "status")
    with engine.begin() as connection:
        _load_run(connection, principal, run_id)
        values: dict[str, Any] = {
            "status": status,
            "summary": dict(summary) if summary is not None else None,
            "finished_at": datetime.now(UTC),
        }
        if baseline_run_id is not None:
            values["baseline_run_id"] = baseline_run_id
        connection.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(values))
        row = connection.execute(select(eval_runs).where(eval_runs.c.id == run_id))
        return _run_json(row.mappings().one())


def reopen_run(engine: Engine, principal: Principal, run_id: str) -> dict[str, Any]:
    """Mark a run running again, to resume it (its stored cases stay)."""
    with engine.begin() as connection:
        _load_run(connection, principal, run_id)
        connection.execute(
            update(eval_runs)
            .where(eval_runs.c.id == run_id)
            .values(status="running", finished_at=None)
        )
        row = connection.execute(select(eval_runs).where(eval_runs.c.id == run_id))
        return _run_json(row.mappings().one())


def bless_run(engine: Engine, principal: Principal, run_id: str) -> dict[str, Any]:
    """Make a finished run its suite's baseline (for its team), audited."""
    with engine.begin() as connection:
        run = _load_run(connection, principal, run_id)
        if not principal.manages_team(run["team_id"]):
            raise PermissionDeniedError(
                "Blessing a baseline needs the admin key or a team admin's key.",
                code="admin_only",
            )
        if run["status"] != "finished":
            raise _bad(f"Only a finished run can be blessed; '{run_id}' is {run['status']}.", "run")
        team = eval_runs.c.team_id
        same_team = team.is_(None) if run["team_id"] is None else team == run["team_id"]
        before = connection.execute(
            select(eval_runs.c.id).where(
                and_(same_team, eval_runs.c.suite == run["suite"], eval_runs.c.blessed)
            )
        ).scalar()
        connection.execute(
            update(eval_runs)
            .where(and_(same_team, eval_runs.c.suite == run["suite"]))
            .values(blessed=False)
        )
        connection.execute(update(eval_runs).where(eval_runs.c.id == run_id).values(blessed=True))
        record_audit(
            connection,
            actor=principal.key_id,
            action="eval.baseline.bless",
            object_type="eval_suite",
            object_id=run["suite"],
            before={"run": before} if before else None,
            after={"run": run_id},
        )
        row = connection.execute(select(eval_runs).where(eval_runs.c.id == run_id))
        return _run_json(row.mappings().one())


def baseline_run(
    engine: Engine,
    principal: Principal,
    suite: str,
    *,
    branch: str = "main",
    prompt: str | None = None,
) -> dict[str, Any] | None:
    """The suite's baseline for the caller's team: with ``prompt`` (``name@version``), its
    newest finished run against that version; else its blessed run, else its newest
    finished run on ``branch``."""
    team = eval_runs.c.team_id
    same_team = team.is_(None) if principal.team_id is None else team == principal.team_id
    mine = and_(same_team, eval_runs.c.suite == suite)
    newest_finished = (
        select(eval_runs)
        .where(mine, eval_runs.c.status == "finished")
        .order_by(desc(eval_runs.c.started_at))
        .limit(1)
    )
    with engine.connect() as connection:
        if prompt is not None:
            query = newest_finished.where(eval_runs.c.prompt == prompt)
            found = connection.execute(query).mappings().first()
        else:
            blessed = select(eval_runs).where(mine, eval_runs.c.blessed)
            found = connection.execute(blessed).mappings().first()
            if found is None:
                query = newest_finished.where(eval_runs.c.git_branch == branch)
                found = connection.execute(query).mappings().first()
        return _run_json(found) if found is not None else None


def gate_run(
    engine: Engine, principal: Principal, suite: str, prompt: str, against: str | None
) -> dict[str, Any] | None:
    """The evidence a promotion gate asks for: the newest finished run of ``suite``
    against ``prompt`` (``name@version``) that was compared with a run against ``against``
    (the version the label holds now; ``None``: no comparison needed). Its
    ``summary.verdict.passed`` says whether the suite passed and did not regress; ``None``
    when no such run exists (the gate then runs the suite, or refuses)."""
    for run in list_runs(engine, principal, suite=suite, prompt=prompt, status="finished"):
        summary = run["summary"] or {}
        if against is None or summary.get("comparison", {}).get("baseline_prompt") == against:
            return run
    return None


def cached_outputs(
    engine: Engine, principal: Principal, keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """For each cache key the team has a stored result of (without an error): its output,
    original cost and latency."""
    if len(keys) > MAX_CACHE_KEYS:
        raise _bad(f"At most {MAX_CACHE_KEYS} keys per call.", "keys")
    team = eval_runs.c.team_id
    same_team = team.is_(None) if principal.team_id is None else team == principal.team_id
    found: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            rows = connection.execute(
                select(
                    eval_cases.c.cache_key,
                    eval_cases.c.output,
                    eval_cases.c.cost_usd,
                    eval_cases.c.latency_ms,
                    eval_cases.c.cached,
                )
                .join(eval_runs, eval_runs.c.id == eval_cases.c.run_id)
                .where(eval_cases.c.cache_key.in_(chunk), eval_cases.c.error.is_(None), same_team)
            )
            for row in rows:
                known = found.get(row.cache_key)
                if known is None or (known["cached"] and not row.cached):  # prefer the original
                    found[row.cache_key] = {
                        "output": row.output,
                        "cost_usd": float(row.cost_usd),
                        "latency_ms": row.latency_ms,
                        "cached": bool(row.cached),
                    }
    for entry in found.values():
        entry.pop("cached")
    return found
