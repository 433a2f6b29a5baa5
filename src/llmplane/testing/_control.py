"""The simulator's control API under ``/_sim/``, for tests in another process.

=======  =================  ==============================================================
method   path               effect
=======  =================  ==============================================================
POST     /_sim/faults       ``{"faults": [rule, ...]}``: queue rules; answers the queue
GET      /_sim/faults       the queued rules with what is left of their ``count``
DELETE   /_sim/faults       clear queued rules and setting overrides
GET      /_sim/requests     the recorded requests ``[{"method", "path", "headers", "body"}]``
DELETE   /_sim/requests     forget them
POST     /_sim/config       override ``latency_ms``, ``ttft_ms``, ``tokens_per_second``
GET      /_sim/config       the settings in force
=======  =================  ==============================================================

Control requests are neither recorded nor subject to faults or the API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmplane.testing._asgi import Send, send_error, send_json

if TYPE_CHECKING:
    from llmplane.testing._app import SimulatorApp

__all__ = ["handle_control"]


class _NoRoute(Exception):
    """No control route for this method and path."""


def _json_object(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw or b"{}")
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    return value


def _apply(app: SimulatorApp, method: str, path: str, raw: bytes) -> Any:
    """The JSON answer to a control request; ``_NoRoute`` when there is no such route."""
    if path == "/_sim/faults":
        if method == "POST":
            faults = _json_object(raw).get("faults")
            if not isinstance(faults, list):
                raise ValueError("the body must be {'faults': [rule, ...]}")
            app.add_faults(*faults)
        elif method == "DELETE":
            app.reset_behaviour()
        elif method != "GET":
            raise _NoRoute(path)
        return {"faults": app.faults.pending()}
    if path == "/_sim/requests":
        if method == "DELETE":
            app.clear_requests()
        elif method != "GET":
            raise _NoRoute(path)
        return app.recorded_requests()
    if path == "/_sim/config":
        if method == "POST":
            app.configure(**_json_object(raw))
        elif method != "GET":
            raise _NoRoute(path)
        return app.settings()
    raise _NoRoute(path)


async def handle_control(app: SimulatorApp, method: str, path: str, raw: bytes, send: Send) -> None:
    """Answer one control request."""
    try:
        answer = _apply(app, method, path, raw)
    except _NoRoute:
        await send_error(send, 404, f"Unknown control route {method} {path}.", code="unknown_url")
    except ValueError as exc:  # bad JSON, bad fault rule or bad setting
        await send_error(send, 400, str(exc))
    else:
        await send_json(send, 200, orjson.dumps(answer))
