"""A lean Redis connection for the admission scripts: one pipelined socket, hiredis codec.

Every gateway call in shared mode runs one admission script and a share of a
settlement batch. redis-py's asyncio client spends 200–400 µs of CPU per such
command here (command packing in Python, a pool checkout and a timeout scope
per call); this connection spends a few tens: hiredis (C) packs commands and
parses replies, and every caller shares one socket, since Redis answers in
order — each command's future waits in a FIFO until its reply arrives. A
command that times out keeps its place in the FIFO, so later replies still
meet their own callers.

Errors are redis-py's (:class:`redis.exceptions.ConnectionError`,
``TimeoutError``, ``ResponseError``), so callers handle one family. A lost
connection fails every waiting command and is reopened by the next call.
Everything else (rebuilding counters, reading spend) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _Protocol(asyncio.Protocol):
    """One socket: writes packed commands, matches replies to waiters in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self.waiters.popleft()
            if waiter.done():
                continue  # its caller timed out: the reply is dropped, the order holds
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(ResponseError(str(reply)))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self.lost)

    @property
    def usable(self) -> bool:
        """Open and not closing."""
        return self.lost is None and self.transport is not None and not self.transport.is_closing()

    def send(self, packed: bytes, count: int) -> list[asyncio.Future[Any]]:
        """Write ``count`` packed commands at once; one future per reply."""
        if not self.usable or self.transport is None:
            raise self.lost or RedisConnectionError("connection to Redis is closed")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        self.waiters.extend(futures)
        self.transport.write(packed)
        return futures


class Script:
    """A Lua script run by its SHA-1, loaded on first use (and again after a Redis restart)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _pack(*parts: Any) -> bytes:
    # hiredis's stub types the argument as a one-element tuple; any length is accepted.
    packed: bytes = hiredis.pack_command(parts)
    return packed


def _command(script: Script, keys: Sequence[str], args: Sequence[Any]) -> bytes:
    return _pack("EVALSHA", script.sha, len(keys), *keys, *args)


def _noscript(result: Any) -> bool:
    return isinstance(result, ResponseError) and str(result).startswith("NOSCRIPT")


class RespConnection:
    """Runs scripts on one shared, pipelined connection to ``url`` (``redis://`` or
    ``rediss://``, with optional user, password and database number)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError(f"unsupported Redis URL scheme {parsed.scheme!r}")
        self._host = parsed.hostname or "localhost"
        self._port = parsed.port or 6379
        self._ssl = ssl.create_default_context() if parsed.scheme == "rediss" else None
        self._username = unquote(parsed.username) if parsed.username else None
        self._password = unquote(parsed.password) if parsed.password else None
        path = parsed.path.lstrip("/")
        self._db = int(path) if path else 0
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_Protocol, self._host, self._port, ssl=self._ssl),
                self._timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
        setup: list[tuple[Any, ...]] = []
        if self._password is not None:
            setup.append(("AUTH", *filter(None, (self._username, self._password))))
        if self._db:
            setup.append(("SELECT", self._db))
        if setup:
            packed = b"".join(_pack(*c) for c in setup)
            try:
                for future in protocol.send(packed, len(setup)):
                    await self._wait(future)
            except BaseException:
                if protocol.transport is not None:
                    protocol.transport.close()
                raise
        return protocol

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.usable:
            return protocol
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._open())
        try:
            self._protocol = await asyncio.shield(self._connecting)
        except BaseException:
            self._connecting = None
            raise
        return self._protocol

    async def _wait(self, future: asyncio.Future[Any]) -> Any:
        # A timed-out future is cancelled; its reply, when it comes, is dropped in order.
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            raise RedisTimeoutError("Redis did not answer in time") from None

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` once and return its reply."""
        protocol = await self._connection()
        (future,) = protocol.send(_command(script, keys, args), 1)
        try:
            return await self._wait(future)
        except ResponseError as exc:
            if not _noscript(exc):
                raise
        await self._load(script)
        (future,) = (await self._connection()).send(_command(script, keys, args), 1)
        return await self._wait(future)

    async def run_many(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> None:
        """Run ``script`` once per (keys, args), written as one pipelined burst; raise the
        first error after every reply is in. Calls answered ``NOSCRIPT`` did not run: the
        script is loaded and they are sent again, once."""
        results = await self._burst(script, calls)
        unloaded = [call for call, result in zip(calls, results, strict=True) if _noscript(result)]
        errors = [r for r in results if isinstance(r, BaseException) and not _noscript(r)]
        if unloaded:
            await self._load(script)
            errors += [
                r for r in await self._burst(script, unloaded) if isinstance(r, BaseException)
            ]
        if errors:
            raise errors[0]

    async def _burst(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
    ) -> list[Any]:
        """One write of every call; their replies (or errors), within one timeout."""
        protocol = await self._connection()
        packed = b"".join(_command(script, keys, args) for keys, args in calls)
        futures = protocol.send(packed, len(calls))
        try:
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.gather(*futures, return_exceptions=True)
        except TimeoutError:
            raise RedisTimeoutError("Redis did not answer in time") from None

    async def _load(self, script: Script) -> None:
        protocol = await self._connection()
        packed = _pack("SCRIPT", "LOAD", script.source)
        (future,) = protocol.send(packed, 1)
        await self._wait(future)

    async def aclose(self) -> None:
        """Close the socket (waiting commands fail with a connection error)."""
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
