"""The prompt registry: prompts with immutable versions, labels that move between them
(recorded, audited and logged as changes), typed rendering, and a cache for the request
path. Promotion gates plug in through :mod:`llmplane.prompts.gates`."""

from llmplane.prompts.cache import PromptResolver, ResolvedPrompt
from llmplane.prompts.content import PromptContent, check_name
from llmplane.prompts.gates import GateRefusedError, LabelGate, ProposedMove
from llmplane.prompts.labels import LabelMove, check_label, label_history, rollback, set_label
from llmplane.prompts.registry import (
    DEFAULT_LABEL,
    LATEST,
    Prompt,
    PromptVersion,
    create_version,
    get_prompt,
    get_version,
    list_prompts,
    list_versions,
)
from llmplane.prompts.template import CompiledTemplate, VariableSpec, parse_cli_value

__all__ = [
    "DEFAULT_LABEL",
    "LATEST",
    "CompiledTemplate",
    "GateRefusedError",
    "LabelGate",
    "LabelMove",
    "Prompt",
    "PromptContent",
    "PromptResolver",
    "PromptVersion",
    "ProposedMove",
    "ResolvedPrompt",
    "VariableSpec",
    "check_label",
    "check_name",
    "create_version",
    "get_prompt",
    "get_version",
    "label_history",
    "list_prompts",
    "list_versions",
    "parse_cli_value",
    "rollback",
    "set_label",
]
