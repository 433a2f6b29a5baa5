"""The OpenAPI document describes what the routes really accept and answer.

Every route of the authorization matrix is called with the admin key; its
request body and its answer are validated against the schemas the document
declares for it, so a schema that drifts from the code fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from starlette.routing import Route

from llmplane.config.platform import load_platform_config
from llmplane.config.settings import Settings
from llmplane.gateway.app import build_services, create_app
from llmplane.store import create_engine, migrate
from tests.gateway.test_authorization import MATRIX, World
from tests.helpers import ADMIN_KEY, GatewayProcess, http


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> World:
    return World(gateway)


@pytest.fixture(scope="module")
def document(gateway: GatewayProcess) -> dict[str, Any]:
    status, _, answer = http("GET", f"{gateway.url}/openapi.json", key=None)
    assert status == 200
    Draft202012Validator.check_schema({"$defs": answer["components"]["schemas"]})
    return dict(answer)


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    # References point at #/components/schemas/…: resolve them against the document.
    return Draft202012Validator({**schema, "components": document["components"]})


def test_every_route_declares_its_bodies(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'routes.db'}")
    migrate(engine)
    services = build_services(
        Settings(data_dir=tmp_path), load_platform_config(None, {}), engine, ADMIN_KEY
    )
    for route in create_app(services).app.routes:
        assert isinstance(route, Route)
        assert getattr(route.endpoint, "api", None) is not None, f"{route.path}: @documented"
    engine.dispose()


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_requests_and_answers_match_the_document(
    world: World, document: dict[str, Any], route: tuple[str, str]
) -> None:
    method, template = route
    operation = document["paths"][template][method.lower()]
    path, body = MATRIX[route][1](world)
    if body:  # (rotating a key takes no body)
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        _validator(document, schema).validate(body)
    status, headers, answer = http(
        method, f"{world.gateway.url}{path}", json.dumps(body).encode() if body else None
    )
    assert str(status) in operation["responses"], (status, answer)
    content = operation["responses"][str(status)]["content"]
    if "application/json" not in content:  # a text answer (/metrics): of a declared type
        assert headers["content-type"].split(";")[0] in content, (path, headers)
        return
    assert headers["content-type"].startswith("application/json")
    _validator(document, content["application/json"]["schema"]).validate(answer)


def test_a_wrong_body_fails_the_declared_schema(document: dict[str, Any]) -> None:
    """The schemas are strict enough to catch a typo, as the routes are."""
    operation = document["paths"]["/admin/teams"]["post"]
    validator = _validator(
        document, operation["requestBody"]["content"]["application/json"]["schema"]
    )
    assert not validator.is_valid({"name": "t", "rmp": 5})
    assert not validator.is_valid({"name": "t", "model_limits": {"mock": {"rpm": 0}}})
    assert validator.is_valid({"name": "t", "model_limits": {"mock": {"rpm": 5}}})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/teams", {"name": "typo-team", "rmp": 5}),
        ("/admin/keys", {"name": "typo-key", "rmp": 5}),
        ("/admin/budgets", {"scope": "team", "target": "x", "limit_usd": 1, "perod": "day"}),
        ("/admin/incidents", {"title": "typo-incident", "sevrity": "sev1"}),
        ("/admin/changes", {"kind": "model", "subject": "mock", "sumary": "typo"}),
    ],
)
def test_the_routes_refuse_unknown_fields(
    gateway: GatewayProcess, path: str, body: dict[str, Any]
) -> None:
    method = "PUT" if path == "/admin/budgets" else "POST"
    status, _, answer = http(method, f"{gateway.url}{path}", json.dumps(body).encode())
    assert status == 400 and answer["error"]["param"] in ("rmp", "perod", "sevrity", "sumary")
