"""Model and deployment changes, recorded by the gateway itself when it starts.

Each model, deployment and the ``defaults`` section of ``llmplane.yaml`` is reduced to
its non-secret configuration (keys, header values and LiteLLM secrets replaced by a
marker; credentials in URLs dropped; defaults left out) and fingerprinted. A start
compares each fingerprint with the stored one and records ``added``, ``changed`` (naming
the fields that changed, never their values) or ``removed``. The stored fingerprint moves
only by compare-and-set, in the same transaction as the change it records: of replicas
starting together with the same file, exactly one records each change, and a start that
fails half-way records the rest next time.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import SecretStr
from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from llmplane.config.platform import PlatformConfig
from llmplane.incidents.changes import Change, record_change
from llmplane.store.tables import config_fingerprints

log = logging.getLogger("llmplane.incidents")

GATEWAY_ACTOR = "gateway"
"""Who recorded a change found in ``llmplane.yaml`` at start-up."""
REDACTED = "<redacted>"
"""What a secret value is replaced by (whether one is set is not a secret)."""


def _without_secrets(value: Any, key: str = "") -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, dict):
        if key == "headers":  # header values are often credentials
            return {name: REDACTED for name in sorted(value)}
        return {str(k): _without_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_secrets(v) for v in value]
    if key == "api_base" and isinstance(value, str):
        parts = urllib.parse.urlsplit(value)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port is not None else host
            return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return value


def _fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(config, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class Configured:
    """One model, deployment or config section as configured now, secrets removed."""

    kind: str
    subject: str
    config: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of :attr:`config`."""
        return _fingerprint(self.config)


def configured_subjects(platform: PlatformConfig) -> Iterator[Configured]:
    """Every model (without its deployments), deployment (by its ledger name) and the
    ``defaults`` section (when set) of ``platform``, secrets removed."""
    for model in platform.models:
        own = model.model_dump(exclude_defaults=True, exclude={"deployments", "name"})
        yield Configured("model", model.name, _without_secrets(own))
        for index, deployment in enumerate(model.deployments):
            name = deployment.name or f"{model.name}[{index}]"
            config = deployment.model_dump(exclude_defaults=True, exclude={"name"})
            # `provider` has no default, so it is always there; `for_model` is the model
            # the deployment serves (moving it to another model is a change).
            yield Configured(
                "deployment", name, {**_without_secrets(config), "for_model": model.name}
            )
    defaults = platform.defaults.model_dump(exclude_defaults=True)
    if defaults:
        yield Configured("config", "defaults", _without_secrets(defaults))


def _changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _insert_if_absent(connection: Connection, values: dict[str, Any]) -> bool:
    """Insert a fingerprint row unless one exists (another replica's); whether it did."""
    dialect = connection.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(config_fingerprints)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(config_fingerprints.c.kind)  # psycopg reports no rowcount here
    )
    return connection.execute(statement).first() is not None


def record_config_changes(engine: Engine, platform: PlatformConfig) -> list[Change]:
    """Compare ``platform`` with the configuration of the last start; record what was
    added, changed or removed (once, whichever replica gets there first)."""
    table = config_fingerprints.c
    with engine.connect() as connection:
        stored = {
            (row.kind, row.subject): (row.fingerprint, row.config)
            for row in connection.execute(
                select(table.kind, table.subject, table.fingerprint, table.config)
            )
        }
    recorded: list[Change] = []
    now = datetime.now(UTC)
    seen: set[tuple[str, str]] = set()
    for item in configured_subjects(platform):
        key = (item.kind, item.subject)
        seen.add(key)
        fingerprint = item.fingerprint
        previous = stored.get(key)
        if previous is not None and previous[0] == fingerprint:
            continue
        # Each subject in its own transaction whose first statement is the write: no
        # stale read to upgrade (SQLite), and a lost race leaves the others untouched.
        with engine.begin() as connection:
            if previous is None:
                won = _insert_if_absent(
                    connection,
                    {
                        "kind": item.kind,
                        "subject": item.subject,
                        "fingerprint": fingerprint,
                        "config": item.config,
                        "updated_at": now,
                    },
                )
                action, summary = "added", f"{item.kind} {item.subject} added"
            else:
                won = (
                    connection.execute(
                        update(config_fingerprints)
                        .where(
                            and_(
                                table.kind == item.kind,
                                table.subject == item.subject,
                                table.fingerprint == previous[0],
                            )
                        )
                        .values(fingerprint=fingerprint, config=item.config, updated_at=now)
                    ).rowcount
                    == 1
                )
                fields = _changed_fields(previous[1], item.config)
                action = "changed"
                summary = f"{item.kind} {item.subject} changed: {', '.join(fields) or 'config'}"
            if won:
                recorded.append(
                    record_change(
                        connection,
                        item.kind,
                        item.subject,
                        action=action,
                        summary=summary[:500],
                        actor=GATEWAY_ACTOR,
                        at=now,
                    )
                )
    for (kind, subject), (fingerprint, _) in stored.items():
        if (kind, subject) in seen:
            continue
        with engine.begin() as connection:
            gone = connection.execute(
                delete(config_fingerprints).where(
                    and_(
                        table.kind == kind,
                        table.subject == subject,
                        table.fingerprint == fingerprint,
                    )
                )
            )
            if gone.rowcount == 1:
                recorded.append(
                    record_change(
                        connection,
                        kind,
                        subject,
                        action="removed",
                        summary=f"{kind} {subject} removed",
                        actor=GATEWAY_ACTOR,
                        at=now,
                    )
                )
    if recorded:
        log.info("recorded %d configuration change(s) at start-up", len(recorded))
    return recorded
