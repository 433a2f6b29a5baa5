"""JSON Schemas of the gateway's request and response bodies, for the OpenAPI document.

Routes name their schemas with :func:`llmplane.gateway.http.documented`; the
test suite validates every route's real requests and answers against them, so
the document cannot drift from what the routes accept and return. The
OpenAI-compatible bodies are described by their required fields only: OpenAI's
published schema is the reference for the rest, which is passed through.
"""

from __future__ import annotations

from typing import Any

from llmplane.gateway.schema_parts import (
    INT,
    MODEL_LIMITS,
    MODELS,
    NUM,
    OPT_LIMIT,
    OPT_NUM,
    OPT_STR,
    OPT_TIME,
    PERIOD,
    STR,
    TIME,
    answer,
    list_of,
    object_schema,
    ref,
)
from llmplane.gateway.schemas_registry import REGISTRY_SCHEMAS

_COST_ROW = {
    "requests": INT,
    "tokens": INT,
    "cost_usd": NUM,
    "cost_per_mtok_usd": OPT_NUM,
    "previous_tokens": INT,
    "previous_cost_usd": NUM,
    "previous_cost_per_mtok_usd": OPT_NUM,
    "change_pct": OPT_NUM,
}
_TOTALS = {
    "requests": INT,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "cost_usd": NUM,
}

_KEY = {
    "id": STR,
    "name": STR,
    "key_hint": STR,
    "team_id": OPT_STR,
    "service_id": OPT_STR,
    "user_id": OPT_STR,
    "models": MODELS,
    "created_at": TIME,
    "revoked_at": OPT_TIME,
    "expires_at": OPT_TIME,
    "rpm": OPT_LIMIT,
    "tpm": OPT_LIMIT,
    "role": {"enum": ["member", "team_admin"]},
    "status": {"enum": ["active", "revoked"]},
}

_LOG_BODIES = {
    "enum": ["none", "metadata", "redacted", "full", None],
    "description": "What the team's requests leave in the request logs (null: the platform's "
    "default).",
}
_LOG_DAYS = {"type": ["integer", "null"], "minimum": 1, "maximum": 3650}

_TEAM = {
    "id": STR,
    "name": STR,
    "models": MODELS,
    "max_tokens": OPT_LIMIT,
    "rpm": OPT_LIMIT,
    "tpm": OPT_LIMIT,
    "model_limits": MODEL_LIMITS,
    "log_bodies": _LOG_BODIES,
    "log_retention_days": _LOG_DAYS,
}

_TEAM_WRITE = {
    "name": STR,
    "models": MODELS,
    "max_tokens": OPT_LIMIT,
    "rpm": OPT_LIMIT,
    "tpm": OPT_LIMIT,
    "model_limits": MODEL_LIMITS,
    "log_bodies": _LOG_BODIES,
    "log_retention_days": _LOG_DAYS,
}

_SERVICE_WRITE = {"team": STR, "name": STR, "rpm": OPT_LIMIT, "tpm": OPT_LIMIT}

_SERVICE = {"id": STR, "team_id": STR, "name": STR, "rpm": OPT_LIMIT, "tpm": OPT_LIMIT}

_BUDGET = {
    "id": STR,
    "scope": {"enum": ["key", "service", "team"]},
    "scope_id": STR,
    "limit_usd": NUM,
    "period": PERIOD,
    "thresholds": {"type": "array", "items": INT},
}

_CHANGE_KIND = {"enum": ["model", "deployment", "prompt", "config", "other"]}
_SEVERITY = {"enum": ["sev1", "sev2", "sev3", "sev4"]}
_CHANGE = {
    "id": INT,
    "at": TIME,
    "kind": _CHANGE_KIND,
    "subject": STR,
    "action": {"enum": ["added", "changed", "removed"]},
    "summary": STR,
    "actor": STR,
    "team_id": OPT_STR,
}
_INCIDENT = {
    "id": INT,
    "title": STR,
    "severity": _SEVERITY,
    "status": {"enum": ["open", "closed"]},
    "started_at": TIME,
    "opened_at": TIME,
    "closed_at": OPT_TIME,
    "opened_by": STR,
    "closed_by": OPT_STR,
    "resolution": OPT_STR,
    "cause": {
        "oneOf": [
            answer(
                {
                    "kind": _CHANGE_KIND,
                    "subject": OPT_STR,
                    "change_id": {"type": ["integer", "null"]},
                }
            ),
            {"type": "null"},
        ]
    },
    "team_id": OPT_STR,
    "time_to_resolve_s": OPT_NUM,
}
_INCIDENT_REPORT = answer(
    {
        "since": TIME,
        "until": TIME,
        "opened": INT,
        "closed": INT,
        "open_now": INT,
        "mean_time_to_resolve_s": OPT_NUM,
        "by_severity": {
            "type": "array",
            "items": answer({"severity": _SEVERITY, "opened": INT}),
        },
        "by_cause": {
            "type": "array",
            "items": answer(
                {
                    "kind": {"enum": [*_CHANGE_KIND["enum"], "unknown"]},
                    "incidents": INT,
                    "share": OPT_NUM,
                }
            ),
        },
        "attributable_to_changes": {
            **INT,
            "description": "Incidents opened in the window caused by prompt, model or "
            "deployment changes.",
        },
        "attributable_share": OPT_NUM,
        "change_rates": {
            "type": "array",
            "items": answer(
                {
                    "kind": _CHANGE_KIND,
                    "changes": INT,
                    "incidents": INT,
                    "incidents_per_change": OPT_NUM,
                }
            ),
        },
    }
)
_REQUEST_LOG = {
    "request_id": STR,
    "created_at": TIME,
    "expires_at": TIME,
    "policy": {"enum": ["metadata", "redacted", "full"]},
    "team_id": OPT_STR,
    "service_id": OPT_STR,
    "key_id": OPT_STR,
    "user": OPT_STR,
    "operation": OPT_STR,
    "model": OPT_STR,
    "served_model": OPT_STR,
    "deployment": OPT_STR,
    "provider": OPT_STR,
    "status": INT,
    "error_type": OPT_STR,
    "error_code": OPT_STR,
    "stream": {"type": "boolean"},
    "attempts": INT,
    "prompt_tokens": INT,
    "completion_tokens": INT,
    "cached_tokens": INT,
    "cost_usd": NUM,
    "duration_ms": NUM,
    "ttft_ms": OPT_NUM,
    "params": {
        "type": ["object", "null"],
        "description": "Request parameters without content: numbers, enums, tool names, "
        "the response format's type, message counts.",
    },
    "truncated": {"type": "boolean"},
}
_BODY = {
    "description": "The body as the team's policy kept it: JSON (a stream assembled into "
    "one reply object), text where it was not JSON, null under the metadata policy."
}


SCHEMAS: dict[str, dict[str, Any]] = {
    "Health": object_schema({"status": STR, "ledger_queue_depth": INT}, ("status",)),
    "OpenAPI": object_schema({"openapi": STR}, ("openapi",), closed=False),
    "ModelList": object_schema(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": object_schema(
                    {"id": STR, "object": {"const": "model"}}, ("id",), closed=False
                ),
            },
        },
        ("object", "data"),
    ),
    "ChatCompletionRequest": {
        **object_schema(
            {
                "model": STR,
                "messages": {"type": "array"},
                "stream": {"type": "boolean"},
                "prompt": ref("PromptReference"),
            },
            closed=False,
        ),
        "anyOf": [
            {"required": ["model", "messages"], "properties": {"messages": {"minItems": 1}}},
            {"required": ["prompt"]},
        ],
    },
    "PromptReference": object_schema(
        {
            "name": STR,
            "label": {**STR, "description": "Default: production; latest: the newest."},
            "version": {"type": "integer", "minimum": 1},
            "variables": {"type": "object"},
        },
        ("name",),
    ),
    "ChatCompletion": object_schema(
        {"id": STR, "object": STR, "model": STR, "choices": {"type": "array"}},
        ("id", "choices"),
        closed=False,
    ),
    "MessageRequest": object_schema(
        {
            "model": STR,
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {"type": "array", "minItems": 1},
            "system": {"type": ["string", "array"]},
            "stream": {"type": "boolean"},
            "tools": {"type": "array"},
        },
        ("model", "max_tokens", "messages"),
        closed=False,
    ),
    "Message": object_schema(
        {
            "id": STR,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": STR,
            "content": {"type": "array"},
            "stop_reason": {"type": ["string", "null"]},
            "usage": object_schema({"input_tokens": INT, "output_tokens": INT}, closed=False),
        },
        ("id", "type", "role", "content", "usage"),
        closed=False,
    ),
    "ResponseRequest": object_schema(
        {
            "model": STR,
            "input": {"type": ["string", "array"]},
            "instructions": {"type": ["string", "null"]},
            "max_output_tokens": {"type": ["integer", "null"], "minimum": 1},
            "stream": {"type": "boolean"},
            "tools": {"type": "array"},
            "prompt": {
                "type": "object",
                "description": "A registered prompt ({name, label or version, variables}), "
                "or OpenAI's own stored prompt ({id, ...}), passed through.",
            },
        },
        closed=False,
    ),
    "Response": object_schema(
        {
            "id": STR,
            "object": {"const": "response"},
            "status": STR,
            "model": STR,
            "output": {"type": "array"},
            "usage": {"type": ["object", "null"]},
        },
        ("id", "object", "status", "output"),
        closed=False,
    ),
    "ModerationRequest": object_schema(
        {"model": STR, "input": {"type": ["string", "array"]}}, ("input",), closed=False
    ),
    "Moderation": object_schema(
        {"id": STR, "model": STR, "results": {"type": "array"}},
        ("id", "results"),
        closed=False,
    ),
    "RerankRequest": object_schema(
        {
            "model": STR,
            "query": STR,
            "documents": {"type": "array", "items": STR, "minItems": 1},
            "top_n": {"type": "integer", "minimum": 1},
        },
        ("model", "query", "documents"),
        closed=False,
    ),
    "RerankList": object_schema(
        {
            "results": {
                "type": "array",
                "items": object_schema(
                    {"index": INT, "relevance_score": NUM},
                    ("index", "relevance_score"),
                    closed=False,
                ),
            }
        },
        ("results",),
        closed=False,
    ),
    "EmbeddingRequest": object_schema(
        {"model": STR, "input": {"type": ["string", "array"]}}, ("input",), closed=False
    ),
    "EmbeddingList": object_schema(
        {"object": {"const": "list"}, "data": {"type": "array"}, "model": STR},
        ("object", "data"),
        closed=False,
    ),
    "KeyCreate": object_schema(
        {
            "name": STR,
            "team": {**STR, "description": "Team id or name."},
            "service": {**STR, "description": "Service id or name (needs team)."},
            "user": STR,
            "models": MODELS,
            "rpm": OPT_LIMIT,
            "tpm": OPT_LIMIT,
            "role": {"enum": ["member", "team_admin"]},
            "budget_usd": {"type": "number", "minimum": 0},
            "period": PERIOD,
            "expires_at": TIME,
        },
        ("name",),
    ),
    "Key": answer(_KEY),
    "KeyCreated": object_schema(
        {
            **_KEY,
            "key": {**STR, "description": "The key itself, shown once."},
            "budget": ref("Budget"),
        },
        (*_KEY, "key"),
    ),
    "KeyList": list_of("Key"),
    "SpendTotals": answer(_TOTALS),
    "Spend": object_schema(
        {
            "since": OPT_TIME,
            "until": OPT_TIME,
            "total": ref("SpendTotals"),
            "by_key": {
                "type": "array",
                "items": answer({"key_id": OPT_STR, "name": OPT_STR, **_TOTALS}),
            },
            "by_model": {"type": "array", "items": answer({"model": STR, **_TOTALS})},
            "by": {"type": "string", "description": "The dimension of rows (with ?by=)."},
            "rows": {
                "type": "array",
                "items": object_schema({"name": OPT_STR, **_TOTALS}, tuple(_TOTALS), closed=False),
                "description": "One row per value of the ?by= dimension, named after it.",
            },
        },
        ("since", "until", "total", "by_key", "by_model"),
    ),
    "SpendReport": answer(
        {
            "month": STR,
            "previous_month": STR,
            "total_cost_usd": NUM,
            "previous_total_cost_usd": NUM,
            "change_pct": {"type": ["number", "null"]},
            "by_team_service": {
                "type": "array",
                "items": answer(
                    {
                        "team": OPT_STR,
                        "service": OPT_STR,
                        "requests": INT,
                        "tokens": INT,
                        "cost_usd": NUM,
                        "previous_cost_usd": NUM,
                        "change_pct": {"type": ["number", "null"]},
                    }
                ),
            },
            "by_model": {
                "type": "array",
                "items": answer(
                    {
                        "model": STR,
                        "requests": INT,
                        "tokens": INT,
                        "cost_usd": NUM,
                        "cost_per_mtok_usd": {"type": ["number", "null"]},
                        "previous_cost_per_mtok_usd": {"type": ["number", "null"]},
                        "change_pct": {"type": ["number", "null"]},
                    }
                ),
            },
        }
    ),
    "PlatformReport": answer(
        {
            "generated_at": TIME,
            "team_id": OPT_STR,
            "adoption": answer(
                {
                    "weeks": {
                        "type": "array",
                        "items": answer(
                            {
                                "week": STR,
                                "start": {"type": "string", "format": "date"},
                                "active_teams": INT,
                                "active_services": INT,
                            }
                        ),
                    },
                    "trend": {"enum": ["growing", "flat", "shrinking"]},
                }
            ),
            "cost": answer(
                {
                    "month": STR,
                    "previous_month": STR,
                    "overall": answer(_COST_ROW),
                    "by_model": {
                        "type": "array",
                        "items": answer({"model": STR, **_COST_ROW}),
                    },
                }
            ),
            "spend_by_team": {
                "type": "array",
                "items": answer(
                    {
                        "team_id": OPT_STR,
                        "team": OPT_STR,
                        "requests": INT,
                        "cost_usd": NUM,
                        "previous_cost_usd": NUM,
                        "change_pct": OPT_NUM,
                    }
                ),
            },
            "deployments": {
                "type": "array",
                "items": answer(
                    {
                        "deployment": STR,
                        "model": OPT_STR,
                        "window_days": INT,
                        "calls": INT,
                        "errors": INT,
                        "client_errors": INT,
                        "error_rate": OPT_NUM,
                        "latency_p50_ms": OPT_NUM,
                        "latency_p95_ms": OPT_NUM,
                        "ttft_p95_ms": OPT_NUM,
                        "slo": {
                            "type": ["object", "null"],
                            "properties": {
                                "ttft_p95_ms": NUM,
                                "latency_p95_ms": NUM,
                                "error_rate": NUM,
                                "window_days": INT,
                            },
                            "additionalProperties": False,
                        },
                        "checks": {
                            "type": "array",
                            "items": answer(
                                {
                                    "objective": {
                                        "enum": ["ttft_p95_ms", "latency_p95_ms", "error_rate"]
                                    },
                                    "target": NUM,
                                    "observed": OPT_NUM,
                                    "pass": {"type": ["boolean", "null"]},
                                }
                            ),
                        },
                        "error_budget_left": OPT_NUM,
                        "status": {"enum": ["pass", "fail", "no_data", "no_slo"]},
                    }
                ),
            },
            "incidents": _INCIDENT_REPORT,
        }
    ),
    "TeamCreate": object_schema(_TEAM_WRITE, ("name",)),
    "TeamUpdate": object_schema(_TEAM_WRITE),
    "Team": answer(_TEAM),
    "TeamDetail": answer(
        {
            **_TEAM,
            "services": {"type": "array", "items": ref("Service")},
            "budget": {"oneOf": [ref("Budget"), {"type": "null"}]},
        }
    ),
    "TeamList": list_of("Team"),
    "ServiceCreate": object_schema(_SERVICE_WRITE, ("team", "name")),
    "ServiceUpdate": object_schema(_SERVICE_WRITE, ("team",)),
    "Service": answer(_SERVICE),
    "ServiceList": list_of("Service"),
    "BudgetSet": object_schema(
        {
            "scope": {"enum": ["key", "service", "team"]},
            "target": {**STR, "description": "The key, service or team (id or name)."},
            "team": {**STR, "description": "For a service: its team."},
            "limit_usd": {"type": "number", "minimum": 0},
            "period": PERIOD,
            "thresholds": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
        ("scope", "target", "limit_usd"),
    ),
    "Budget": answer(_BUDGET),
    "BudgetWithSpend": answer({**_BUDGET, "spent_usd": {"type": ["number", "null"]}}),
    "BudgetList": list_of("BudgetWithSpend"),
    "AuditEntry": answer(
        {
            "id": INT,
            "at": TIME,
            "actor": STR,
            "action": STR,
            "object_type": STR,
            "object_id": STR,
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
        }
    ),
    "AuditList": list_of("AuditEntry"),
    "IncidentOpen": object_schema(
        {
            "title": {"type": "string", "minLength": 1, "maxLength": 300},
            "severity": _SEVERITY,
            "cause": {
                **STR,
                "description": "change:ID, KIND:SUBJECT (model:gpt-4o, prompt:support-bot@7, "
                "deployment:openai-east) or unknown.",
            },
            "team": {**STR, "description": "Team id or name."},
            "started_at": {**TIME, "description": "When impact began (default: now)."},
        },
        ("title",),
    ),
    "IncidentClose": object_schema({"resolution": STR}),
    "Incident": answer(_INCIDENT),
    "IncidentList": list_of("Incident"),
    "ChangeRecord": object_schema(
        {
            "kind": _CHANGE_KIND,
            "subject": {
                **STR,
                "description": "What changed: a model, a deployment, prompt-name@version.",
            },
            "summary": {"type": "string", "maxLength": 500},
            "action": {"enum": ["added", "changed", "removed"]},
            "actor": {**STR, "description": "Who made it (default: the calling key)."},
            "team": {**STR, "description": "Team id or name, for a team's own change."},
            "at": {**TIME, "description": "When it happened (default: now)."},
        },
        ("kind", "subject"),
    ),
    "Change": answer(_CHANGE),
    "ChangeList": list_of("Change"),
    "RequestLog": answer(_REQUEST_LOG),
    "RequestLogList": list_of("RequestLog"),
    "RequestLogDetail": answer({**_REQUEST_LOG, "request": _BODY, "response": _BODY}),
    "RequestLogDeletion": answer({"user": STR, "team_id": OPT_STR, "deleted": INT}),
    "RequestLogPurge": answer({"deleted": INT}),
    **REGISTRY_SCHEMAS,
}
