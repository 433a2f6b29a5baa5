"""The lean Redis connection of the admission scripts, against a real Redis."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from llmplane.accounting.redis_counters import connect
from llmplane.accounting.resp import RespConnection, Script
from tests.canary import canary

ECHO = Script("return {KEYS[1], ARGV[1]}")


async def test_concurrent_calls_get_their_own_replies(redis: Redis, redis_url: str) -> None:
    connection = RespConnection(redis_url)
    replies = await asyncio.gather(*(connection.run(ECHO, [f"k{i}"], [i]) for i in range(500)))
    assert replies == [[f"k{i}".encode(), str(i).encode()] for i in range(500)]
    await connection.aclose()


async def test_a_script_flushed_from_redis_is_loaded_again(redis: Redis, redis_url: str) -> None:
    connection = RespConnection(redis_url)
    assert await connection.run(ECHO, ["a"], [1]) == [b"a", b"1"]
    await redis.script_flush()
    assert await connection.run(ECHO, ["b"], [2]) == [b"b", b"2"]
    await redis.script_flush()
    counter = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await connection.run_many(counter, [(["n"], [i]) for i in range(1, 101)])
    assert int(await redis.get("n") or 0) == 5050  # each call ran exactly once
    await connection.aclose()


async def test_a_timed_out_call_does_not_shift_later_replies(redis: Redis, redis_url: str) -> None:
    connection = RespConnection(redis_url, timeout_s=0.1)
    await connection.run(ECHO, ["warm"], [0])
    await redis.execute_command("CLIENT", "PAUSE", 300, "ALL")
    with pytest.raises(RedisTimeoutError):
        await connection.run(ECHO, ["late"], [1])
    await asyncio.sleep(0.35)
    assert await connection.run(ECHO, ["next"], [2]) == [b"next", b"2"]
    await connection.aclose()


async def test_a_lost_connection_fails_waiters_and_reconnects(redis: Redis, redis_url: str) -> None:
    connection = RespConnection(redis_url)
    await connection.run(ECHO, ["a"], [1])
    await redis.execute_command("CLIENT", "PAUSE", 300, "WRITE")  # scripts wait, KILL runs
    waiting = asyncio.create_task(connection.run(ECHO, ["b"], [2]))
    await asyncio.sleep(0.05)
    await redis.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    with pytest.raises(RedisConnectionError):
        await waiting
    assert await connection.run(ECHO, ["c"], [3]) == [b"c", b"3"]
    await connection.aclose()


async def test_user_password_and_database_from_the_url(redis: Redis, redis_url: str) -> None:
    password = canary("Redis password")
    await redis.execute_command("ACL", "SETUSER", "lp-test", "on", f">{password}", "~*", "+@all")
    try:
        host = urlsplit(redis_url).netloc.rsplit("@", 1)[-1]
        connection = RespConnection(f"redis://lp-test:{password}@{host}/3")
        await connection.run(Script("return redis.call('SET', KEYS[1], ARGV[1])"), ["db"], [3])
        await connection.aclose()
        database3 = connect(redis_url.rsplit("/", 1)[0] + "/3")
        assert await database3.get("db") == b"3"
        await database3.aclose()
        wrong = RespConnection(f"redis://lp-test:wrong@{host}/0")
        with pytest.raises(ResponseError):
            await wrong.run(ECHO, ["x"], [1])
        await wrong.aclose()
    finally:
        await redis.execute_command("ACL", "DELUSER", "lp-test")


async def test_an_unreachable_redis_is_a_connection_error() -> None:
    connection = RespConnection("redis://127.0.0.1:9/0")
    with pytest.raises(RedisConnectionError):
        await connection.run(ECHO, ["x"], [1])
    await connection.aclose()
