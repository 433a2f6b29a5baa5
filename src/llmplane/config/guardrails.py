"""The ``guardrails:`` section of ``llmplane.yaml``: named policies and who gets which.

::

    guardrails:
      plugins: [acme_platform.guardrails]     # modules that register custom detectors
      hash_secret: ${GUARDRAIL_HASH_SECRET}   # keys the per-team hash action
      policies:
        strict:
          on_error: closed                    # a detector that fails or is late blocks (503)
          timeout_ms: 200
          input:
            - {detector: blocklist, options: {terms: [project falcon]}, action: block}
            - {detector: pii, action: pseudonymize, sources: [user, tool]}
          output:
            - {detector: secrets, action: redact}
      teams: {support: strict}                # team name or id -> policy
      keys: {batch-key: relaxed}              # key name or id -> policy (overrides its team's)
      default: strict                         # everyone else (absent: no policy)

Only shapes and references are checked here (the config layer imports no detector); the
detectors themselves are built, with their options, when the gateway starts
(:func:`llmplane.guardrails.policy.build_policies`), and a bad name or option stops it
with the key path of the rule.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Action = Literal["block", "redact", "mask", "hash", "pseudonymize", "flag"]
InputSource = Literal["user", "system", "tool", "document"]
DEFAULT_SOURCES: tuple[InputSource, ...] = ("user", "tool", "document")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardrailRule(_Strict):
    """One check: a detector (built-in or registered by a plugin) with its options, what to
    do when it flags, and (for input) which messages it reads."""

    detector: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    action: Action = "flag"
    # Override of the detector's own decision: flag when its score reaches this.
    threshold: float | None = Field(default=None, ge=0, le=1)
    # Input only: which messages are read (system prompt, user turns, tool results,
    # retrieved documents). Default: everything but the platform's own system prompt.
    sources: tuple[InputSource, ...] | None = None


class GuardrailPolicyConfig(_Strict):
    """A named policy: the input and output rules, and what happens when a detector raises
    or misses ``timeout_ms`` (``closed``, the default: the request fails with 503
    ``guardrail_unavailable``; ``open``: it passes, and the miss is recorded)."""

    input: list[GuardrailRule] = Field(default_factory=list)
    output: list[GuardrailRule] = Field(default_factory=list)
    on_error: Literal["open", "closed"] = "closed"
    timeout_ms: float = Field(default=500.0, gt=0, le=60_000)
    # Streamed answers: text is held back until this many more characters followed it, so
    # a match up to this long is caught before the client sees any of it.
    stream_window_chars: int = Field(default=256, ge=16, le=16_384)

    @model_validator(mode="after")
    def _check_rules(self) -> GuardrailPolicyConfig:
        for index, rule in enumerate(self.output):
            if rule.action == "pseudonymize":
                raise ValueError(
                    f"output[{index}]: pseudonymize is an input action (its placeholders are "
                    "restored in the answer)"
                )
            if rule.sources is not None:
                raise ValueError(f"output[{index}]: sources is for input rules")
        return self


class GuardrailsConfig(_Strict):
    """Every guardrail policy of the platform and who gets which."""

    plugins: list[str] = Field(default_factory=list)
    hash_secret: SecretStr | None = None
    policies: dict[str, GuardrailPolicyConfig] = Field(default_factory=dict)
    teams: dict[str, str] = Field(default_factory=dict)
    keys: dict[str, str] = Field(default_factory=dict)
    default: str | None = None
    # Threads that run detectors (CPU work, off the event loop).
    workers: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="after")
    def _check_references(self) -> GuardrailsConfig:
        known = ", ".join(sorted(self.policies)) or "none"
        for section in ("teams", "keys"):
            for who, policy in getattr(self, section).items():
                if policy not in self.policies:
                    raise ValueError(
                        f"{section}.{who} names policy {policy!r}, which is not defined "
                        f"(policies: {known})"
                    )
        if self.default is not None and self.default not in self.policies:
            raise ValueError(f"default names policy {self.default!r}, which is not defined")
        if self.hash_secret is None:
            for name, policy in self.policies.items():
                for stage in ("input", "output"):
                    for index, rule in enumerate(getattr(policy, stage)):
                        if rule.action == "hash":
                            raise ValueError(
                                f"policies.{name}.{stage}[{index}]: the hash action needs "
                                "guardrails.hash_secret"
                            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether any caller can get a policy."""
        return bool(self.teams or self.keys or self.default)

    def policy_for(
        self, key_id: str, key_name: str, team_id: str | None, team_name: str | None
    ) -> str | None:
        """The policy of a key: its own (by id, then name), else its team's (by id, then
        name), else the default. A key's policy replaces its team's, even a weaker one: only
        the platform team edits this file."""
        keys, teams = self.keys, self.teams
        for found in (
            keys.get(key_id),
            keys.get(key_name),
            teams.get(team_id) if team_id else None,
            teams.get(team_name) if team_name else None,
        ):
            if found is not None:
                return found
        return self.default
