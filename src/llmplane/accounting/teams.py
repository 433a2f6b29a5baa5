"""Teams and the services they own: created, listed and updated here, every change audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from llmplane.accounting.audit import record_audit
from llmplane.errors import InvalidRequestError, NotFoundError
from llmplane.ids import new_id
from llmplane.store.tables import services, teams, virtual_keys


@dataclass(frozen=True, slots=True)
class Team:
    """A product team: the unit that owns services, keys, budgets and spend."""

    id: str
    name: str
    models: list[str] | None
    max_tokens: int | None
    rpm: int | None = None
    tpm: int | None = None
    model_limits: dict[str, dict[str, int | None]] | None = None
    # Stored request logs: none, metadata, redacted or full, kept this many days; None
    # means the platform's default (defaults.request_logs).
    log_bodies: str | None = None
    log_retention_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "name": self.name,
            "models": self.models,
            "max_tokens": self.max_tokens,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "model_limits": self.model_limits,
            "log_bodies": self.log_bodies,
            "log_retention_days": self.log_retention_days,
        }


@dataclass(frozen=True, slots=True)
class Service:
    """An application of a team that calls the platform."""

    id: str
    team_id: str
    name: str
    rpm: int | None = None
    tpm: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "rpm": self.rpm,
            "tpm": self.tpm,
        }


def _team(row: RowMapping) -> Team:
    return Team(
        row["id"],
        row["name"],
        row["models"],
        row["max_tokens"],
        row["rpm"],
        row["tpm"],
        row["model_limits"],
        row["log_bodies"],
        row["log_retention_days"],
    )


def _service(row: RowMapping) -> Service:
    return Service(row["id"], row["team_id"], row["name"], row["rpm"], row["tpm"])


def _name(value: str, what: str) -> str:
    name = value.strip()
    if not name or len(name) > 200:
        raise InvalidRequestError(f"A {what} needs a name of 1 to 200 characters.", param="name")
    return name


TEAM_FIELDS = (
    "name",
    "models",
    "max_tokens",
    "rpm",
    "tpm",
    "model_limits",
    "log_bodies",
    "log_retention_days",
)
SERVICE_FIELDS = ("name", "rpm", "tpm")


class TeamService:
    """Team and service administration over the store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _find(self, connection: Connection, id_or_name: str) -> RowMapping:
        row = (
            connection.execute(
                select(teams).where(or_(teams.c.id == id_or_name, teams.c.name == id_or_name))
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFoundError(f"No team with id or name {id_or_name!r}.", code="team_not_found")
        return row

    def create_team(
        self,
        name: str,
        *,
        models: list[str] | None = None,
        max_tokens: int | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        model_limits: dict[str, dict[str, int | None]] | None = None,
        log_bodies: str | None = None,
        log_retention_days: int | None = None,
        actor: str = "admin",
    ) -> Team:
        """Create a team with a unique name."""
        now = datetime.now(UTC)
        team = Team(
            new_id("team"),
            _name(name, "team"),
            sorted(set(models)) if models is not None else None,
            max_tokens,
            rpm,
            tpm,
            model_limits or None,
            log_bodies,
            log_retention_days,
        )
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(teams).values(
                        id=team.id,
                        name=team.name,
                        models=team.models,
                        max_tokens=max_tokens,
                        rpm=rpm,
                        tpm=tpm,
                        model_limits=team.model_limits,
                        log_bodies=log_bodies,
                        log_retention_days=log_retention_days,
                        created_at=now,
                        updated_at=now,
                    )
                )
                record_audit(
                    connection,
                    actor=actor,
                    action="team.create",
                    object_type="team",
                    object_id=team.id,
                    before=None,
                    after=team.to_json(),
                )
        except IntegrityError:
            raise InvalidRequestError(
                f"A team named {team.name!r} already exists.", param="name", code="team_exists"
            ) from None
        return team

    def get_team(self, id_or_name: str) -> Team:
        """A team by id or name."""
        with self._engine.connect() as connection:
            return _team(self._find(connection, id_or_name))

    def list_teams(self) -> list[Team]:
        """Every team, by name."""
        with self._engine.connect() as connection:
            rows = connection.execute(select(teams).order_by(teams.c.name)).mappings()
            return [_team(row) for row in rows]

    def update_team(
        self, id_or_name: str, changes: dict[str, Any], *, actor: str = "admin"
    ) -> Team:
        """Change a team's name, model allowlist, max_tokens ceiling, rate limits or
        request-log policy."""
        allowed = set(TEAM_FIELDS)
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidRequestError(
                f"Unknown team field {sorted(unknown)[0]!r}.", param=sorted(unknown)[0]
            )
        with self._engine.begin() as connection:
            before = _team(self._find(connection, id_or_name))
            values = dict(changes)
            if "name" in values:
                values["name"] = _name(values["name"], "team")
            if values.get("models") is not None:
                values["models"] = sorted(set(values["models"]))
            if "model_limits" in values:
                values["model_limits"] = values["model_limits"] or None
            now = datetime.now(UTC)
            connection.execute(
                update(teams).where(teams.c.id == before.id).values(**values, updated_at=now)
            )
            # Keys carry their team's policy: mark them changed so every replica reloads them.
            connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.team_id == before.id)
                .values(updated_at=now)
            )
            after = _team(self._find(connection, before.id))
            record_audit(
                connection,
                actor=actor,
                action="team.update",
                object_type="team",
                object_id=before.id,
                before=before.to_json(),
                after=after.to_json(),
            )
        return after

    def create_service(
        self,
        team: str,
        name: str,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        actor: str = "admin",
    ) -> Service:
        """Create a service owned by ``team`` (id or name); names are unique per team."""
        try:
            with self._engine.begin() as connection:
                owner = self._find(connection, team)
                service = Service(new_id("svc"), owner["id"], _name(name, "service"), rpm, tpm)
                connection.execute(
                    insert(services).values(
                        id=service.id,
                        team_id=service.team_id,
                        name=service.name,
                        rpm=rpm,
                        tpm=tpm,
                        created_at=datetime.now(UTC),
                    )
                )
                record_audit(
                    connection,
                    actor=actor,
                    action="service.create",
                    object_type="service",
                    object_id=service.id,
                    before=None,
                    after=service.to_json(),
                )
        except IntegrityError:
            raise InvalidRequestError(
                f"The team already has a service named {name!r}.",
                param="name",
                code="service_exists",
            ) from None
        return service

    def list_services(self, team: str | None = None) -> list[Service]:
        """Every service, or those of one team (id or name)."""
        with self._engine.connect() as connection:
            query = select(services).order_by(services.c.team_id, services.c.name)
            if team is not None:
                query = query.where(services.c.team_id == self._find(connection, team)["id"])
            rows = connection.execute(query).mappings().all()
        return [_service(row) for row in rows]

    def resolve_service(self, team_id: str, service: str) -> Service:
        """A service of ``team_id`` by id or name."""
        with self._engine.connect() as connection:
            row = (
                connection.execute(
                    select(services).where(
                        services.c.team_id == team_id,
                        or_(services.c.id == service, services.c.name == service),
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"The team has no service {service!r}.", code="service_not_found")
        return _service(row)

    def update_service(
        self, team_id: str, service: str, changes: dict[str, Any], *, actor: str = "admin"
    ) -> Service:
        """Change a service's name or rate limits (``rpm``, ``tpm``; ``None`` removes one)."""
        unknown = set(changes) - set(SERVICE_FIELDS)
        if unknown:
            raise InvalidRequestError(
                f"Unknown service field {sorted(unknown)[0]!r}.", param=sorted(unknown)[0]
            )
        before = self.resolve_service(team_id, service)
        values = dict(changes)
        if "name" in values:
            values["name"] = _name(values["name"], "service")
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    update(services).where(services.c.id == before.id).values(**values)
                )
                # Keys carry their service's limits: mark them changed so replicas reload them.
                connection.execute(
                    update(virtual_keys)
                    .where(virtual_keys.c.service_id == before.id)
                    .values(updated_at=datetime.now(UTC))
                )
                row = (
                    connection.execute(select(services).where(services.c.id == before.id))
                    .mappings()
                    .one()
                )
                after = _service(row)
                record_audit(
                    connection,
                    actor=actor,
                    action="service.update",
                    object_type="service",
                    object_id=before.id,
                    before=before.to_json(),
                    after=after.to_json(),
                )
        except IntegrityError:
            raise InvalidRequestError(
                f"The team already has a service named {values.get('name')!r}.",
                param="name",
                code="service_exists",
            ) from None
        return after
