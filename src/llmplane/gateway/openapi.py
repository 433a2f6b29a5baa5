"""The OpenAPI document of the gateway's HTTP surface, built from the routes themselves.

Every route contributes its method, path, summary and description (its
docstring), path parameters, the bearer-key security and its access policy
(``x-llmplane-policy``), so the document cannot drift from the routes. Request
and response bodies and query parameters come from each route's
:func:`~llmplane.gateway.http.documented` declaration and the schemas in
:mod:`llmplane.gateway.schemas`; the tests validate real traffic against them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Route

from llmplane import __version__
from llmplane.gateway.http import ApiDoc
from llmplane.gateway.schemas import SCHEMAS

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


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(route: Route, method: str) -> dict[str, Any]:
    doc = (route.endpoint.__doc__ or "").strip()
    summary, _, description = doc.partition("\n")
    policy = getattr(route.endpoint, "policy", None)
    api: ApiDoc | None = getattr(route.endpoint, "api", None)
    success: dict[str, Any] = {"description": "OK"}
    if api is not None:
        success["content"] = _json(_ref(api.response)) if api.response is not None else {}
        for media, text in api.other_media:
            success["content"][media] = {"schema": {"type": "string", "description": text}}
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{route.name}",
        "summary": summary.strip(),
        "responses": {
            str(api.status if api else 200): success,
            **{
                code: {"description": text, "content": _json(_ERROR)}
                for code, text in _STATUS_TEXT.items()
            },
        },
        "x-llmplane-policy": str(policy) if policy is not None else None,
    }
    if description.strip():
        operation["description"] = " ".join(description.split())
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    if api is not None:
        parameters += [
            {"name": name, "in": "query", "description": text, "schema": {"type": "string"}}
            for name, text in api.query
        ]
    if parameters:
        operation["parameters"] = parameters
    if api is not None and api.request is not None:
        operation["requestBody"] = {"required": True, "content": _json(_ref(api.request))}
    if str(policy) != "public":
        operation["security"] = [{"bearerKey": []}]
    return operation


def _ref(name: str) -> dict[str, str]:
    if name not in SCHEMAS:
        raise KeyError(f"no schema named {name!r} in llmplane.gateway.schemas")
    return {"$ref": f"#/components/schemas/{name}"}


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
                **SCHEMAS,
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
                },
            },
        },
    }
