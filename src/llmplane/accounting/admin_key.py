"""The admin key: ``LLMPLANE_ADMIN_KEY``, else one generated on first start.

A generated key lives in ``<data-dir>/admin_key``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ADMIN_KEY_FILE = "admin_key"


def ensure_admin_key(data_dir: Path, configured: str | None) -> tuple[str, bool]:
    """The admin key and whether it was just generated (then it is shown once).

    A generated key is written with mode 0600, created exclusively so that two
    processes starting together cannot each write a different key.
    """
    if configured:
        return configured, False
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key, False
    key = "sk-lp-admin-" + secrets.token_urlsafe(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key, True
