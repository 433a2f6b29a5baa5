"""Virtual keys: created, listed and revoked here; authenticated from an in-memory cache.

A key (``sk-lp-…``) is shown once and stored only as its SHA-256 hash. The hot
path hashes the presented key and looks it up in a dict; only a cache miss
reaches the database (in a worker thread). Revocation evicts the entry at once
in this process, and :meth:`KeyService.refresh_changes` (polled in the
background) evicts keys changed by other replicas within the poll interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Engine, RowMapping

from llmplane.accounting.audit import record_audit
from llmplane.accounting.limits import RateLimit
from llmplane.config.guardrails import GuardrailsConfig
from llmplane.config.platform import RequestLogDefaults
from llmplane.errors import AuthenticationError, InvalidRequestError, NotFoundError
from llmplane.ids import new_id
from llmplane.store.tables import services, teams, virtual_keys
from llmplane.telemetry.content import LogPolicy, resolve_policy

KEY_PREFIX = "sk-lp-"
MEMBER, TEAM_ADMIN = "member", "team_admin"
ROLES = (MEMBER, TEAM_ADMIN)
_NEGATIVE_TTL_S = 2.0
_NEGATIVE_CACHE_SIZE = 10_000
_CLOCK_SKEW = timedelta(seconds=2)


def generate_key() -> str:
    """A new random virtual key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key; a fast hash is enough for 256-bit random secrets."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from a key, attached to every request and ledger row."""

    key_id: str
    name: str
    is_admin: bool = False
    team_id: str | None = None
    service_id: str | None = None
    user_id: str | None = None
    models: frozenset[str] | None = None
    expires_at: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    team_models: frozenset[str] | None = None
    team_max_tokens: int | None = None
    role: str = "member"
    service_rpm: int | None = None
    service_tpm: int | None = None
    team_rpm: int | None = None
    team_tpm: int | None = None
    # model name -> (rpm, tpm) of the team's use of that model
    team_model_limits: Mapping[str, tuple[int | None, int | None]] | None = field(
        default=None, compare=False
    )
    # What the key's requests leave in the stored request logs (its team's policy, else the
    # platform's default); None: nothing (the default).
    log_policy: LogPolicy | None = field(default=None, compare=False)
    # The name of the guardrail policy that applies to the key (llmplane.yaml's
    # guardrails.keys, else .teams, else .default), resolved when the key is loaded.
    guardrail_policy: str | None = None
    limits: tuple[RateLimit, ...] = field(init=False, compare=False)
    model_limits: Mapping[str, RateLimit] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Resolved once per key load, so that admission only walks a tuple.
        limits: list[RateLimit] = []
        if self.rpm is not None or self.tpm is not None:
            limits.append(RateLimit(f"key:{self.key_id}", "key", self.rpm, self.tpm))
        if self.service_id and (self.service_rpm is not None or self.service_tpm is not None):
            limits.append(
                RateLimit(
                    f"service:{self.service_id}", "service", self.service_rpm, self.service_tpm
                )
            )
        if self.team_id and (self.team_rpm is not None or self.team_tpm is not None):
            limits.append(RateLimit(f"team:{self.team_id}", "team", self.team_rpm, self.team_tpm))
        object.__setattr__(self, "limits", tuple(limits))
        by_model = None
        if self.team_id and self.team_model_limits:
            by_model = {
                model: RateLimit(
                    f"team:{self.team_id}:model:{model}",
                    f"team's use of model {model!r}",
                    rpm,
                    tpm,
                )
                for model, (rpm, tpm) in self.team_model_limits.items()
            }
        object.__setattr__(self, "model_limits", by_model)

    def limits_for(self, model: str) -> tuple[RateLimit, ...]:
        """Every rate limit a call to ``model`` counts against."""
        if self.model_limits is not None:
            per_model = self.model_limits.get(model)
            if per_model is not None:
                return (*self.limits, per_model)
        return self.limits

    def manages_team(self, team_id: str | None) -> bool:
        """Whether this caller may administer ``team_id``: the admin, or its team admins."""
        if self.is_admin:
            return True
        return self.role == TEAM_ADMIN and self.team_id is not None and self.team_id == team_id

    def may_use(self, model: str) -> bool:
        """Whether the key's and its team's allowlists (where set) both include ``model``."""
        if self.is_admin:
            return True
        return (self.models is None or model in self.models) and (
            self.team_models is None or model in self.team_models
        )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as admins see it: never the key itself, only a hint."""

    id: str
    name: str
    key_hint: str
    team_id: str | None
    service_id: str | None
    user_id: str | None
    models: list[str] | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None
    rpm: int | None = None
    tpm: int | None = None
    role: str = MEMBER

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (times in ISO 8601)."""
        return {
            "id": self.id,
            "name": self.name,
            "key_hint": self.key_hint,
            "team_id": self.team_id,
            "service_id": self.service_id,
            "user_id": self.user_id,
            "models": self.models,
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at),
            "expires_at": _iso(self.expires_at),
            "rpm": self.rpm,
            "tpm": self.tpm,
            "role": self.role,
            "status": "revoked" if self.revoked_at else "active",
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _record(row: RowMapping) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        key_hint=row["key_hint"],
        team_id=row["team_id"],
        service_id=row["service_id"],
        user_id=row["user_id"],
        models=row["models"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        expires_at=row["expires_at"],
        rpm=row["rpm"],
        tpm=row["tpm"],
        role=row["role"],
    )


def _guardrail_policy(
    guardrails: GuardrailsConfig | None,
    key_id: str,
    key_name: str,
    team_id: str | None,
    team_name: str | None,
) -> str | None:
    """The guardrail policy a key's requests run under, when the platform has any."""
    if guardrails is None or not guardrails.enabled:
        return None
    return guardrails.policy_for(key_id, key_name, team_id, team_name)


def _principal(
    row: RowMapping, log_defaults: RequestLogDefaults, guardrails: GuardrailsConfig | None = None
) -> Principal:
    expires = row["expires_at"]
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return Principal(
        key_id=row["id"],
        name=row["name"],
        team_id=row["team_id"],
        service_id=row["service_id"],
        user_id=row["user_id"],
        models=frozenset(row["models"]) if row["models"] is not None else None,
        expires_at=expires.timestamp() if expires is not None else None,
        rpm=row["rpm"],
        tpm=row["tpm"],
        team_models=frozenset(row["team_models"]) if row["team_models"] is not None else None,
        team_max_tokens=row["team_max_tokens"],
        role=row["role"],
        service_rpm=row["service_rpm"],
        service_tpm=row["service_tpm"],
        team_rpm=row["team_rpm"],
        team_tpm=row["team_tpm"],
        team_model_limits=model_limits(row["team_model_limits"]),
        log_policy=resolve_policy(
            row["team_log_bodies"], row["team_log_retention_days"], log_defaults
        ),
        guardrail_policy=_guardrail_policy(
            guardrails, row["id"], row["name"], row["team_id"], row["team_name"]
        ),
    )


def model_limits(
    stored: Mapping[str, Mapping[str, int | None]] | None,
) -> dict[str, tuple[int | None, int | None]] | None:
    """A team's stored ``{model: {"rpm": N, "tpm": M}}`` as ``{model: (rpm, tpm)}``."""
    if not stored:
        return None
    return {model: (limit.get("rpm"), limit.get("tpm")) for model, limit in stored.items()}


class KeyService:
    """Creates, lists, revokes and authenticates virtual keys and the admin key."""

    def __init__(
        self,
        engine: Engine,
        admin_key: str,
        log_defaults: RequestLogDefaults | None = None,
        guardrails: GuardrailsConfig | None = None,
    ) -> None:
        """``log_defaults``: the platform's request-log policy
        (:class:`~llmplane.config.platform.RequestLogDefaults`; default: none);
        ``guardrails``: who gets which guardrail policy (default: nobody)."""
        self._engine = engine
        self._admin_hash = hash_key(admin_key)
        self._log_defaults = log_defaults if log_defaults is not None else RequestLogDefaults()
        self._guardrails = guardrails
        self._admin = Principal(
            key_id="admin",
            name="admin",
            is_admin=True,
            log_policy=resolve_policy(None, None, self._log_defaults),
            guardrail_policy=_guardrail_policy(guardrails, "admin", "admin", None, None),
        )
        self._cache: dict[str, Principal] = {}
        self._negative: OrderedDict[str, float] = OrderedDict()
        self._changes_since = datetime.now(UTC)

    async def authenticate(self, presented: str | None) -> Principal:
        """The principal for a presented key; :class:`AuthenticationError` otherwise."""
        if not presented:
            raise AuthenticationError("Missing API key: send it as 'Authorization: Bearer <key>'.")
        digest = hash_key(presented)
        if hmac.compare_digest(digest, self._admin_hash):
            return self._admin
        principal = self._cache.get(digest)
        if principal is None:
            principal = await self._load(digest)
        if principal.expires_at is not None and principal.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.", code="expired_api_key")
        return principal

    async def _load(self, digest: str) -> Principal:
        denied_at = self._negative.get(digest)
        if denied_at is not None and time.monotonic() - denied_at < _NEGATIVE_TTL_S:
            raise AuthenticationError("Invalid API key.")
        row = await asyncio.to_thread(self._fetch_active, digest)
        if row is None or not hmac.compare_digest(row["key_hash"], digest):
            self._negative[digest] = time.monotonic()
            self._negative.move_to_end(digest)
            if len(self._negative) > _NEGATIVE_CACHE_SIZE:
                self._negative.popitem(last=False)
            raise AuthenticationError("Invalid API key.")
        principal = _principal(row, self._log_defaults, self._guardrails)
        self._cache[digest] = principal
        return principal

    def _fetch_active(self, digest: str) -> RowMapping | None:
        query = (
            select(
                virtual_keys,
                teams.c.models.label("team_models"),
                teams.c.name.label("team_name"),
                teams.c.max_tokens.label("team_max_tokens"),
                teams.c.rpm.label("team_rpm"),
                teams.c.tpm.label("team_tpm"),
                teams.c.model_limits.label("team_model_limits"),
                teams.c.log_bodies.label("team_log_bodies"),
                teams.c.log_retention_days.label("team_log_retention_days"),
                services.c.rpm.label("service_rpm"),
                services.c.tpm.label("service_tpm"),
            )
            .select_from(
                virtual_keys.outerjoin(teams, teams.c.id == virtual_keys.c.team_id).outerjoin(
                    services, services.c.id == virtual_keys.c.service_id
                )
            )
            .where(virtual_keys.c.key_hash == digest, virtual_keys.c.revoked_at.is_(None))
        )
        with self._engine.connect() as connection:
            return connection.execute(query).mappings().first()

    def create_key(
        self,
        name: str,
        *,
        models: list[str] | None = None,
        team_id: str | None = None,
        service_id: str | None = None,
        user_id: str | None = None,
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        role: str = MEMBER,
        actor: str = "admin",
    ) -> tuple[KeyRecord, str]:
        """Store a new key and return its record and the plaintext (shown once)."""
        if role not in ROLES:
            raise InvalidRequestError("'role' must be member or team_admin.", param="role")
        if role == TEAM_ADMIN and team_id is None:
            raise InvalidRequestError("A team_admin key needs a team.", param="role")
        if not name.strip():
            raise InvalidRequestError("A key needs a non-empty name.", param="name")
        plaintext = generate_key()
        now = datetime.now(UTC)
        record = KeyRecord(
            id=new_id("key"),
            name=name.strip(),
            key_hint=f"{plaintext[:8]}…{plaintext[-4:]}",
            team_id=team_id,
            service_id=service_id,
            user_id=user_id,
            models=sorted(set(models)) if models is not None else None,
            created_at=now,
            revoked_at=None,
            expires_at=expires_at,
            rpm=rpm,
            tpm=tpm,
            role=role,
        )
        digest = hash_key(plaintext)
        with self._engine.begin() as connection:
            connection.execute(
                insert(virtual_keys).values(
                    id=record.id,
                    key_hash=digest,
                    key_hint=record.key_hint,
                    name=record.name,
                    team_id=team_id,
                    service_id=service_id,
                    user_id=user_id,
                    models=record.models,
                    metadata=metadata,
                    created_at=now,
                    updated_at=now,
                    expires_at=expires_at,
                    revoked_at=None,
                    rpm=rpm,
                    tpm=tpm,
                    role=role,
                )
            )
            record_audit(
                connection,
                actor=actor,
                action="key.create",
                object_type="key",
                object_id=record.id,
                before=None,
                after=record.to_json(),
            )
        self._negative.pop(digest, None)
        return record, plaintext

    def list_keys(
        self, *, include_revoked: bool = False, team_id: str | None = None
    ) -> list[KeyRecord]:
        """All keys (or one team's), newest first."""
        query = select(virtual_keys).order_by(virtual_keys.c.created_at.desc())
        if team_id is not None:
            query = query.where(virtual_keys.c.team_id == team_id)
        if not include_revoked:
            query = query.where(virtual_keys.c.revoked_at.is_(None))
        with self._engine.connect() as connection:
            return [_record(row) for row in connection.execute(query).mappings()]

    def revoke_key(self, id_or_name: str, *, actor: str = "admin") -> KeyRecord:
        """Revoke a key by id (or by name when the name is unique); effective at once here."""
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            rows = (
                connection.execute(
                    select(virtual_keys).where(
                        or_(virtual_keys.c.id == id_or_name, virtual_keys.c.name == id_or_name),
                        virtual_keys.c.revoked_at.is_(None),
                    )
                )
                .mappings()
                .all()
            )
            if not rows:
                raise NotFoundError(
                    f"No active key with id or name {id_or_name!r}.", code="key_not_found"
                )
            if len(rows) > 1:
                raise InvalidRequestError(
                    f"{len(rows)} active keys are named {id_or_name!r}: revoke one by its id.",
                    code="ambiguous_key_name",
                )
            row = rows[0]
            connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == row["id"])
                .values(revoked_at=now, updated_at=now)
            )
            revoked = replace(_record(row), revoked_at=now)
            record_audit(
                connection,
                actor=actor,
                action="key.revoke",
                object_type="key",
                object_id=row["id"],
                before=_record(row).to_json(),
                after=revoked.to_json(),
            )
        self._cache.pop(row["key_hash"], None)
        return revoked

    def rotate_key(self, id_or_name: str, *, actor: str = "admin") -> tuple[KeyRecord, str]:
        """Give a key a new secret (same id, team, limits and budget); the old one stops
        working at once here and within the refresh interval on other replicas."""
        key_id = self.resolve_key_id(id_or_name)
        plaintext = generate_key()
        digest = hash_key(plaintext)
        hint = f"{plaintext[:8]}…{plaintext[-4:]}"
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            row = (
                connection.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))
                .mappings()
                .one()
            )
            connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == key_id)
                .values(key_hash=digest, key_hint=hint, updated_at=now)
            )
            before = _record(row)
            after = replace(before, key_hint=hint)
            record_audit(
                connection,
                actor=actor,
                action="key.rotate",
                object_type="key",
                object_id=key_id,
                before=before.to_json(),
                after=after.to_json(),
            )
        self._cache.pop(row["key_hash"], None)
        return after, plaintext

    def key_team(self, id_or_name: str) -> str | None:
        """The team of the active key with this id or (unique) name."""
        key_id = self.resolve_key_id(id_or_name)
        with self._engine.connect() as connection:
            team: str | None = connection.execute(
                select(virtual_keys.c.team_id).where(virtual_keys.c.id == key_id)
            ).scalar_one()
        return team

    def key_record(self, id_or_name: str) -> KeyRecord:
        """The active key with this id or (unique) name."""
        key_id = self.resolve_key_id(id_or_name)
        with self._engine.connect() as connection:
            row = (
                connection.execute(select(virtual_keys).where(virtual_keys.c.id == key_id))
                .mappings()
                .one()
            )
        return _record(row)

    def resolve_key_id(self, id_or_name: str) -> str:
        """The id of the active key with this id or (unique) name."""
        with self._engine.connect() as connection:
            ids = (
                connection.execute(
                    select(virtual_keys.c.id).where(
                        or_(virtual_keys.c.id == id_or_name, virtual_keys.c.name == id_or_name),
                        virtual_keys.c.revoked_at.is_(None),
                    )
                )
                .scalars()
                .all()
            )
        if len(ids) != 1:
            raise (NotFoundError if not ids else InvalidRequestError)(
                f"{'No' if not ids else 'More than one'} active key with id or name "
                f"{id_or_name!r}.",
                code="key_not_found" if not ids else "ambiguous_key_name",
            )
        return str(ids[0])

    async def refresh_changes(self) -> int:
        """Evict cached keys changed since the last call (other replicas' revocations)."""
        since = self._changes_since - _CLOCK_SKEW
        self._changes_since = datetime.now(UTC)
        hashes = await asyncio.to_thread(self._changed_hashes, since)
        evicted = 0
        for digest in hashes:
            evicted += self._cache.pop(digest, None) is not None
        return evicted

    def _changed_hashes(self, since: datetime) -> list[str]:
        query = select(virtual_keys.c.key_hash).where(virtual_keys.c.updated_at >= since)
        with self._engine.connect() as connection:
            return list(connection.execute(query).scalars())
