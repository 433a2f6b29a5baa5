"""Benchmark the usage rollups: what the ledger writer pays for them, what spend queries gain.

Usage: .venv/bin/python bench/ledger_rollups.py [--rows 1000000] [--days 30] [--keys 300]
       [--uniform] [--db PATH]
See bench/README.md ("Ledger rollups") for what is measured.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Engine

from llmplane.accounting.budgets import AdmissionGuard, Period, period_start
from llmplane.accounting.ledger import UsageRecord
from llmplane.accounting.spend import spend_by
from llmplane.store import create_engine, migrate
from llmplane.store.bulk import BulkInsert
from llmplane.store.rollups import RollupUpsert
from llmplane.store.tables import teams, usage_ledger

COLUMNS = tuple(f.name for f in fields(UsageRecord))
BATCH = 500
TEAMS, SERVICES, MODELS = 20, 60, 6


def ledger_rows(
    count: int, start: datetime, span: timedelta, keys: int, uniform: bool, seed: int = 7
) -> Iterator[tuple[Any, ...]]:
    """Rows in time order. Skewed (default): a few keys carry most calls and a key mostly
    calls one model, as in real traffic. Uniform: any key calls any model and deployment,
    the most rollup groups per batch (the writer's worst case)."""
    rng = random.Random(seed)
    step = span.total_seconds() / count
    for i in range(count):
        if uniform:
            key = rng.randrange(keys)
            model = rng.randrange(MODELS)
        else:
            key = min(int(rng.paretovariate(1.1)) - 1, keys - 1)
            model = key % MODELS if rng.random() < 0.9 else rng.randrange(MODELS)
        yield (
            f"req-{i}",  # request_id
            start + timedelta(seconds=i * step),  # created_at
            f"model-{model}",
            f"model-{model}[{rng.randrange(2)}]",  # deployment
            "openai",
            "chat.completions",
            False,  # stream
            200 if rng.random() > 0.02 else 500,
            rng.randrange(2000),  # prompt_tokens
            rng.randrange(500),  # completion_tokens
            0,  # cached_tokens
            rng.randrange(10**7),  # cost_nanousd
            rng.random() * 1000,  # latency_ms
            0,  # attempt
            f"key_{key}",
            f"team_{key % TEAMS}",
            f"svc_{key % SERVICES}",
            None,  # user_id
            None,  # error_code
            False,  # usage_estimated
            None,  # ttft_ms
            None,  # tags
        )


def batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def write(engine: Engine, rows: Iterator[tuple[Any, ...]], rollups: bool) -> tuple[int, float]:
    """What the ledger writer does per batch, with or without the rollups: rows, seconds."""
    dialect, paramstyle = engine.dialect.name, engine.dialect.paramstyle
    insert = BulkInsert(usage_ledger, COLUMNS, dialect, paramstyle)
    upsert = RollupUpsert(COLUMNS, dialect, paramstyle)
    count, started = 0, time.perf_counter()
    for batch in batches(rows):
        with engine.begin() as connection:
            insert.execute(connection, batch)
            if rollups:
                upsert.execute(connection, batch)
        count += len(batch)
    return count, time.perf_counter() - started


def raw_spend_by_team(engine: Engine, since: datetime | None, until: datetime | None) -> Any:
    """spend_by('team') as it was before the rollups: one scan of the ledger."""
    ledger = usage_ledger.c
    query = (
        select(
            ledger.team_id,
            teams.c.name,
            func.count(),
            func.sum(ledger.prompt_tokens),
            func.sum(ledger.completion_tokens),
            func.sum(ledger.cost_nanousd),
        )
        .select_from(usage_ledger.outerjoin(teams, teams.c.id == ledger.team_id))
        .group_by(ledger.team_id, teams.c.name)
        .order_by(func.sum(ledger.cost_nanousd).desc())
    )
    if since is not None:
        query = query.where(ledger.created_at >= since)
    if until is not None:
        query = query.where(ledger.created_at < until)
    with engine.connect() as connection:
        return {r[0]: (r[2], int(r[5])) for r in connection.execute(query)}


def raw_ledger_sums(engine: Engine, column: str, scope_id: str, day: datetime) -> Any:
    """AdmissionGuard.ledger_sums as it was before the rollups."""
    cost, created = usage_ledger.c.cost_nanousd, usage_ledger.c.created_at
    starts = [period_start(p, day) for p in (Period.DAY, Period.WEEK, Period.MONTH)]
    query = select(
        *(func.sum(case((created >= start, cost), else_=0)) for start in starts), func.sum(cost)
    ).where(usage_ledger.c[column] == scope_id)
    with engine.connect() as connection:
        return [int(v or 0) for v in connection.execute(query).one()]


def timed(call: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """The median of ``repeat`` runs in ms, and the last answer."""
    times, answer = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="0: the writer only")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--uniform", action="store_true", help="the writer's worst case")
    parser.add_argument("--writer-rows", type=int, default=50_000)
    parser.add_argument("--writer-rate", type=int, default=200, help="rows per second of traffic")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: temporary)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="llmplane-rollups-"))
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=args.days)

    def rows(count: int, span: timedelta) -> Iterator[tuple[Any, ...]]:
        return ledger_rows(count, start, span, args.keys, args.uniform)

    shape = "uniform" if args.uniform else "skewed"
    busy = timedelta(seconds=args.writer_rows / args.writer_rate)
    print(
        f"writer, {args.writer_rows:,} rows at {args.writer_rate:,} per second in batches of "
        f"{BATCH} ({shape}, {args.keys} keys):"
    )
    for rollups in (False, True, False, True):
        engine = create_engine(f"sqlite:///{folder / f'writer-{rollups}-{time.time_ns()}.db'}")
        migrate(engine)
        count, seconds = write(engine, rows(args.writer_rows, busy), rollups)
        label = "ledger + rollups" if rollups else "ledger only     "
        print(f"  {label}: {seconds / count * 1e6:6.1f} µs/row")
        engine.dispose()
    if not args.rows:
        return

    path = args.db or folder / "ledger.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as connection:
        present = connection.execute(select(func.count()).select_from(usage_ledger)).scalar()
    if not present:
        count, seconds = write(engine, rows(args.rows, timedelta(days=args.days)), rollups=True)
        print(f"filled {count:,} rows over {args.days} days in {seconds:.0f} s")
    print(f"queries over {present or args.rows:,} ledger rows (median of 5, ms):")
    guard = AdmissionGuard(engine)
    day = period_start(Period.DAY, end)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = [
        (
            "spend_by('team'), all time",
            lambda: {
                r["team"]: (r["requests"], round(r["cost_usd"] * 1e9))
                for r in spend_by(engine, "team")
            },
            lambda: raw_spend_by_team(engine, None, None),
        ),
    ]
    since, until = end - timedelta(days=7, minutes=-17), end - timedelta(minutes=55)
    cases.append(
        (
            "spend_by('team'), 7 days, part-hour ends",
            lambda: {
                r["team"]: (r["requests"], round(r["cost_usd"] * 1e9))
                for r in spend_by(engine, "team", since=since, until=until)
            },
            lambda: raw_spend_by_team(engine, since, until),
        )
    )
    for scope, column in (("key", "key_id"), ("team", "team_id")):
        scope_id = f"{scope}_0"
        cases.append(
            (
                f"ledger_sums({scope}, busiest)",
                lambda s=(scope, scope_id): list(guard.ledger_sums(s, day).values()),
                lambda c=column, i=scope_id: raw_ledger_sums(engine, c, i, day),
            )
        )
    for name, rollup, raw in cases:
        rollup_ms, rollup_answer = timed(rollup)
        raw_ms, raw_answer = timed(raw)
        same = "same answer" if rollup_answer == raw_answer else "DIFFERENT ANSWERS"
        print(f"  {name:40} rollups {rollup_ms:8.1f}   ledger scan {raw_ms:8.1f}   {same}")


if __name__ == "__main__":
    main()
