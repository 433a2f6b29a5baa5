"""A small client of the admin API for the CLI (``LLMPLANE_URL``, ``LLMPLANE_ADMIN_KEY``)."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

import click

from llmplane.accounting.admin_key import ADMIN_KEY_FILE

DEFAULT_URL = "http://127.0.0.1:4000"
_TIMEOUT_S = 30


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _admin_key() -> str:
    key = os.environ.get("LLMPLANE_ADMIN_KEY")
    if key:
        return key
    path = Path(os.environ.get("LLMPLANE_DATA_DIR", ".llmplane")) / ADMIN_KEY_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    _fail(
        "no admin key: set LLMPLANE_ADMIN_KEY (or run from the folder where `llmplane up` "
        "keeps .llmplane/admin_key)"
    )


def call(
    method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
) -> Any:
    """Call the admin API (with ``key``, else the admin key); print the server's error and
    exit 1 on failure."""
    _, answer = call_status(method, path, body, key=key, errors=False)
    return answer


def call_status(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    errors: bool = True,
) -> tuple[int, Any]:
    """Like :func:`call`, but with ``errors`` an HTTP error answers its status and body
    (``{"error": {...}}``) instead of exiting; an unreachable gateway still exits 1."""
    base = os.environ.get("LLMPLANE_URL", DEFAULT_URL).rstrip("/")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own gateway
        base + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {key or _admin_key()}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read())
            message = error["error"]["message"]
        except (ValueError, KeyError, TypeError):
            error, message = None, f"HTTP {exc.code}"
        if errors and error is not None:
            return exc.code, error
        _fail(f"{message} (HTTP {exc.code} from {base})")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        _fail(
            f"cannot reach llmplane at {base} ({reason}): is `llmplane up` running? "
            "Set LLMPLANE_URL to its address."
        )
