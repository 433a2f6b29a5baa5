"""The eval harness: suites of cases run against prompts, models or Python callables
through the gateway, scored, stored and compared with a baseline (see ``scoring`` for the
core types).

The names below are imported on first use, so that importing a submodule (the pytest
plugin, which every pytest run loads) does not import the whole harness.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmplane.evals.client import HarnessClient
    from llmplane.evals.harness import EvalOptions, EvalReport, GitInfo, run_eval
    from llmplane.evals.suite import (
        DatasetRef,
        Message,
        PromptRef,
        ScorerSpec,
        Suite,
        SuiteError,
        Target,
        load_suite,
    )

_WHERE = {
    "HarnessClient": "client",
    "EvalOptions": "harness",
    "EvalReport": "harness",
    "GitInfo": "harness",
    "run_eval": "harness",
    "DatasetRef": "suite",
    "Message": "suite",
    "PromptRef": "suite",
    "ScorerSpec": "suite",
    "Suite": "suite",
    "SuiteError": "suite",
    "Target": "suite",
    "load_suite": "suite",
}

__all__ = [
    "DatasetRef",
    "EvalOptions",
    "EvalReport",
    "GitInfo",
    "HarnessClient",
    "Message",
    "PromptRef",
    "ScorerSpec",
    "Suite",
    "SuiteError",
    "Target",
    "load_suite",
    "run_eval",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'llmplane.evals' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"llmplane.evals.{module}"), name)
    globals()[name] = value
    return value
