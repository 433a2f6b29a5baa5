"""Guardrail policies built from ``llmplane.yaml``: each rule's detector made once, at start.

:func:`build_policies` imports the platform's plugin modules (which register custom
detectors), then builds every rule's detector with its options. Anything wrong — an
unknown detector, a bad option, a plugin that does not import — is a
:class:`~llmplane.errors.ConfigError` naming the file and the rule's key path
(``guardrails.policies.strict.input[1].options``), so the gateway does not start with a
policy it cannot apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmplane.config.guardrails import (
    DEFAULT_SOURCES,
    Action,
    GuardrailPolicyConfig,
    GuardrailRule,
    GuardrailsConfig,
)
from llmplane.errors import ConfigError
from llmplane.guardrails import registry
from llmplane.guardrails.base import Detector, Finding, Source, Verdict
from llmplane.guardrails.registry import build_detector

__all__ = ["Policy", "Rule", "build_policies", "load_plugins"]

Stage = str  # "input" or "output"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a policy with its detector built: ``id`` is its place in the policy
    (``input[0]``), the name errors and verdicts use."""

    id: str
    detector_name: str
    detector: Detector
    action: Action
    threshold: float | None
    sources: frozenset[Source]

    @property
    def whole_text(self) -> bool:
        """Whether the detector judges only a whole answer (``json_schema``): it does not
        check a stream's windows, only the whole streamed text at its end."""
        return bool(getattr(self.detector, "whole_text", False))

    def flagged(self, verdict: Verdict) -> bool:
        """The rule's decision: the detector's own, or its score against the rule's
        ``threshold``."""
        if self.threshold is None:
            return verdict.flagged
        return verdict.score >= self.threshold

    def findings(self, verdict: Verdict) -> tuple[Finding, ...]:
        """The findings the rule acts on (those at its threshold, when it sets one)."""
        if self.threshold is None:
            return verdict.findings
        return tuple(f for f in verdict.findings if f.score >= self.threshold)


@dataclass(frozen=True, slots=True)
class Policy:
    """A named policy, ready to apply."""

    name: str
    input: tuple[Rule, ...]
    output: tuple[Rule, ...]
    fail_closed: bool
    timeout_s: float
    window_chars: int

    @property
    def pseudonymizes(self) -> bool:
        """Whether the answer's placeholders are to be restored."""
        return any(rule.action == "pseudonymize" for rule in self.input)


def load_plugins(modules: Sequence[str], *, file: str | None = None) -> None:
    """Import the platform's plugin modules, which register their detectors on import;
    a failure is a :class:`ConfigError` naming the plugin's place in the file."""
    for index, module in enumerate(modules):
        try:
            registry.load_plugins([module])
        except registry.PluginError as exc:
            raise ConfigError(
                str(exc), file=file, key_path=f"guardrails.plugins[{index}]"
            ) from None


def _rule(rule: GuardrailRule, stage: Stage, index: int, path: str, file: str | None) -> Rule:
    try:
        detector = build_detector(rule.detector, rule.options)
    except ImportError as exc:
        raise ConfigError(
            f"detector {rule.detector!r} cannot be loaded: {exc}", file=file, key_path=path
        ) from None
    except (TypeError, ValueError) as exc:
        key = f"{path}.options" if "unknown detector" not in str(exc) else f"{path}.detector"
        raise ConfigError(str(exc), file=file, key_path=key) from None
    sources: frozenset[Source] = frozenset(("output",))
    if stage == "input":
        sources = frozenset(rule.sources if rule.sources is not None else DEFAULT_SOURCES)
    return Rule(
        id=f"{stage}[{index}]",
        detector_name=rule.detector,
        detector=detector,
        action=rule.action,
        threshold=rule.threshold,
        sources=sources,
    )


def _policy(name: str, config: GuardrailPolicyConfig, file: str | None) -> Policy:
    stages: dict[str, tuple[Rule, ...]] = {}
    for stage in ("input", "output"):
        rules: list[GuardrailRule] = getattr(config, stage)
        stages[stage] = tuple(
            _rule(rule, stage, index, f"guardrails.policies.{name}.{stage}[{index}]", file)
            for index, rule in enumerate(rules)
        )
    return Policy(
        name=name,
        input=stages["input"],
        output=stages["output"],
        fail_closed=config.on_error == "closed",
        timeout_s=config.timeout_ms / 1000,
        window_chars=config.stream_window_chars,
    )


def build_policies(config: GuardrailsConfig, *, file: str | None = None) -> dict[str, Policy]:
    """Every policy of ``config`` with its detectors built (plugins imported first)."""
    load_plugins(config.plugins, file=file)
    return {name: _policy(name, policy, file) for name, policy in config.policies.items()}
