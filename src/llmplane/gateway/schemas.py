"""JSON Schemas of the gateway's request and response bodies, for the OpenAPI document.

Routes name their schemas with :func:`llmplane.gateway.http.documented`; the
test suite validates every route's real requests and answers against them, so
the document cannot drift from what the routes accept and return. The
OpenAI-compatible bodies are described by their required fields only: OpenAI's
published schema is the reference for the rest, which is passed through.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_OPT_STR = {"type": ["string", "null"]}
_OPT_LIMIT = {"type": ["integer", "null"], "minimum": 1}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_MODELS = {"type": ["array", "null"], "items": _STR}
_PERIOD = {"enum": ["day", "week", "month", "none"]}
_MODEL_LIMITS = {
    "type": ["object", "null"],
    "additionalProperties": {
        "type": "object",
        "properties": {"rpm": _OPT_LIMIT, "tpm": _OPT_LIMIT},
        "additionalProperties": False,
        "minProperties": 1,
    },
    "description": 'Rate limits of the team\'s use of each model: {"gpt-4o": {"rpm": 100}}.',
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(
    properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


def _list_of(name: str) -> dict[str, Any]:
    return _object(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref(name)}},
        ("object", "data"),
    )


def _answer(properties: dict[str, Any]) -> dict[str, Any]:
    """A response object: every listed field is always present."""
    return _object(properties, tuple(properties))


_OPT_NUM = {"type": ["number", "null"]}
_COST_ROW = {
    "requests": _INT,
    "tokens": _INT,
    "cost_usd": _NUM,
    "cost_per_mtok_usd": _OPT_NUM,
    "previous_tokens": _INT,
    "previous_cost_usd": _NUM,
    "previous_cost_per_mtok_usd": _OPT_NUM,
    "change_pct": _OPT_NUM,
}
_TOTALS = {
    "requests": _INT,
    "prompt_tokens": _INT,
    "completion_tokens": _INT,
    "cost_usd": _NUM,
}

_KEY = {
    "id": _STR,
    "name": _STR,
    "key_hint": _STR,
    "team_id": _OPT_STR,
    "service_id": _OPT_STR,
    "user_id": _OPT_STR,
    "models": _MODELS,
    "created_at": _TIME,
    "revoked_at": _OPT_TIME,
    "expires_at": _OPT_TIME,
    "rpm": _OPT_LIMIT,
    "tpm": _OPT_LIMIT,
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
    "id": _STR,
    "name": _STR,
    "models": _MODELS,
    "max_tokens": _OPT_LIMIT,
    "rpm": _OPT_LIMIT,
    "tpm": _OPT_LIMIT,
    "model_limits": _MODEL_LIMITS,
    "log_bodies": _LOG_BODIES,
    "log_retention_days": _LOG_DAYS,
}

_TEAM_WRITE = {
    "name": _STR,
    "models": _MODELS,
    "max_tokens": _OPT_LIMIT,
    "rpm": _OPT_LIMIT,
    "tpm": _OPT_LIMIT,
    "model_limits": _MODEL_LIMITS,
    "log_bodies": _LOG_BODIES,
    "log_retention_days": _LOG_DAYS,
}

_SERVICE_WRITE = {"team": _STR, "name": _STR, "rpm": _OPT_LIMIT, "tpm": _OPT_LIMIT}

_SERVICE = {"id": _STR, "team_id": _STR, "name": _STR, "rpm": _OPT_LIMIT, "tpm": _OPT_LIMIT}

_BUDGET = {
    "id": _STR,
    "scope": {"enum": ["key", "service", "team"]},
    "scope_id": _STR,
    "limit_usd": _NUM,
    "period": _PERIOD,
    "thresholds": {"type": "array", "items": _INT},
}

_CHANGE_KIND = {"enum": ["model", "deployment", "prompt", "config", "other"]}
_SEVERITY = {"enum": ["sev1", "sev2", "sev3", "sev4"]}
_CHANGE = {
    "id": _INT,
    "at": _TIME,
    "kind": _CHANGE_KIND,
    "subject": _STR,
    "action": {"enum": ["added", "changed", "removed"]},
    "summary": _STR,
    "actor": _STR,
    "team_id": _OPT_STR,
}
_INCIDENT = {
    "id": _INT,
    "title": _STR,
    "severity": _SEVERITY,
    "status": {"enum": ["open", "closed"]},
    "started_at": _TIME,
    "opened_at": _TIME,
    "closed_at": _OPT_TIME,
    "opened_by": _STR,
    "closed_by": _OPT_STR,
    "resolution": _OPT_STR,
    "cause": {
        "oneOf": [
            _answer(
                {
                    "kind": _CHANGE_KIND,
                    "subject": _OPT_STR,
                    "change_id": {"type": ["integer", "null"]},
                }
            ),
            {"type": "null"},
        ]
    },
    "team_id": _OPT_STR,
    "time_to_resolve_s": _OPT_NUM,
}
_INCIDENT_REPORT = _answer(
    {
        "since": _TIME,
        "until": _TIME,
        "opened": _INT,
        "closed": _INT,
        "open_now": _INT,
        "mean_time_to_resolve_s": _OPT_NUM,
        "by_severity": {
            "type": "array",
            "items": _answer({"severity": _SEVERITY, "opened": _INT}),
        },
        "by_cause": {
            "type": "array",
            "items": _answer(
                {
                    "kind": {"enum": [*_CHANGE_KIND["enum"], "unknown"]},
                    "incidents": _INT,
                    "share": _OPT_NUM,
                }
            ),
        },
        "attributable_to_changes": {
            **_INT,
            "description": "Incidents opened in the window caused by prompt, model or "
            "deployment changes.",
        },
        "attributable_share": _OPT_NUM,
        "change_rates": {
            "type": "array",
            "items": _answer(
                {
                    "kind": _CHANGE_KIND,
                    "changes": _INT,
                    "incidents": _INT,
                    "incidents_per_change": _OPT_NUM,
                }
            ),
        },
    }
)
_REQUEST_LOG = {
    "request_id": _STR,
    "created_at": _TIME,
    "expires_at": _TIME,
    "policy": {"enum": ["metadata", "redacted", "full"]},
    "team_id": _OPT_STR,
    "service_id": _OPT_STR,
    "key_id": _OPT_STR,
    "user": _OPT_STR,
    "operation": _OPT_STR,
    "model": _OPT_STR,
    "served_model": _OPT_STR,
    "deployment": _OPT_STR,
    "provider": _OPT_STR,
    "status": _INT,
    "error_type": _OPT_STR,
    "error_code": _OPT_STR,
    "stream": {"type": "boolean"},
    "attempts": _INT,
    "prompt_tokens": _INT,
    "completion_tokens": _INT,
    "cached_tokens": _INT,
    "cost_usd": _NUM,
    "duration_ms": _NUM,
    "ttft_ms": _OPT_NUM,
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

_VARIABLE = _object(
    {
        "type": {"enum": ["string", "number", "integer", "boolean", "json"]},
        "required": {"type": "boolean"},
        "default": {},
        "description": _STR,
    }
)
_PROMPT_CONTENT = {
    "template": {
        "description": "A string (one user message) or chat messages with {{ variable }} "
        "placeholders; \\{{ is a literal {{.",
        "anyOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "array",
                "minItems": 1,
                "items": _object({"role": _STR, "content": _STR}, ("role", "content")),
            },
        ],
    },
    "variables": {"type": ["object", "null"], "additionalProperties": _VARIABLE},
    "model": _OPT_STR,
    "params": {"type": ["object", "null"], "description": "temperature, max_tokens, ..."},
    "tools": {"type": ["array", "null"], "items": {"type": "object"}},
    "response_format": {"type": ["object", "null"]},
}
_PROMPT_VERSION = {
    "object": {"const": "prompt.version"},
    "name": _STR,
    "team_id": _OPT_STR,
    "version": _INT,
    **_PROMPT_CONTENT,
    "template": _PROMPT_CONTENT["template"],
    "variables": {"type": "object", "additionalProperties": _VARIABLE},
    "params": {"type": "object"},
    "fingerprint": _STR,
    "message": _OPT_STR,
    "created_at": _TIME,
    "created_by": _STR,
}
_PROMPT = {
    "object": {"const": "prompt"},
    "id": _STR,
    "name": _STR,
    "team_id": _OPT_STR,
    "description": _OPT_STR,
    "latest_version": _INT,
    "labels": {"type": "object", "additionalProperties": _INT},
    "created_at": _TIME,
    "created_by": _STR,
    "updated_at": _TIME,
}
_LABEL_MOVE = {
    "id": _INT,
    "name": _STR,
    "label": _STR,
    "action": {"enum": ["set", "rollback", "refused", "forced"]},
    "from_version": {"type": ["integer", "null"]},
    "to_version": {"type": ["integer", "null"]},
    "actor": _STR,
    "reason": _OPT_STR,
    "evidence": {"type": ["object", "null"]},
    "at": _TIME,
}

_EVAL_RUN = {
    "object": {"const": "eval.run"},
    "id": _STR,
    "suite": _STR,
    "suite_fingerprint": _STR,
    "team_id": _OPT_STR,
    "key_id": _STR,
    "status": {"enum": ["running", "finished", "capped", "failed"]},
    "target": _STR,
    "models": {"type": "array", "items": _STR},
    "prompt": _OPT_STR,
    "dataset": _OPT_STR,
    "git_sha": _OPT_STR,
    "git_branch": _OPT_STR,
    "baseline_run_id": _OPT_STR,
    "blessed": {"type": "boolean"},
    "repetitions": _INT,
    "cases_total": _INT,
    "cost_usd": _NUM,
    "summary": {
        "type": ["object", "null"],
        "description": "metrics, thresholds, comparison, repetitions (pass^k, flaky), verdict",
    },
    "started_at": _TIME,
    "finished_at": _OPT_TIME,
}
_EVAL_DATASET_VERSION = {
    "object": {"const": "eval.dataset.version"},
    "name": _STR,
    "team_id": _OPT_STR,
    "version": _INT,
    "fingerprint": _STR,
    "cases": _INT,
    "created_at": _TIME,
    "created_by": _STR,
}
_EVAL_CASE = {
    "case_id": _STR,
    "model": _STR,
    "repetition": {"type": "integer", "minimum": 0},
    "output": _OPT_STR,
    "scores": {
        "type": "object",
        "description": "{scorer: {value, passed, explanation, details}}",
    },
    "cost_usd": _NUM,
    "latency_ms": {"type": ["number", "null"]},
    "error": _OPT_STR,
    "cached": {"type": "boolean"},
    "cache_key": _OPT_STR,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Health": _object({"status": _STR, "ledger_queue_depth": _INT}, ("status",)),
    "OpenAPI": _object({"openapi": _STR}, ("openapi",), closed=False),
    "ModelList": _object(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": _object({"id": _STR, "object": {"const": "model"}}, ("id",), closed=False),
            },
        },
        ("object", "data"),
    ),
    "ChatCompletionRequest": {
        **_object(
            {
                "model": _STR,
                "messages": {"type": "array"},
                "stream": {"type": "boolean"},
                "prompt": _ref("PromptReference"),
            },
            closed=False,
        ),
        "anyOf": [
            {"required": ["model", "messages"], "properties": {"messages": {"minItems": 1}}},
            {"required": ["prompt"]},
        ],
    },
    "PromptReference": _object(
        {
            "name": _STR,
            "label": {**_STR, "description": "Default: production; latest: the newest."},
            "version": {"type": "integer", "minimum": 1},
            "variables": {"type": "object"},
        },
        ("name",),
    ),
    "ChatCompletion": _object(
        {"id": _STR, "object": _STR, "model": _STR, "choices": {"type": "array"}},
        ("id", "choices"),
        closed=False,
    ),
    "MessageRequest": _object(
        {
            "model": _STR,
            "max_tokens": {"type": "integer", "minimum": 1},
            "messages": {"type": "array", "minItems": 1},
            "system": {"type": ["string", "array"]},
            "stream": {"type": "boolean"},
            "tools": {"type": "array"},
        },
        ("model", "max_tokens", "messages"),
        closed=False,
    ),
    "Message": _object(
        {
            "id": _STR,
            "type": {"const": "message"},
            "role": {"const": "assistant"},
            "model": _STR,
            "content": {"type": "array"},
            "stop_reason": {"type": ["string", "null"]},
            "usage": _object({"input_tokens": _INT, "output_tokens": _INT}, closed=False),
        },
        ("id", "type", "role", "content", "usage"),
        closed=False,
    ),
    "ResponseRequest": _object(
        {
            "model": _STR,
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
    "Response": _object(
        {
            "id": _STR,
            "object": {"const": "response"},
            "status": _STR,
            "model": _STR,
            "output": {"type": "array"},
            "usage": {"type": ["object", "null"]},
        },
        ("id", "object", "status", "output"),
        closed=False,
    ),
    "ModerationRequest": _object(
        {"model": _STR, "input": {"type": ["string", "array"]}}, ("input",), closed=False
    ),
    "Moderation": _object(
        {"id": _STR, "model": _STR, "results": {"type": "array"}},
        ("id", "results"),
        closed=False,
    ),
    "RerankRequest": _object(
        {
            "model": _STR,
            "query": _STR,
            "documents": {"type": "array", "items": _STR, "minItems": 1},
            "top_n": {"type": "integer", "minimum": 1},
        },
        ("model", "query", "documents"),
        closed=False,
    ),
    "RerankList": _object(
        {
            "results": {
                "type": "array",
                "items": _object(
                    {"index": _INT, "relevance_score": _NUM},
                    ("index", "relevance_score"),
                    closed=False,
                ),
            }
        },
        ("results",),
        closed=False,
    ),
    "EmbeddingRequest": _object(
        {"model": _STR, "input": {"type": ["string", "array"]}}, ("input",), closed=False
    ),
    "EmbeddingList": _object(
        {"object": {"const": "list"}, "data": {"type": "array"}, "model": _STR},
        ("object", "data"),
        closed=False,
    ),
    "KeyCreate": _object(
        {
            "name": _STR,
            "team": {**_STR, "description": "Team id or name."},
            "service": {**_STR, "description": "Service id or name (needs team)."},
            "user": _STR,
            "models": _MODELS,
            "rpm": _OPT_LIMIT,
            "tpm": _OPT_LIMIT,
            "role": {"enum": ["member", "team_admin"]},
            "budget_usd": {"type": "number", "minimum": 0},
            "period": _PERIOD,
            "expires_at": _TIME,
        },
        ("name",),
    ),
    "Key": _answer(_KEY),
    "KeyCreated": _object(
        {
            **_KEY,
            "key": {**_STR, "description": "The key itself, shown once."},
            "budget": _ref("Budget"),
        },
        (*_KEY, "key"),
    ),
    "KeyList": _list_of("Key"),
    "SpendTotals": _answer(_TOTALS),
    "Spend": _object(
        {
            "since": _OPT_TIME,
            "until": _OPT_TIME,
            "total": _ref("SpendTotals"),
            "by_key": {
                "type": "array",
                "items": _answer({"key_id": _OPT_STR, "name": _OPT_STR, **_TOTALS}),
            },
            "by_model": {"type": "array", "items": _answer({"model": _STR, **_TOTALS})},
            "by": {"type": "string", "description": "The dimension of rows (with ?by=)."},
            "rows": {
                "type": "array",
                "items": _object({"name": _OPT_STR, **_TOTALS}, tuple(_TOTALS), closed=False),
                "description": "One row per value of the ?by= dimension, named after it.",
            },
        },
        ("since", "until", "total", "by_key", "by_model"),
    ),
    "SpendReport": _answer(
        {
            "month": _STR,
            "previous_month": _STR,
            "total_cost_usd": _NUM,
            "previous_total_cost_usd": _NUM,
            "change_pct": {"type": ["number", "null"]},
            "by_team_service": {
                "type": "array",
                "items": _answer(
                    {
                        "team": _OPT_STR,
                        "service": _OPT_STR,
                        "requests": _INT,
                        "tokens": _INT,
                        "cost_usd": _NUM,
                        "previous_cost_usd": _NUM,
                        "change_pct": {"type": ["number", "null"]},
                    }
                ),
            },
            "by_model": {
                "type": "array",
                "items": _answer(
                    {
                        "model": _STR,
                        "requests": _INT,
                        "tokens": _INT,
                        "cost_usd": _NUM,
                        "cost_per_mtok_usd": {"type": ["number", "null"]},
                        "previous_cost_per_mtok_usd": {"type": ["number", "null"]},
                        "change_pct": {"type": ["number", "null"]},
                    }
                ),
            },
        }
    ),
    "PlatformReport": _answer(
        {
            "generated_at": _TIME,
            "team_id": _OPT_STR,
            "adoption": _answer(
                {
                    "weeks": {
                        "type": "array",
                        "items": _answer(
                            {
                                "week": _STR,
                                "start": {"type": "string", "format": "date"},
                                "active_teams": _INT,
                                "active_services": _INT,
                            }
                        ),
                    },
                    "trend": {"enum": ["growing", "flat", "shrinking"]},
                }
            ),
            "cost": _answer(
                {
                    "month": _STR,
                    "previous_month": _STR,
                    "overall": _answer(_COST_ROW),
                    "by_model": {
                        "type": "array",
                        "items": _answer({"model": _STR, **_COST_ROW}),
                    },
                }
            ),
            "spend_by_team": {
                "type": "array",
                "items": _answer(
                    {
                        "team_id": _OPT_STR,
                        "team": _OPT_STR,
                        "requests": _INT,
                        "cost_usd": _NUM,
                        "previous_cost_usd": _NUM,
                        "change_pct": _OPT_NUM,
                    }
                ),
            },
            "deployments": {
                "type": "array",
                "items": _answer(
                    {
                        "deployment": _STR,
                        "model": _OPT_STR,
                        "window_days": _INT,
                        "calls": _INT,
                        "errors": _INT,
                        "client_errors": _INT,
                        "error_rate": _OPT_NUM,
                        "latency_p50_ms": _OPT_NUM,
                        "latency_p95_ms": _OPT_NUM,
                        "ttft_p95_ms": _OPT_NUM,
                        "slo": {
                            "type": ["object", "null"],
                            "properties": {
                                "ttft_p95_ms": _NUM,
                                "latency_p95_ms": _NUM,
                                "error_rate": _NUM,
                                "window_days": _INT,
                            },
                            "additionalProperties": False,
                        },
                        "checks": {
                            "type": "array",
                            "items": _answer(
                                {
                                    "objective": {
                                        "enum": ["ttft_p95_ms", "latency_p95_ms", "error_rate"]
                                    },
                                    "target": _NUM,
                                    "observed": _OPT_NUM,
                                    "pass": {"type": ["boolean", "null"]},
                                }
                            ),
                        },
                        "error_budget_left": _OPT_NUM,
                        "status": {"enum": ["pass", "fail", "no_data", "no_slo"]},
                    }
                ),
            },
            "incidents": _INCIDENT_REPORT,
        }
    ),
    "TeamCreate": _object(_TEAM_WRITE, ("name",)),
    "TeamUpdate": _object(_TEAM_WRITE),
    "Team": _answer(_TEAM),
    "TeamDetail": _answer(
        {
            **_TEAM,
            "services": {"type": "array", "items": _ref("Service")},
            "budget": {"oneOf": [_ref("Budget"), {"type": "null"}]},
        }
    ),
    "TeamList": _list_of("Team"),
    "ServiceCreate": _object(_SERVICE_WRITE, ("team", "name")),
    "ServiceUpdate": _object(_SERVICE_WRITE, ("team",)),
    "Service": _answer(_SERVICE),
    "ServiceList": _list_of("Service"),
    "BudgetSet": _object(
        {
            "scope": {"enum": ["key", "service", "team"]},
            "target": {**_STR, "description": "The key, service or team (id or name)."},
            "team": {**_STR, "description": "For a service: its team."},
            "limit_usd": {"type": "number", "minimum": 0},
            "period": _PERIOD,
            "thresholds": {
                "type": "array",
                "items": {"type": "integer", "minimum": 1, "maximum": 100},
            },
        },
        ("scope", "target", "limit_usd"),
    ),
    "Budget": _answer(_BUDGET),
    "BudgetWithSpend": _answer({**_BUDGET, "spent_usd": {"type": ["number", "null"]}}),
    "BudgetList": _list_of("BudgetWithSpend"),
    "AuditEntry": _answer(
        {
            "id": _INT,
            "at": _TIME,
            "actor": _STR,
            "action": _STR,
            "object_type": _STR,
            "object_id": _STR,
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
        }
    ),
    "AuditList": _list_of("AuditEntry"),
    "IncidentOpen": _object(
        {
            "title": {"type": "string", "minLength": 1, "maxLength": 300},
            "severity": _SEVERITY,
            "cause": {
                **_STR,
                "description": "change:ID, KIND:SUBJECT (model:gpt-4o, prompt:support-bot@7, "
                "deployment:openai-east) or unknown.",
            },
            "team": {**_STR, "description": "Team id or name."},
            "started_at": {**_TIME, "description": "When impact began (default: now)."},
        },
        ("title",),
    ),
    "IncidentClose": _object({"resolution": _STR}),
    "Incident": _answer(_INCIDENT),
    "IncidentList": _list_of("Incident"),
    "ChangeRecord": _object(
        {
            "kind": _CHANGE_KIND,
            "subject": {
                **_STR,
                "description": "What changed: a model, a deployment, prompt-name@version.",
            },
            "summary": {"type": "string", "maxLength": 500},
            "action": {"enum": ["added", "changed", "removed"]},
            "actor": {**_STR, "description": "Who made it (default: the calling key)."},
            "team": {**_STR, "description": "Team id or name, for a team's own change."},
            "at": {**_TIME, "description": "When it happened (default: now)."},
        },
        ("kind", "subject"),
    ),
    "Change": _answer(_CHANGE),
    "ChangeList": _list_of("Change"),
    "RequestLog": _answer(_REQUEST_LOG),
    "RequestLogList": _list_of("RequestLog"),
    "RequestLogDetail": _answer({**_REQUEST_LOG, "request": _BODY, "response": _BODY}),
    "RequestLogDeletion": _answer({"user": _STR, "team_id": _OPT_STR, "deleted": _INT}),
    "RequestLogPurge": _answer({"deleted": _INT}),
    "PromptCreate": _object(
        {
            "name": {**_STR, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"},
            "team": {**_OPT_STR, "description": "Owning team (id or name); null: the platform."},
            "description": _OPT_STR,
            "message": {**_OPT_STR, "description": "What this version changes."},
            **_PROMPT_CONTENT,
        },
        ("name", "template"),
    ),
    "PromptVersion": _answer(_PROMPT_VERSION),
    "PromptVersionCreated": _answer({**_PROMPT_VERSION, "created": {"type": "boolean"}}),
    "PromptVersionList": _list_of("PromptVersion"),
    "PromptServed": _answer({**_PROMPT_VERSION, "label": _OPT_STR}),
    "Prompt": _answer(_PROMPT),
    "PromptList": _list_of("Prompt"),
    "PromptDetail": _answer({**_PROMPT, "version": _ref("PromptVersion")}),
    "LabelSet": _object(
        {
            "version": {"type": "integer", "minimum": 1},
            "reason": _OPT_STR,
            "force": {
                "type": "boolean",
                "description": "Admin key only, with a reason: move past a refusing gate.",
            },
        },
        ("version",),
    ),
    "LabelRollback": _object({"reason": _OPT_STR}),
    "LabelMove": _answer(_LABEL_MOVE),
    "LabelMoveResult": _answer(
        {
            "name": _STR,
            "label": _STR,
            "version": _INT,
            "changed": {"type": "boolean"},
            "move": {"anyOf": [_ref("LabelMove"), {"type": "null"}]},
        }
    ),
    "LabelHistory": _list_of("LabelMove"),
    "PromptGateSet": _object(
        {
            "suite": {**_STR, "description": "The eval suite's name (its YAML's 'name')."},
            "require_no_regression": {
                "type": "boolean",
                "description": "Also require no significant regression against the version "
                "the label holds (default true).",
            },
            "max_age_days": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Only runs finished within this many days count.",
            },
        },
        ("suite",),
    ),
    "PromptGate": _answer(
        {
            "object": {"const": "prompt.gate"},
            "name": _STR,
            "label": _STR,
            "suite": _STR,
            "require_no_regression": {"type": "boolean"},
            "max_age_days": {"type": ["integer", "null"]},
            "created_by": _STR,
            "created_at": _TIME,
        }
    ),
    "PromptGateList": _list_of("PromptGate"),
    "EvalRunCreate": _object(
        {
            "suite": _STR,
            "suite_fingerprint": _STR,
            "target": {
                **_STR,
                "description": "prompt:NAME#LABEL, prompt:NAME@V, messages, python:M:F",
            },
            "models": {"type": "array", "items": _STR},
            "prompt": {**_OPT_STR, "description": "The resolved prompt, name@version."},
            "dataset": {**_OPT_STR, "description": "A registered dataset, name@version."},
            "repetitions": {"type": "integer", "minimum": 1},
            "cases_total": {"type": "integer", "minimum": 0},
            "git_sha": _OPT_STR,
            "git_branch": _OPT_STR,
            "baseline_run_id": _OPT_STR,
        },
        ("suite", "suite_fingerprint", "target", "models", "repetitions", "cases_total"),
    ),
    "EvalRun": _answer(_EVAL_RUN),
    "EvalRunList": _list_of("EvalRun"),
    "EvalBaseline": _answer(
        {
            "object": {"const": "eval.baseline"},
            "suite": _STR,
            "run": {"anyOf": [_ref("EvalRun"), {"type": "null"}]},
        }
    ),
    "EvalRunDetail": _object(
        {**_EVAL_RUN, "cases": {"type": "array", "items": _ref("EvalCaseResult")}},
        tuple(_EVAL_RUN),
    ),
    "EvalCaseResult": _object(_EVAL_CASE, ("case_id", "model", "repetition", "scores")),
    "EvalCasesAdd": _object(
        {"cases": {"type": "array", "items": _ref("EvalCaseResult"), "maxItems": 1000}},
        ("cases",),
    ),
    "EvalCasesAdded": _answer({"added": _INT}),
    "EvalRunFinish": _object(
        {
            "status": {"enum": ["finished", "capped", "failed"]},
            "summary": {"type": ["object", "null"]},
            "baseline_run_id": _OPT_STR,
        },
        ("status",),
    ),
    "EvalRunResume": _object({}),
    "EvalDatasetPush": _object(
        {
            "name": {**_STR, "maxLength": 200},
            "format": {"enum": ["jsonl", "csv"]},
            "content": {**_STR, "description": "The file's text"},
            "team": {**_OPT_STR, "description": "The admin key: the owning team (id or name)"},
        },
        ("name", "format", "content"),
    ),
    "EvalDatasetVersion": _answer(_EVAL_DATASET_VERSION),
    "EvalDatasetPushed": _answer({**_EVAL_DATASET_VERSION, "created": {"type": "boolean"}}),
    "EvalDatasetDetail": _answer(
        {
            **_EVAL_DATASET_VERSION,
            "content": {**_STR, "description": "JSONL, one normalised case a line"},
            "versions": {"type": "array", "items": _ref("EvalDatasetVersion")},
        }
    ),
    "EvalDataset": _answer(
        {
            "object": {"const": "eval.dataset"},
            "name": _STR,
            "team_id": _OPT_STR,
            "latest_version": _INT,
            "cases": _INT,
            "updated_at": _TIME,
        }
    ),
    "EvalDatasetList": _list_of("EvalDataset"),
    "EvalCacheLookup": _object(
        {"keys": {"type": "array", "items": _STR, "maxItems": 5000}}, ("keys",)
    ),
    "EvalCacheHits": _answer(
        {
            "hits": {
                "type": "object",
                "additionalProperties": _answer(
                    {
                        "output": _OPT_STR,
                        "cost_usd": _NUM,
                        "latency_ms": {"type": ["number", "null"]},
                    }
                ),
            }
        }
    ),
}
