"""Resolved prompt versions kept in memory, so the request path reads no database.

A request that names a prompt (``{"name", "label"}`` or ``{"name", "version"}``) is
served from this cache: the version, its compiled template and its owner. An entry lives
``ttl_s`` seconds; a label move or a new version made through this process drops the
prompt's entries at once, and other replicas see the move when their entries expire, so
``ttl_s`` bounds how long a replica serves a label's previous version. Unknown prompts
and labels are cached too (as misses), so a client asking for one does not reach the
store on every request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from llmplane.accounting.keys import Principal
from llmplane.errors import NotFoundError
from llmplane.prompts.registry import (
    DEFAULT_LABEL,
    PromptVersion,
    load_version,
    may_read,
    prompt_not_found,
)
from llmplane.prompts.template import CompiledTemplate

DEFAULT_TTL_S = 10.0
_MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class ResolvedPrompt:
    """A version ready to render."""

    version: PromptVersion
    template: CompiledTemplate


Selector = tuple[str, str | None, int | None]  # name, label, version


class PromptResolver:
    """Finds prompt versions for requests, through a small in-memory TTL cache."""

    def __init__(self, engine: Engine, ttl_s: float = DEFAULT_TTL_S) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._entries: OrderedDict[Selector, tuple[float, ResolvedPrompt | NotFoundError]] = (
            OrderedDict()
        )

    async def resolve(
        self,
        principal: Principal,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
    ) -> ResolvedPrompt:
        """The version ``principal`` asked for; 404 (as for an unknown prompt) when it may
        not read it."""
        if version is None:  # no label is the default label: one entry for both
            label = label or DEFAULT_LABEL
        key = (name, label, version)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None or entry[0] <= now:
            entry = (now + self._ttl_s, await asyncio.to_thread(self._load, name, label, version))
            self._entries[key] = entry
            if len(self._entries) > _MAX_ENTRIES:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)  # least recently used goes first
        found = entry[1]
        if isinstance(found, NotFoundError):
            # The cached miss, without the frames of the request that raised it before
            # (re-raising one object would grow and keep its traceback).
            raise found.with_traceback(None)
        if not may_read(principal, found.version.team_id):
            raise prompt_not_found(name)
        return found

    def _load(
        self, name: str, label: str | None, version: int | None
    ) -> ResolvedPrompt | NotFoundError:
        try:
            with self._engine.connect() as connection:
                found = load_version(connection, name, label=label, version=version)
        except NotFoundError as missing:
            return missing
        return ResolvedPrompt(found, found.content.compile())

    def invalidate(self, name: str) -> None:
        """Forget every entry of ``name`` (after a label move or a new version)."""
        for key in [key for key in self._entries if key[0] == name]:
            del self._entries[key]
