"""The one error tree of llmplane.

Every error a client can see is a subclass of :class:`LLMPlaneError`, carries its
HTTP status and OpenAI error ``type``/``code``, and is turned into an
OpenAI-shaped body by :func:`error_body` — the only place that does so::

    LLMPlaneError                       500 internal_error
    ├── InvalidRequestError             400 invalid_request_error
    │   ├── RequestTooLargeError        413 invalid_request_error / request_too_large
    │   └── GuardrailBlockedError       400 invalid_request_error / guardrail_blocked (input)
    ├── AuthenticationError             401 authentication_error / invalid_api_key
    ├── PermissionDeniedError           403 permission_error / model_not_allowed
    │   └── OutputBlockedError          403 permission_error / guardrail_blocked (the answer)
    ├── NotFoundError                   404 invalid_request_error / model_not_found
    ├── RateLimitError                  429 rate_limit_error (+ retry-after)
    │   └── BudgetExceededError         429 insufficient_quota / budget_exceeded
    ├── ServiceUnavailableError         503 service_unavailable (the platform's own store)
    │   └── GuardrailUnavailableError   503 guardrail_unavailable (a check failed, fail-closed)
    ├── ClientClosedError               499 client_disconnected (nobody reads it; for logs)
    └── UpstreamError                   502 upstream_error
        ├── UpstreamRejectedError       the upstream's own 4xx, passed through
        ├── UpstreamUnavailableError    503 upstream_unavailable
        └── UpstreamTimeoutError        504 upstream_timeout

    ConfigError                         not an HTTP error: stops start-up

Messages are written for the client: they never contain keys, provider
secrets, upstream URLs or stack traces.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "GuardrailBlockedError",
    "GuardrailUnavailableError",
    "InvalidRequestError",
    "LLMPlaneError",
    "NotFoundError",
    "OutputBlockedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UpstreamError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "error_body",
]


class LLMPlaneError(Exception):
    """Base of every error a client can receive; maps to one HTTP status."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "internal_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers = headers or {}

    @property
    def http_status(self) -> int:
        """The HTTP status to answer with (instances may override the class's)."""
        return self.status


class InvalidRequestError(LLMPlaneError):
    """Malformed JSON, wrong types or a parameter the platform does not accept."""

    status = 400
    error_type = "invalid_request_error"


class RequestTooLargeError(InvalidRequestError):
    """The request body is larger than the configured limit."""

    status = 413
    default_code = "request_too_large"


class GuardrailBlockedError(InvalidRequestError):
    """A guardrail policy refused the request's content; the message names the policy's rule
    and the types found, never the matched text."""

    default_code = "guardrail_blocked"


class AuthenticationError(LLMPlaneError):
    """Missing, unknown or revoked key."""

    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(LLMPlaneError):
    """The key is valid but may not do this (model not in its allowlist, admin route)."""

    status = 403
    error_type = "permission_error"
    default_code = "model_not_allowed"


class OutputBlockedError(PermissionDeniedError):
    """A guardrail policy refused to pass on the model's answer (the request was valid: the
    caller may not receive what came back). Names the rule, never the matched text."""

    default_code = "guardrail_blocked"


class NotFoundError(LLMPlaneError):
    """The model (or other named resource) does not exist."""

    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class RateLimitError(LLMPlaneError):
    """Too many requests or tokens; carries ``retry-after``."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceededError(RateLimitError):
    """Admitting the request could take a team, service or key past its budget."""

    error_type = "insufficient_quota"
    default_code = "budget_exceeded"


class ServiceUnavailableError(LLMPlaneError):
    """The platform itself cannot serve right now (its store is unreachable)."""

    status = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"


class GuardrailUnavailableError(ServiceUnavailableError):
    """A fail-closed policy could not check: a detector raised or missed its time budget."""

    default_code = "guardrail_unavailable"


class ClientClosedError(LLMPlaneError):
    """The client closed the connection before the answer was ready; the upstream call was
    cancelled. The status (nginx's 499) is for logs: nobody is left to read it."""

    status = 499
    error_type = "client_closed"
    default_code = "client_disconnected"


class UpstreamError(LLMPlaneError):
    """The provider answered with something unusable (5xx, broken response)."""

    status = 502
    error_type = "upstream_error"
    default_code = "bad_gateway"


class UpstreamRejectedError(UpstreamError):
    """The provider refused the request itself (a 4xx): its status is passed on."""

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param, headers=headers)
        self.upstream_status = upstream_status

    @property
    def http_status(self) -> int:
        return self.upstream_status

    @property
    def client_error_type(self) -> str:
        """OpenAI's type for the passed-on status."""
        if self.upstream_status == 429:
            return "rate_limit_error"
        return "invalid_request_error"


class UpstreamUnavailableError(UpstreamError):
    """The provider could not be reached (connection refused or dropped)."""

    status = 503
    default_code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    """The provider did not answer in time."""

    status = 504
    default_code = "upstream_timeout"


class ConfigError(Exception):
    """Invalid settings or ``llmplane.yaml``: names the file, the key path and the reason."""

    def __init__(
        self, reason: str, *, file: str | None = None, key_path: str | None = None
    ) -> None:
        self.reason = reason
        self.file = file
        self.key_path = key_path
        where = ": ".join(part for part in (file, key_path) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


def error_body(exc: LLMPlaneError) -> bytes:
    """The OpenAI-shaped JSON body for ``exc``."""
    error_type = exc.client_error_type if isinstance(exc, UpstreamRejectedError) else exc.error_type
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": error_type,
                "param": exc.param,
                "code": exc.code,
            }
        }
    )
