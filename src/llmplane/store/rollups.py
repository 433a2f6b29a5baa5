"""Hour and day rollups of the usage ledger, written with the ledger rows they count.

:class:`RollupUpsert` sums a batch of ledger rows per bucket, team, service, key,
model and deployment in Python and adds the sums to ``usage_rollups`` in one
``executemany`` of ``INSERT … ON CONFLICT … DO UPDATE`` (SQLite ≥ 3.24 and
PostgreSQL), on the connection that inserts the rows, so that the rollups change
exactly when the ledger does. On PostgreSQL groups are written in sorted order:
two replicas that add to the same rollups lock them in the same order and cannot
deadlock. (One ``INSERT … SELECT FROM unnest(arrays)`` measured no faster there:
the upserts themselves cost the time.)
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from llmplane.store.bulk import sqlite_datetime
from llmplane.store.tables import usage_rollups

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

_KEY = ("grain", "bucket", "team_id", "service_id", "key_id", "model", "deployment")
_SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanousd",
    "latency_ms_sum",
)
_Group = tuple[datetime, tuple[str, ...]]  # bucket, (team, service, key, model, deployment)
# What the rollups read of a ledger row, in the order that parameters() unpacks.
_LEDGER_FIELDS = (
    "created_at",
    "team_id",
    "service_id",
    "key_id",
    "model",
    "deployment",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nanousd",
    "latency_ms",
)


def floor_hour(value: datetime) -> datetime:
    """The start of the UTC hour of an aware ``value``."""
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(value: datetime) -> datetime:
    """The start of the UTC day of an aware ``value``."""
    return value.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _upsert_sql(paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"
    table = usage_rollups.name
    added = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _SUMS)
    # Identifiers come from the Table definition; values are always parameters.
    return (
        f"INSERT INTO {table} ({', '.join(_KEY + _SUMS)}) "  # noqa: S608
        f"VALUES ({', '.join(marker for _ in _KEY + _SUMS)}) "
        f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {added}"
    )


class RollupUpsert:
    """Adds ledger rows (value tuples in ``columns`` order) to the hour and day rollups."""

    def __init__(self, columns: Sequence[str], dialect: str, paramstyle: str) -> None:
        self._fields = operator.itemgetter(*map(list(columns).index, _LEDGER_FIELDS))
        self._sqlite = dialect == "sqlite"
        # SQLite has one writer at a time; elsewhere, writers lock rollups in one order.
        self._sort = not self._sqlite
        self.sql = _upsert_sql(paramstyle)

    def execute(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Add ``rows`` to their hour and day rollups (in the caller's transaction)."""
        connection.exec_driver_sql(self.sql, self.parameters(rows))

    def parameters(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """One parameter tuple per (grain, bucket, dimensions) group of ``rows`` (sorted
        where writers can lock each other's rollups)."""
        hours: dict[_Group, list[Any]] = {}
        for row in rows:
            (
                created,
                team,
                service,
                key,
                model,
                deployment,
                status,
                prompt,
                completion,
                cached,
                cost,
                latency,
            ) = self._fields(row)
            if created.tzinfo is not UTC:  # naive times are stored as UTC
                created = created.astimezone(UTC) if created.tzinfo else created.replace(tzinfo=UTC)
            group = (
                created.replace(minute=0, second=0, microsecond=0),
                (team or "", service or "", key or "", model, deployment),
            )
            sums = hours.get(group)
            if sums is None:
                hours[group] = sums = [0, 0, 0, 0, 0, 0, 0.0]
            sums[0] += 1
            sums[1] += status >= 400
            sums[2] += prompt
            sums[3] += completion
            sums[4] += cached
            sums[5] += cost
            sums[6] += latency
        days: dict[_Group, list[Any]] = {}
        day_of: dict[datetime, datetime] = {}
        for (hour, dimensions), sums in hours.items():
            day = day_of.get(hour)
            if day is None:
                day_of[hour] = day = hour.replace(hour=0)
            total = days.get((day, dimensions))
            if total is None:
                days[day, dimensions] = sums.copy()
            else:
                days[day, dimensions] = list(map(operator.add, total, sums))
        buckets = {*day_of, *day_of.values()}  # few per batch: adapt each once
        stored = {b: sqlite_datetime(b) if self._sqlite else b for b in buckets}
        hour_groups: Iterable[tuple[_Group, list[Any]]] = hours.items()
        day_groups: Iterable[tuple[_Group, list[Any]]] = days.items()
        if self._sort:
            hour_groups, day_groups = sorted(hour_groups), sorted(day_groups)
        return [
            (grain, stored[bucket], *dimensions, *sums)
            for grain, groups in (("hour", hour_groups), ("day", day_groups))
            for (bucket, dimensions), sums in groups
        ]
