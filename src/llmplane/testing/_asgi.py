"""Plain-ASGI plumbing of the upstream simulator: types, body reading, replies, aborts.

No framework on purpose: the simulator must answer far faster than the gateway
it is benchmarked against, so each reply is one ``http.response.start`` and one
``http.response.body`` of bytes encoded once.

Cutting a connection (the ``drop`` and ``break_stream`` faults) needs the
transport, which ASGI does not expose: the simulator's server puts it in the
scope under the :data:`TRANSPORT_EXTENSION` extension (see
:mod:`llmplane.testing.upstream`). Served by anything else, the app raises
instead, which servers turn into a 500 or a closed connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

__all__ = [
    "TRANSPORT_EXTENSION",
    "Receive",
    "Scope",
    "Send",
    "abort_connection",
    "error_payload",
    "read_body",
    "send_error",
    "send_json",
    "serve_lifespan",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Iterable[tuple[bytes, bytes]]

TRANSPORT_EXTENSION = "llmplane.transport"
"""Scope extension holding ``{"transport": asyncio.Transport}`` of the request's connection."""

_JSON = b"application/json"


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def send_json(send: Send, status: int, payload: bytes, headers: Headers = ()) -> None:
    """A complete JSON reply."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON),
                (b"content-length", b"%d" % len(payload)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def error_payload(
    message: str, error_type: str, *, code: str | None = None, param: str | None = None
) -> bytes:
    """An OpenAI-shaped error body."""
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return orjson.dumps({"error": error})


async def send_error(
    send: Send,
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    *,
    code: str | None = None,
    param: str | None = None,
    headers: Headers = (),
) -> None:
    """A complete OpenAI-shaped error reply."""
    payload = error_payload(message, error_type, code=code, param=param)
    await send_json(send, status, payload, headers)


async def abort_connection(scope: Scope, receive: Receive) -> None:
    """Close the request's connection mid-exchange, as a crashed upstream would.

    Whatever was sent is flushed, then the socket is closed with no further
    bytes: no response if none was started, no final chunk if one was. The
    call returns once the server has seen the connection go, so that it
    neither answers a 500 nor logs an incomplete response.
    """
    extension = scope.get("extensions", {}).get(TRANSPORT_EXTENSION, {})
    close = getattr(extension.get("transport"), "close", None)  # uvloop's are no BaseTransport
    if not callable(close):
        raise ConnectionAbortedError("simulated connection drop (server exposes no transport)")
    close()
    while (await receive())["type"] != "http.disconnect":
        pass


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan events: the simulator has nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
