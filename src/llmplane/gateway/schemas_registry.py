"""JSON Schemas of the prompt registry's and the eval harness's admin routes (and
``GET /v1/prompts``), merged into :data:`llmplane.gateway.schemas.SCHEMAS`."""

from __future__ import annotations

from typing import Any

from llmplane.gateway.schema_parts import (
    INT,
    NUM,
    OPT_STR,
    OPT_TIME,
    STR,
    TIME,
    answer,
    list_of,
    object_schema,
    ref,
)

_VARIABLE = object_schema(
    {
        "type": {"enum": ["string", "number", "integer", "boolean", "json"]},
        "required": {"type": "boolean"},
        "default": {},
        "description": STR,
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
                "items": object_schema({"role": STR, "content": STR}, ("role", "content")),
            },
        ],
    },
    "variables": {"type": ["object", "null"], "additionalProperties": _VARIABLE},
    "model": OPT_STR,
    "params": {"type": ["object", "null"], "description": "temperature, max_tokens, ..."},
    "tools": {"type": ["array", "null"], "items": {"type": "object"}},
    "response_format": {"type": ["object", "null"]},
}
_PROMPT_VERSION = {
    "object": {"const": "prompt.version"},
    "name": STR,
    "team_id": OPT_STR,
    "version": INT,
    **_PROMPT_CONTENT,
    "template": _PROMPT_CONTENT["template"],
    "variables": {"type": "object", "additionalProperties": _VARIABLE},
    "params": {"type": "object"},
    "fingerprint": STR,
    "message": OPT_STR,
    "created_at": TIME,
    "created_by": STR,
}
_PROMPT = {
    "object": {"const": "prompt"},
    "id": STR,
    "name": STR,
    "team_id": OPT_STR,
    "description": OPT_STR,
    "latest_version": INT,
    "labels": {"type": "object", "additionalProperties": INT},
    "created_at": TIME,
    "created_by": STR,
    "updated_at": TIME,
}
_LABEL_MOVE = {
    "id": INT,
    "name": STR,
    "label": STR,
    "action": {"enum": ["set", "rollback", "refused", "forced"]},
    "from_version": {"type": ["integer", "null"]},
    "to_version": {"type": ["integer", "null"]},
    "actor": STR,
    "reason": OPT_STR,
    "evidence": {"type": ["object", "null"]},
    "at": TIME,
}

_EVAL_RUN = {
    "object": {"const": "eval.run"},
    "id": STR,
    "suite": STR,
    "suite_fingerprint": STR,
    "team_id": OPT_STR,
    "key_id": STR,
    "status": {"enum": ["running", "finished", "capped", "failed"]},
    "target": STR,
    "models": {"type": "array", "items": STR},
    "prompt": OPT_STR,
    "dataset": OPT_STR,
    "git_sha": OPT_STR,
    "git_branch": OPT_STR,
    "baseline_run_id": OPT_STR,
    "blessed": {"type": "boolean"},
    "repetitions": INT,
    "cases_total": INT,
    "cost_usd": NUM,
    "summary": {
        "type": ["object", "null"],
        "description": "metrics, thresholds, comparison, repetitions (pass^k, flaky), verdict",
    },
    "started_at": TIME,
    "finished_at": OPT_TIME,
}
_EVAL_DATASET_VERSION = {
    "object": {"const": "eval.dataset.version"},
    "name": STR,
    "team_id": OPT_STR,
    "version": INT,
    "fingerprint": STR,
    "cases": INT,
    "created_at": TIME,
    "created_by": STR,
}
_EVAL_CASE = {
    "case_id": STR,
    "model": STR,
    "repetition": {"type": "integer", "minimum": 0},
    "output": OPT_STR,
    "scores": {
        "type": "object",
        "description": "{scorer: {value, passed, explanation, details}}",
    },
    "cost_usd": NUM,
    "latency_ms": {"type": ["number", "null"]},
    "error": OPT_STR,
    "cached": {"type": "boolean"},
    "cache_key": OPT_STR,
}


REGISTRY_SCHEMAS: dict[str, dict[str, Any]] = {
    "PromptCreate": object_schema(
        {
            "name": {**STR, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"},
            "team": {**OPT_STR, "description": "Owning team (id or name); null: the platform."},
            "description": OPT_STR,
            "message": {**OPT_STR, "description": "What this version changes."},
            **_PROMPT_CONTENT,
        },
        ("name", "template"),
    ),
    "PromptVersion": answer(_PROMPT_VERSION),
    "PromptVersionCreated": answer({**_PROMPT_VERSION, "created": {"type": "boolean"}}),
    "PromptVersionList": list_of("PromptVersion"),
    "PromptServed": answer({**_PROMPT_VERSION, "label": OPT_STR}),
    "Prompt": answer(_PROMPT),
    "PromptList": list_of("Prompt"),
    "PromptDetail": answer({**_PROMPT, "version": ref("PromptVersion")}),
    "LabelSet": object_schema(
        {
            "version": {"type": "integer", "minimum": 1},
            "reason": OPT_STR,
            "force": {
                "type": "boolean",
                "description": "Admin key only, with a reason: move past a refusing gate.",
            },
        },
        ("version",),
    ),
    "LabelRollback": object_schema({"reason": OPT_STR}),
    "LabelMove": answer(_LABEL_MOVE),
    "LabelMoveResult": answer(
        {
            "name": STR,
            "label": STR,
            "version": INT,
            "changed": {"type": "boolean"},
            "move": {"anyOf": [ref("LabelMove"), {"type": "null"}]},
        }
    ),
    "LabelHistory": list_of("LabelMove"),
    "PromptGateSet": object_schema(
        {
            "suite": {**STR, "description": "The eval suite's name (its YAML's 'name')."},
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
    "PromptGate": answer(
        {
            "object": {"const": "prompt.gate"},
            "name": STR,
            "label": STR,
            "suite": STR,
            "require_no_regression": {"type": "boolean"},
            "max_age_days": {"type": ["integer", "null"]},
            "created_by": STR,
            "created_at": TIME,
        }
    ),
    "PromptGateList": list_of("PromptGate"),
    "EvalRunCreate": object_schema(
        {
            "suite": STR,
            "suite_fingerprint": STR,
            "target": {
                **STR,
                "description": "prompt:NAME#LABEL, prompt:NAME@V, messages, python:M:F",
            },
            "models": {"type": "array", "items": STR},
            "prompt": {**OPT_STR, "description": "The resolved prompt, name@version."},
            "dataset": {**OPT_STR, "description": "A registered dataset, name@version."},
            "repetitions": {"type": "integer", "minimum": 1},
            "cases_total": {"type": "integer", "minimum": 0},
            "git_sha": OPT_STR,
            "git_branch": OPT_STR,
            "baseline_run_id": OPT_STR,
        },
        ("suite", "suite_fingerprint", "target", "models", "repetitions", "cases_total"),
    ),
    "EvalRun": answer(_EVAL_RUN),
    "EvalRunList": list_of("EvalRun"),
    "EvalBaseline": answer(
        {
            "object": {"const": "eval.baseline"},
            "suite": STR,
            "run": {"anyOf": [ref("EvalRun"), {"type": "null"}]},
        }
    ),
    "EvalRunDetail": object_schema(
        {**_EVAL_RUN, "cases": {"type": "array", "items": ref("EvalCaseResult")}},
        tuple(_EVAL_RUN),
    ),
    "EvalCaseResult": object_schema(_EVAL_CASE, ("case_id", "model", "repetition", "scores")),
    "EvalCasesAdd": object_schema(
        {"cases": {"type": "array", "items": ref("EvalCaseResult"), "maxItems": 1000}},
        ("cases",),
    ),
    "EvalCasesAdded": answer({"added": INT}),
    "EvalRunFinish": object_schema(
        {
            "status": {"enum": ["finished", "capped", "failed"]},
            "summary": {"type": ["object", "null"]},
            "baseline_run_id": OPT_STR,
        },
        ("status",),
    ),
    "EvalRunResume": object_schema({}),
    "EvalDatasetPush": object_schema(
        {
            "name": {**STR, "maxLength": 200},
            "format": {"enum": ["jsonl", "csv"]},
            "content": {**STR, "description": "The file's text"},
            "team": {**OPT_STR, "description": "The admin key: the owning team (id or name)"},
        },
        ("name", "format", "content"),
    ),
    "EvalDatasetVersion": answer(_EVAL_DATASET_VERSION),
    "EvalDatasetPushed": answer({**_EVAL_DATASET_VERSION, "created": {"type": "boolean"}}),
    "EvalDatasetDetail": answer(
        {
            **_EVAL_DATASET_VERSION,
            "content": {**STR, "description": "JSONL, one normalised case a line"},
            "versions": {"type": "array", "items": ref("EvalDatasetVersion")},
        }
    ),
    "EvalDataset": answer(
        {
            "object": {"const": "eval.dataset"},
            "name": STR,
            "team_id": OPT_STR,
            "latest_version": INT,
            "cases": INT,
            "updated_at": TIME,
        }
    ),
    "EvalDatasetList": list_of("EvalDataset"),
    "EvalCacheLookup": object_schema(
        {"keys": {"type": "array", "items": STR, "maxItems": 5000}}, ("keys",)
    ),
    "EvalCacheHits": answer(
        {
            "hits": {
                "type": "object",
                "additionalProperties": answer(
                    {
                        "output": OPT_STR,
                        "cost_usd": NUM,
                        "latency_ms": {"type": ["number", "null"]},
                    }
                ),
            }
        }
    ),
}
