"""The pieces the gateway's JSON Schemas are built from (:mod:`schemas` and
:mod:`schemas_registry`): common types and small constructors."""

from __future__ import annotations

from typing import Any

STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
OPT_STR = {"type": ["string", "null"]}
OPT_LIMIT = {"type": ["integer", "null"], "minimum": 1}
TIME = {"type": "string", "format": "date-time"}
OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
MODELS = {"type": ["array", "null"], "items": STR}
PERIOD = {"enum": ["day", "week", "month", "none"]}
MODEL_LIMITS = {
    "type": ["object", "null"],
    "additionalProperties": {
        "type": "object",
        "properties": {"rpm": OPT_LIMIT, "tpm": OPT_LIMIT},
        "additionalProperties": False,
        "minProperties": 1,
    },
    "description": 'Rate limits of the team\'s use of each model: {"gpt-4o": {"rpm": 100}}.',
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def object_schema(
    properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def list_of(name: str) -> dict[str, Any]:
    return object_schema(
        {"object": {"const": "list"}, "data": {"type": "array", "items": ref(name)}},
        ("object", "data"),
    )


def answer(properties: dict[str, Any]) -> dict[str, Any]:
    """A response object: every listed field is always present."""
    return object_schema(properties, tuple(properties))


OPT_NUM = {"type": ["number", "null"]}
