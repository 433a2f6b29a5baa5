"""Fast bulk inserts for append-only tables (the usage ledger).

SQLAlchemy's per-row bind processing costs about as much CPU as SQLite's own
insert; for a table written thousands of times a second, rows are adapted
once here (dates, JSON) and handed to the driver's ``executemany`` as tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, DateTime, Table
from sqlalchemy.engine import Connection

Adapter = Callable[[Any], Any]


def sqlite_datetime(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite storage format for ``DateTime``, in UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class BulkInsert:
    """A prepared ``INSERT`` of ``columns`` into ``table`` for one database dialect."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: str, paramstyle: str) -> None:
        marker = "?" if paramstyle == "qmark" else "%s"
        self.columns = tuple(columns)
        names, markers = ", ".join(self.columns), ", ".join(marker for _ in self.columns)
        # Identifiers come from the Table definition; values are always parameters.
        self.sql = f"INSERT INTO {table.name} ({names}) VALUES ({markers})"  # noqa: S608
        self._adapters: list[tuple[int, Adapter]] = []
        for index, name in enumerate(self.columns):
            kind = table.c[name].type  # KeyError for a name that is not a column
            if isinstance(kind, JSON):
                self._adapters.append((index, _json))
            elif isinstance(kind, DateTime) and dialect == "sqlite":
                self._adapters.append((index, sqlite_datetime))

    def execute(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (value tuples in ``columns`` order) in one ``executemany``."""
        if not self._adapters:
            connection.exec_driver_sql(self.sql, list(map(tuple, rows)))
            return
        adapted = []
        for row in rows:
            values = list(row)
            for index, adapt in self._adapters:
                values[index] = adapt(values[index])
            adapted.append(tuple(values))
        connection.exec_driver_sql(self.sql, adapted)
