"""Typed reading of admin request fields: one definition per shape, one 400 per mistake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llmplane.errors import InvalidRequestError
from llmplane.gateway.router import ModelRouter
from llmplane.telemetry.content import POLICIES

_MAX_RETENTION_DAYS = 3650


def refuse_unknown(body: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    """A 400 naming the first field of ``body`` that is not in ``known`` (a typo such as
    ``rmp`` must not pass silently)."""
    unknown = set(body) - set(known)
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidRequestError(f"Unknown {what} field '{field}'.", param=field)


def optional_str(body: dict[str, Any], name: str) -> str | None:
    """A string field, if present."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be a string.", param=name)
    return value


def required_str(body: dict[str, Any], name: str) -> str:
    """A non-empty string field."""
    value = optional_str(body, name)
    if value is None or not value.strip():
        raise InvalidRequestError(f"'{name}' is required.", param=name)
    return value


def optional_positive_int(body: dict[str, Any], name: str) -> int | None:
    """An integer field >= 1, if present."""
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidRequestError(f"'{name}' must be a positive integer.", param=name)
    return value


def optional_amount(body: dict[str, Any], name: str) -> float | None:
    """A number field >= 0 (USD), if present."""
    value = body.get(name)
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or value < 0
    ):
        raise InvalidRequestError(f"'{name}' must be a number >= 0.", param=name)
    return None if value is None else float(value)


def optional_models(router: ModelRouter, body: dict[str, Any]) -> list[str] | None:
    """A ``models`` allowlist of configured model names, if present."""
    models = body.get("models")
    if models is None:
        return None
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidRequestError("'models' must be an array of model names.", param="models")
    for model in models:
        router.require(model)
    return models


def query_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 query parameter as an aware UTC time (naive values are taken as UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"'{name}' must be an ISO 8601 date or time.", param=name
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def query_limit(value: str | None, maximum: int = 10_000) -> int:
    """A ``?limit=`` query parameter: a whole number from 1 to ``maximum`` (default 100)."""
    raw = "100" if value is None else value
    if not raw.isdigit() or not 0 < int(raw) <= maximum:
        raise InvalidRequestError(f"'limit' must be between 1 and {maximum}.", param="limit")
    return int(raw)


def optional_model_limits(
    router: ModelRouter, body: dict[str, Any]
) -> dict[str, dict[str, int | None]] | None:
    """A team's per-model rate limits, ``{"model": {"rpm": N, "tpm": M}}``, if present."""
    value = body.get("model_limits")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            '\'model_limits\' must map model names to {"rpm": N, "tpm": M}.',
            param="model_limits",
        )
    limits: dict[str, dict[str, int | None]] = {}
    for model, limit in value.items():
        router.require(model)
        if not isinstance(limit, dict) or not set(limit) <= {"rpm", "tpm"} or not limit:
            raise InvalidRequestError(
                f"'model_limits.{model}' must be an object with 'rpm' and/or 'tpm'.",
                param="model_limits",
            )
        limits[model] = {
            name: optional_positive_int(limit, name) for name in ("rpm", "tpm") if name in limit
        }
    return limits


def optional_log_bodies(body: dict[str, Any]) -> str | None:
    """A team's request-log policy (``none``, ``metadata``, ``redacted``, ``full``), if
    present."""
    value = body.get("log_bodies")
    if value is not None and value not in POLICIES:
        raise InvalidRequestError(
            f"'log_bodies' must be one of {', '.join(POLICIES)}.", param="log_bodies"
        )
    return value


def optional_retention_days(body: dict[str, Any]) -> int | None:
    """Days a team's request logs are kept (1 to 3650), if present."""
    value = optional_positive_int(body, "log_retention_days")
    if value is not None and value > _MAX_RETENTION_DAYS:
        raise InvalidRequestError(
            f"'log_retention_days' must be at most {_MAX_RETENTION_DAYS}.",
            param="log_retention_days",
        )
    return value
