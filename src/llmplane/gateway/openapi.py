"""The OpenAPI document of the gateway's HTTP surface, built from the routes themselves.

Every route contributes its method, path, summary and description (its
docstring), path parameters, the bearer-key security and its access policy
(``x-llmplane-policy``), so the document cannot drift from the routes. Request
and response bodies are described as JSON objects; the OpenAI-compatible
routes follow OpenAI's own published schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Route

from llmplane import __version__

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
_ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS_TEXT = {
    "400": "Malformed request",
    "401": "Missing or unknown key",
    "403": "Not allowed",
    "404": "Not found",
    "429": "Rate limit or budget",
    "503": "Unavailable",
}


def _operation(route: Route, method: str) -> dict[str, Any]:
    doc = (route.endpoint.__doc__ or "").strip()
    summary, _, description = doc.partition("\n")
    policy = getattr(route.endpoint, "policy", None)
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{route.name}",
        "summary": summary.strip(),
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **{
                code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
                for code, text in _STATUS_TEXT.items()
            },
        },
        "x-llmplane-policy": str(policy) if policy is not None else None,
    }
    if description.strip():
        operation["description"] = " ".join(description.split())
    params = _PARAM.findall(route.path)
    if params:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in params
        ]
    if method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    if str(policy) != "public":
        operation["security"] = [{"bearerKey": []}]
    return operation


def openapi_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                paths.setdefault(path, {})[method.lower()] = _operation(route, method)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmplane",
            "version": __version__,
            "description": "The internal LLM API and its admin API.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": ["string", "null"]},
                                "code": {"type": ["string", "null"]},
                            },
                        }
                    },
                }
            },
        },
    }
