"""Cached reads of the prompt registry (``GET /v1/prompts/{name}?label=|version=``).

``Prompts(base_url, api_key, ttl_s=60).get("support-reply", label="production")`` returns
a :class:`PromptVersion`. The copy is kept in memory:

- fresh for ``min(ttl_s, the answer's max-age)``: a get within it makes no request;
- then revalidated with ``If-None-Match``: a 304 keeps the copy (fresh again), a 200
  replaces it (a label that moved is seen then);
- a version-pinned get (``version=3``) is immutable (the gateway says so): cached for
  the life of the object;
- stale-if-error: when the gateway cannot be reached or answers 5xx/429, a cached copy
  (however old) is returned with a :class:`StalePromptWarning`; without one,
  :class:`PromptFetchError`. A 4xx answer (unknown prompt, bad key) is always raised.

Thread-safe; it makes blocking HTTP calls (``urllib``), so an async service should call
``get`` in a worker thread, or rely on the cache being fresh.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from llmplane.prompts.content import PromptContent
from llmplane.prompts.template import CompiledTemplate


class PromptFetchError(RuntimeError):
    """The gateway refused the prompt (``status``: its HTTP status; 0 unreachable), and
    no cached copy could stand in."""

    def __init__(self, message: str, status: int = 0, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class StalePromptWarning(UserWarning):
    """A cached prompt was served because the gateway could not answer."""


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One version of a registered prompt, as the gateway serves it."""

    name: str
    version: int
    label: str | None  # the label it was fetched by (None: by version number)
    template: str | list[dict[str, str]]
    variables: dict[str, Any]  # name -> {type, required, default, description}
    model: str | None
    params: dict[str, Any]
    tools: list[dict[str, Any]] | None
    response_format: dict[str, Any] | None
    fingerprint: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    _compiled: CompiledTemplate = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, served: Mapping[str, Any]) -> PromptVersion:
        """From the gateway's answer."""
        content = PromptContent.parse(dict(served))
        return cls(
            name=str(served["name"]),
            version=int(served["version"]),
            label=served.get("label"),
            template=served["template"],
            variables=dict(served.get("variables") or {}),
            model=served.get("model"),
            params=dict(served.get("params") or {}),
            tools=served.get("tools"),
            response_format=served.get("response_format"),
            fingerprint=str(served.get("fingerprint", "")),
            raw=dict(served),
            _compiled=content.compile(),
        )

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """The chat messages, rendered exactly as the gateway renders ``prompt:
        {name, variables}`` (defaults filled; types checked; an unknown or missing
        variable raises :class:`~llmplane.errors.InvalidRequestError` naming it)."""
        return self._compiled.render(variables)


@dataclass(slots=True)
class _Entry:
    version: PromptVersion
    etag: str | None
    fresh_until: float  # on the clock (time.monotonic); inf: immutable


def _freshness(cache_control: str | None, ttl_s: float) -> float:
    """Seconds an answer stays fresh: ``min(ttl_s, max-age)``; inf when immutable."""
    directives = [d.strip().lower() for d in (cache_control or "").split(",") if d.strip()]
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    if "immutable" in directives:
        return float("inf")
    for directive in directives:
        if directive.startswith("max-age="):
            try:
                return min(ttl_s, max(0.0, float(directive[8:])))
            except ValueError:
                break
    return ttl_s


class Prompts:
    """Registered prompts of the gateway at ``base_url``, read with ``api_key``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        ttl_s: float = 60.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._api_key = api_key
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: dict[tuple[str, str, str], _Entry] = {}
        self._lock = threading.Lock()

    def get(self, name: str, label: str | None = None, version: int | None = None) -> PromptVersion:
        """The version ``label`` (default ``production``) points at, or ``version``."""
        if label is not None and version is not None:
            raise ValueError("give a label or a version, not both")
        if version is not None:
            key, query = (name, "version", str(version)), {"version": str(version)}
        else:
            key, query = (name, "label", label or "production"), {"label": label or "production"}
        with self._lock:
            entry = self._cache.get(key)
        if entry is not None and self._clock() < entry.fresh_until:
            return entry.version
        url = f"{self.base_url}/v1/prompts/{quote(name, safe='')}?{urlencode(query)}"
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if entry is not None and entry.etag is not None:
            headers["If-None-Match"] = entry.etag
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - the gateway's URL
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:  # noqa: S310
                body = reply.read()
                status, reply_headers = reply.status, reply.headers
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and entry is not None:
                self._store(key, entry.version, entry.etag, exc.headers.get("Cache-Control"))
                return entry.version
            message, code = _error(exc)
            if entry is not None and (exc.code >= 500 or exc.code == 429):
                return self._stale(entry, f"HTTP {exc.code}")
            raise PromptFetchError(f"{message} (HTTP {exc.code})", exc.code, code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if entry is not None:
                return self._stale(entry, type(reason).__name__)
            raise PromptFetchError(
                f"could not reach the gateway at {self.base_url}: {type(reason).__name__}"
            ) from None
        if status != 200:  # pragma: no cover - urllib raises for the others
            raise PromptFetchError(f"unexpected HTTP {status}", status)
        found = PromptVersion.from_json(json.loads(body))
        self._store(key, found, reply_headers.get("ETag"), reply_headers.get("Cache-Control"))
        return found

    def clear(self) -> None:
        """Forget every cached prompt."""
        with self._lock:
            self._cache.clear()

    def _store(
        self,
        key: tuple[str, str, str],
        version: PromptVersion,
        etag: str | None,
        cache_control: str | None,
    ) -> None:
        seconds = _freshness(cache_control, self.ttl_s)
        if "no-store" in (cache_control or "").lower():
            return
        with self._lock:
            self._cache[key] = _Entry(version, etag, self._clock() + seconds)

    def _stale(self, entry: _Entry, why: str) -> PromptVersion:
        warnings.warn(
            f"llmplane: serving the cached prompt {entry.version.name} version "
            f"{entry.version.version}: the gateway did not answer ({why})",
            StalePromptWarning,
            stacklevel=3,
        )
        return entry.version


def _error(exc: urllib.error.HTTPError) -> tuple[str, str | None]:
    try:
        error = json.loads(exc.read())["error"]
        return str(error["message"]), error.get("code")
    except (ValueError, KeyError, TypeError, OSError):
        return f"HTTP {exc.code}", None
