"""Exact usage sums over any time range, read mostly from the hour and day rollups.

A range ``[since, until)`` is cut into whole days (day rollups), the whole hours
at its edges (hour rollups) and the part-hours at its ends (the raw ledger, by
its ``created_at`` index). The database sums each part and the parts are merged
here, so that the answer is the same as a scan of the ledger, row for row, while
a month's spend reads a few thousand rollups instead of millions of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.engine import Connection

from llmplane.store.rollups import DAY, HOUR, floor_day, floor_hour
from llmplane.store.tables import services, teams, usage_ledger, usage_rollups, virtual_keys

GROUPINGS = ("team", "service", "key", "model", "deployment", "day")
# Groupings by an id, with the table that names it.
_NAMED: dict[str, tuple[str, Table]] = {
    "team": ("team_id", teams),
    "service": ("service_id", services),
    "key": ("key_id", virtual_keys),
}
NAMED_GROUPINGS = tuple(_NAMED)


@dataclass(slots=True)
class UsageSums:
    """Requests, tokens and cost of a group of ledger rows."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_nanousd: int = 0

    def add(self, other: UsageSums) -> None:
        """Count ``other`` in as well."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_nanousd += other.cost_nanousd


# One group's key: per grouping, (id, name) for team, service and key; the model or
# deployment; the UTC day as YYYY-MM-DD.
GroupKey = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class _Part:
    grain: str | None  # "hour" | "day" rollups, or None for the raw ledger
    start: datetime | None  # None: from the first row
    end: datetime | None  # None: to the last row


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ceil(value: datetime, floor: Callable[[datetime], datetime], step: timedelta) -> datetime:
    start = floor(value)
    return start if start == value else start + step


def split_range(since: datetime | None, until: datetime | None) -> list[_Part]:
    """``[since, until)`` as raw part-hours, hour rollups and day rollups (open ends: None)."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        return []
    first_hour = None if since is None else _ceil(since, floor_hour, HOUR)
    end_hour = None if until is None else floor_hour(until)
    if first_hour is not None and end_hour is not None and first_hour > end_hour:
        return [_Part(None, since, until)]  # inside one hour
    first_day = None if first_hour is None else _ceil(first_hour, floor_day, DAY)
    end_day = None if end_hour is None else floor_day(end_hour)
    parts = []
    if since is not None and first_hour is not None and since < first_hour:
        parts.append(_Part(None, since, first_hour))
    if first_day is not None and end_day is not None and first_day > end_day:
        parts.append(_Part("hour", first_hour, end_hour))  # inside one day
    else:
        if first_hour is not None and first_day is not None and first_hour < first_day:
            parts.append(_Part("hour", first_hour, first_day))
        parts.append(_Part("day", first_day, end_day))
        if end_day is not None and end_hour is not None and end_day < end_hour:
            parts.append(_Part("hour", end_day, end_hour))
    if until is not None and end_hour is not None and end_hour < until:
        parts.append(_Part(None, end_hour, until))
    return [p for p in parts if p.start is None or p.end is None or p.start < p.end]


def _part_query(part: _Part, groupings: Sequence[str], team_id: str | None) -> Any:
    table = usage_ledger if part.grain is None else usage_rollups
    time = table.c.created_at if part.grain is None else table.c.bucket
    source: Any = table
    columns: list[Any] = []
    for grouping in groupings:
        if grouping in _NAMED:
            id_column, names = _NAMED[grouping]
            source = source.outerjoin(names, names.c.id == table.c[id_column])
            columns += [table.c[id_column], names.c.name]
        elif grouping == "day":
            if part.grain is not None:  # a raw part lies inside one day: its start's
                columns.append(time)
        else:  # model, deployment: the same column in both tables
            columns.append(table.c[grouping])
    if part.grain is None:
        requests: Any = func.count()
    else:
        requests = func.sum(table.c.requests)
    query = select(
        *columns,
        requests,
        func.sum(table.c.prompt_tokens),
        func.sum(table.c.completion_tokens),
        func.sum(table.c.cost_nanousd),
    ).select_from(source)
    if part.grain is not None:
        # A literal, so that the planners may use the partial indexes of day rollups.
        query = query.where(table.c.grain == literal_column(f"'{part.grain}'"))
    if team_id is not None:
        query = query.where(table.c.team_id == team_id)
    if part.start is not None:
        query = query.where(time >= part.start)
    if part.end is not None:
        query = query.where(time < part.end)
    return query.group_by(*columns) if columns else query


def _day(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite: naive UTC
    return floor_day(aware).date().isoformat()


def _group_key(part: _Part, groupings: Sequence[str], row: Sequence[Any]) -> GroupKey:
    key: list[Any] = []
    at = 0
    for grouping in groupings:
        if grouping in _NAMED:
            key.append((row[at] or None, row[at + 1]))  # rollups store a missing id as ''
            at += 2
        elif grouping == "day":
            if part.grain is None:
                assert part.start is not None  # raw parts always have a start
                key.append(_day(part.start))
            else:
                key.append(_day(row[at]))
                at += 1
        else:
            key.append(row[at])
            at += 1
    return tuple(key)


def usage_sums(
    connection: Connection,
    groupings: Sequence[str],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    team_id: str | None = None,
) -> dict[GroupKey, UsageSums]:
    """Usage in ``[since, until)`` (of one team, if given) per group of ``groupings``."""
    if unknown := set(groupings) - set(GROUPINGS):
        raise ValueError(f"usage cannot be grouped by {sorted(unknown)}")
    groups: dict[GroupKey, UsageSums] = {}
    for part in split_range(since, until):
        for row in connection.execute(_part_query(part, groupings, team_id)):
            *_, requests, prompt, completion, cost = row
            if not requests:
                continue  # an empty range still gives one row when nothing is grouped
            key = _group_key(part, groupings, row)
            sums = UsageSums(int(requests), int(prompt), int(completion), int(cost))
            if key in groups:
                groups[key].add(sums)
            else:
                groups[key] = sums
    return groups


def costliest_first(
    items: Iterable[tuple[GroupKey, UsageSums]],
) -> list[tuple[GroupKey, UsageSums]]:
    """Highest cost first; groups that cost the same in the order of their keys."""
    return sorted(items, key=lambda item: (-item[1].cost_nanousd, repr(item[0])))


def regroup(
    groups: dict[GroupKey, UsageSums], pick: Callable[[GroupKey], GroupKey]
) -> dict[GroupKey, UsageSums]:
    """Coarser groups: ``pick`` keeps part of each key, and groups that share it are summed."""
    result: dict[GroupKey, UsageSums] = {}
    for key, sums in groups.items():
        result.setdefault(pick(key), UsageSums()).add(sums)
    return result


def total(groups: dict[GroupKey, UsageSums]) -> UsageSums:
    """The sum of every group."""
    result = UsageSums()
    for sums in groups.values():
        result.add(sums)
    return result
