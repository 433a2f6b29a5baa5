"""The eval harness: suites of cases run against prompts, models or Python callables
through the gateway, scored, stored and compared with a baseline (see ``scoring`` for the
core types)."""

from llmplane.evals.client import HarnessClient
from llmplane.evals.harness import EvalOptions, EvalReport, GitInfo, run_eval
from llmplane.evals.suite import (
    Message,
    PromptRef,
    ScorerSpec,
    Suite,
    SuiteError,
    Target,
    load_suite,
)

__all__ = [
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
