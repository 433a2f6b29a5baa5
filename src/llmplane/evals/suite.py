"""A suite: a dataset, what to run on it, how to score it and what must hold.

The same definition is a YAML file (:func:`load_suite`) or Python objects
(``Suite(name=..., dataset=..., target=Target(...), scorers=[...])``); a YAML loads into
these objects, so both run identically. Errors name the file and the key
(``suite.yaml: target.prompt.label: ...``).

.. code-block:: yaml

    name: support-answers
    dataset: cases.jsonl            # JSONL or CSV, relative to this file
    # dataset: {name: support-faq, version: 3}   (registered; version: latest)
    target:
      prompt: {name: support-reply, label: production}   # or version: 3
      # messages: [{role: user, content: "{{ question }}"}]   (inline template)
      # python: "my_pkg.pipeline:answer"                     (whole pipelines)
      model: mock                   # or models: [mock, gpt-4o-mini]
      params: {temperature: 0}
    scorers:
      - {name: exact, scorer: exact}
      - {name: mentions, scorer: contains, options: {ignore_case: true}}
    thresholds:
      exact: {pass_rate: 0.9}
      mentions: {mean: 0.8}
    repetitions: 1
    concurrency: 8
    max_cost_usd: 2.0
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmplane.errors import InvalidRequestError
from llmplane.prompts.template import MESSAGE_ROLES, CompiledTemplate, VariableSpec, compile_text

METRICS = ("mean", "pass_rate")


class SuiteError(ValueError):
    """A suite or dataset that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptRef(_Strict):
    """A registered prompt, by label (default ``production``) or version."""

    name: str
    label: str | None = None
    version: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_selector(self) -> PromptRef:
        if self.label is not None and self.version is not None:
            raise ValueError("give 'label' or 'version', not both")
        return self


class DatasetRef(_Strict):
    """A dataset registered in the platform (``llmplane eval datasets push``), by name and
    version (a number, or ``latest``: the newest when the run starts)."""

    name: str = Field(min_length=1, max_length=200)
    version: int | Literal["latest"] = "latest"

    @field_validator("version")
    @classmethod
    def _positive(cls, version: int | str) -> int | str:
        if isinstance(version, int) and version < 1:
            raise ValueError("a version number is 1 or more")
        return version


class Message(_Strict):
    """One message of an inline template; ``{{ var }}`` takes the case's input."""

    role: str
    content: str

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in MESSAGE_ROLES:
            raise ValueError(f"role must be one of {', '.join(MESSAGE_ROLES)}")
        return role


class Target(_Strict):
    """What runs on each case: exactly one of ``prompt``, ``messages`` or ``python``;
    ``model`` or a matrix of ``models`` (a prompt may bring its own model)."""

    prompt: PromptRef | None = None
    messages: list[Message] | None = None
    python: str | None = None
    model: str | None = None
    models: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        kinds = [k for k in ("prompt", "messages", "python") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of 'prompt', 'messages' or 'python'")
        if self.model is not None and self.models is not None:
            raise ValueError("give 'model' or 'models', not both")
        if self.models is not None and not self.models:
            raise ValueError("'models' must not be empty")
        if self.python is not None and ":" not in self.python:
            raise ValueError("'python' must be 'module:function'")
        if self.messages is not None and self.model_list() == [None]:
            raise ValueError("an inline 'messages' target needs 'model' or 'models'")
        if "messages" in self.params or "model" in self.params or "prompt" in self.params:
            raise ValueError("'params' holds sampling parameters, not messages/model/prompt")
        return self

    def model_list(self) -> list[str | None]:
        """The models to run (``[None]``: the prompt's own model, or the callable's)."""
        if self.models is not None:
            return list(self.models)
        return [self.model]

    def compiled_messages(self) -> CompiledTemplate | None:
        """The inline template, compiled with every placeholder as a string variable."""
        if self.messages is None:
            return None
        template = [m.model_dump() for m in self.messages]
        names: set[str] = set()
        for index, message in enumerate(template):
            for piece in compile_text(message["content"], f"target.messages[{index}]"):
                if isinstance(piece, tuple):
                    names.add(piece[0])
        variables = {n: VariableSpec(n, "string", required=True) for n in sorted(names)}
        return CompiledTemplate.build(template, variables)

    def describe(self) -> str:
        """A short text of the target, as runs list it."""
        if self.prompt is not None:
            selector = (
                f"@{self.prompt.version}"
                if self.prompt.version is not None
                else f"#{self.prompt.label or 'production'}"
            )
            return f"prompt:{self.prompt.name}{selector}"
        if self.python is not None:
            return f"python:{self.python}"
        return "messages"


class ScorerSpec(_Strict):
    """One scorer of the suite: its metric ``name``, the scorer kind, its options, and an
    optional per-case cutoff (``value >= threshold`` passes, instead of the scorer's own
    verdict)."""

    name: str
    scorer: str
    options: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None


class Suite(_Strict):
    """A whole suite (see the module's docstring for the YAML form)."""

    name: str = Field(min_length=1, max_length=200)
    dataset: DatasetRef | Path
    target: Target
    scorers: list[ScorerSpec] = Field(min_length=1)
    thresholds: dict[str, dict[Literal["mean", "pass_rate"], float]] = Field(default_factory=dict)
    repetitions: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(default=8, ge=1, le=1024)
    max_cost_usd: float | None = Field(default=None, ge=0)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _known_metrics(self) -> Suite:
        names = [s.name for s in self.scorers]
        if len(set(names)) != len(names):
            raise ValueError("scorer names must be unique")
        for metric in self.thresholds:
            if metric not in names:
                raise ValueError(f"thresholds names '{metric}', which is not a scorer's name")
        return self

    def dataset_path(self) -> Path:
        """The dataset's path, relative to the suite file when the suite came from one
        (:class:`SuiteError` for a registered dataset, which has none)."""
        if isinstance(self.dataset, DatasetRef):
            raise SuiteError(f"{self.source or 'suite'}: dataset: a registered dataset")
        if self.dataset.is_absolute() or self.source is None:
            return self.dataset
        return self.source.parent / self.dataset

    def fingerprint(self, dataset_bytes: bytes) -> str:
        """SHA-256 of the definition and the dataset's bytes: equal fingerprints, same suite."""
        definition = self.model_dump(mode="json", exclude={"source", "concurrency", "max_cost_usd"})
        definition.pop("dataset", None)
        digest = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS))
        digest.update(dataset_bytes)
        return digest.hexdigest()


def _key(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part not in ("function-after",)) or "(top)"


def load_suite(path: Path) -> Suite:
    """Read a suite YAML; :class:`SuiteError` naming the file and key when it is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: must hold a mapping with name, dataset, target, scorers")
    return suite_from_mapping(data, source=path)


def suite_from_mapping(data: dict[str, Any], source: Path | None = None) -> Suite:
    """A suite from its mapping form (a parsed YAML), errors naming ``source`` and key."""
    where = str(source) if source is not None else "suite"
    try:
        suite = Suite.model_validate({**data, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SuiteError(f"{where}: {_key(first['loc'])}: {first['msg']}") from None
    try:
        suite.target.compiled_messages()
    except InvalidRequestError as exc:
        raise SuiteError(f"{where}: {exc.param}: {exc}") from None
    return suite
