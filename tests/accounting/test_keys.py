"""Virtual keys on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from llmplane.accounting.keys import KeyService, hash_key
from llmplane.errors import AuthenticationError, InvalidRequestError, NotFoundError
from llmplane.store.tables import virtual_keys
from tests.canary import canary

ADMIN = canary("admin key", "sk-lp-admin-")


async def test_created_key_authenticates_with_its_allowlist(engine: Engine) -> None:
    keys = KeyService(engine, ADMIN)
    record, plaintext = keys.create_key("app", models=["mock", "mock"], team_id="team_1")
    principal = await keys.authenticate(plaintext)
    assert principal.key_id == record.id and principal.team_id == "team_1"
    assert principal.may_use("mock") and not principal.may_use("gpt-4o")
    assert record.models == ["mock"]


async def test_only_the_hash_is_stored(engine: Engine) -> None:
    _, plaintext = KeyService(engine, ADMIN).create_key("app")
    with engine.connect() as connection:
        row = connection.execute(select(virtual_keys)).mappings().one()
    assert plaintext not in str(dict(row))
    assert row["key_hash"] == hash_key(plaintext)


async def test_admin_key_and_bad_keys(engine: Engine) -> None:
    keys = KeyService(engine, ADMIN)
    assert (await keys.authenticate(ADMIN)).is_admin
    for bad in (None, "", "sk-lp-unknown", ADMIN + "x"):
        with pytest.raises(AuthenticationError):
            await keys.authenticate(bad)


async def test_revocation_is_immediate_here(engine: Engine) -> None:
    keys = KeyService(engine, ADMIN)
    record, plaintext = keys.create_key("app")
    await keys.authenticate(plaintext)  # now cached
    revoked = keys.revoke_key(record.id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError):
        await keys.authenticate(plaintext)
    with pytest.raises(NotFoundError):
        keys.revoke_key(record.id)


async def test_revocation_by_another_replica_is_seen_after_refresh(engine: Engine) -> None:
    here, there = KeyService(engine, ADMIN), KeyService(engine, ADMIN)
    record, plaintext = here.create_key("shared")
    await here.authenticate(plaintext)
    there.revoke_key(record.id)
    await here.authenticate(plaintext)  # still cached: the other replica changed the store
    assert await here.refresh_changes() == 1
    with pytest.raises(AuthenticationError):
        await here.authenticate(plaintext)


async def test_expired_key_is_refused(engine: Engine) -> None:
    keys = KeyService(engine, ADMIN)
    _, plaintext = keys.create_key("old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        await keys.authenticate(plaintext)


async def test_revoke_by_name_needs_a_unique_name(engine: Engine) -> None:
    keys = KeyService(engine, ADMIN)
    keys.create_key("twin")
    keys.create_key("twin")
    with pytest.raises(InvalidRequestError, match="by its id"):
        keys.revoke_key("twin")
    solo, _ = keys.create_key("solo")
    assert keys.revoke_key("solo").id == solo.id
    assert [k.name for k in keys.list_keys()] == ["twin", "twin"]
    assert len(keys.list_keys(include_revoked=True)) == 3
