"""Applying guardrail policies to the texts of one request, off the event loop.

:class:`GuardrailEngine` holds the built policies and a bounded pool of threads that run
the detectors (plain synchronous CPU code). A request gets a :class:`RequestGuard`, which
checks the request's texts before the call and the answer's after it (a stream's answer
window by window), and applies each rule's action:

- ``block``: :class:`~llmplane.errors.GuardrailBlockedError` (400) on input,
  :class:`~llmplane.errors.OutputBlockedError` (403) on output, naming the policy, the rule
  and the finding types, never the matched text;
- ``redact`` / ``mask`` / ``hash``: the findings' spans rewritten
  (:mod:`llmplane.guardrails.actions`; ``hash`` keyed per team);
- ``pseudonymize`` (input): numbered placeholders, restored in the answer;
- ``flag``: recorded only.

A policy's checks of one stage run as one job in the pool (rules in policy order) and
share its ``timeout_ms``. A detector that raises or is late is ``error`` / ``timeout``
(rules after a late one did not run: ``timeout`` too): a fail-closed policy then answers
503 ``guardrail_unavailable``, a fail-open one lets the text pass and records the miss. A
late detector's thread cannot be stopped (Python has no way to kill a thread): the engine
counts such stuck calls per detector, and while a detector holds half the pool it is not
called at all (``unavailable``, handled as a failure) — so one hung detector never takes
every thread, and it is called again as soon as its stuck calls return.

Every check is recorded as a :class:`~llmplane.telemetry.GuardrailCheck` (one per rule and
stage; a stream's window checks merge into one), for the ledger, spans, metrics and the
request log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from llmplane.config.guardrails import GuardrailsConfig
from llmplane.errors import (
    GuardrailBlockedError,
    GuardrailUnavailableError,
    LLMPlaneError,
    OutputBlockedError,
)
from llmplane.guardrails.actions import Pseudonymizer, rewrite, tenant_hash_key
from llmplane.guardrails.base import CheckContext, Finding, Source, Verdict
from llmplane.guardrails.policy import Policy, Rule, build_policies
from llmplane.telemetry import GuardrailCheck

__all__ = ["GuardrailEngine", "RequestGuard"]

log = logging.getLogger("llmplane.guardrails")

PASS, FLAGGED, ERROR, TIMEOUT, UNAVAILABLE = "pass", "flagged", "error", "timeout", "unavailable"
_FAILED = frozenset({ERROR, TIMEOUT, UNAVAILABLE})
_RANK = {PASS: 0, FLAGGED: 1, UNAVAILABLE: 2, TIMEOUT: 3, ERROR: 4}
_REWRITES = frozenset({"redact", "mask", "hash", "pseudonymize"})


@dataclass(slots=True)
class _Result:
    rule: Rule
    outcome: str
    verdicts: list[tuple[int, Verdict]] = field(default_factory=list)  # (text index, verdict)
    seconds: float = 0.0
    done: bool = False


@dataclass(slots=True)
class _StageRun:
    """One stage's rules, run one after another in a pool thread; shared with the event
    loop, which stops it (``stop``) when the time budget is spent and reads ``current``
    to know which detector is stuck."""

    work: Sequence[tuple[Rule, Sequence[tuple[int, str, CheckContext]]]]
    results: list[_Result]
    current: int | None = None
    stop: bool = False

    def __call__(self) -> None:
        for position, (rule, items) in enumerate(self.work):
            result = self.results[position]
            if self.stop:
                return
            if result.done:  # unavailable: skipped
                continue
            self.current = position
            started = time.perf_counter()
            try:
                result.verdicts = [
                    (index, rule.detector.check(text, context)) for index, text, context in items
                ]
            except Exception as exc:  # noqa: BLE001 - a detector's bug is its rule's error
                result.outcome = ERROR
                log.warning(
                    "guardrail detector %r raised %s", rule.detector_name, type(exc).__name__
                )
            result.seconds = time.perf_counter() - started
            result.done = True
        self.current = None


class DetectorPool:
    """A bounded thread pool for detectors, which keeps a hung detector to half of it.

    A stage's rules run as one job (one thread hop per stage: cheaper than a hop per rule
    when detectors hold the GIL, as regular expressions do)."""

    def __init__(self, workers: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="llmplane-guardrail")
        self._max_stuck = max(1, workers // 2)
        self._stuck: dict[int, int] = {}
        self._lock = threading.Lock()

    def _release(self, key: int, _done: object = None) -> None:
        with self._lock:
            left = self._stuck.get(key, 0) - 1
            if left > 0:
                self._stuck[key] = left
            else:
                self._stuck.pop(key, None)

    def stuck(self, rule: Rule) -> int:
        """How many of ``rule``'s detector calls are still running past their budget."""
        with self._lock:
            return self._stuck.get(id(rule.detector), 0)

    async def run(
        self,
        work: Sequence[tuple[Rule, Sequence[tuple[int, str, CheckContext]]]],
        timeout_s: float,
    ) -> list[_Result]:
        """Run each rule over its texts, all within ``timeout_s``; a rule that did not
        finish in time is ``timeout`` (and the rules after it too: the budget is spent)."""
        results = [_Result(rule, PASS) for rule, _ in work]
        for result in results:
            if self.stuck(result.rule) >= self._max_stuck:
                result.outcome, result.done = UNAVAILABLE, True
        if all(result.done for result in results):
            return results
        stage = _StageRun(work, results)
        started = time.perf_counter()
        submitted: Future[None] = self._executor.submit(stage)
        waiting = asyncio.wrap_future(submitted)
        try:
            await asyncio.wait([waiting], timeout=timeout_s)
        except asyncio.CancelledError:
            stage.stop = True
            waiting.cancel()
            raise
        if waiting.done():
            return results
        stage.stop = True
        running = stage.current
        waiting.cancel()  # dropped if still queued; a running detector cannot be stopped
        if running is not None and not submitted.done():
            key = id(results[running].rule.detector)
            with self._lock:
                self._stuck[key] = self._stuck.get(key, 0) + 1
            submitted.add_done_callback(functools.partial(self._release, key))
        late = time.perf_counter() - started
        for result in results:
            if not result.done:
                result.outcome, result.seconds = TIMEOUT, late
        return results

    def close(self) -> None:
        """Stop taking work; threads still running a (hung) detector are not waited for."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class GuardrailEngine:
    """The platform's guardrail policies and the threads that run their detectors."""

    def __init__(
        self, policies: dict[str, Policy], *, workers: int = 4, hash_secret: bytes | None = None
    ) -> None:
        self.policies = policies
        self.pool = DetectorPool(workers)
        self._hash_secret = hash_secret
        self._hash_keys: dict[str | None, bytes] = {}

    @classmethod
    def from_config(cls, config: GuardrailsConfig, *, file: str | None = None) -> GuardrailEngine:
        """Build every policy of ``config`` (plugins first); :class:`ConfigError` otherwise."""
        secret = config.hash_secret.get_secret_value().encode() if config.hash_secret else None
        return cls(build_policies(config, file=file), workers=config.workers, hash_secret=secret)

    def hash_key(self, tenant: str | None) -> bytes | None:
        """The ``hash`` action's key for ``tenant`` (derived once per team)."""
        if self._hash_secret is None:
            return None
        key = self._hash_keys.get(tenant)
        if key is None:
            key = self._hash_keys[tenant] = tenant_hash_key(self._hash_secret, tenant)
        return key

    def guard(self, policy: str, tenant: str | None) -> RequestGuard:
        """A guard for one request under ``policy`` (a configured name) for ``tenant``."""
        return RequestGuard(self, self.policies[policy], tenant)

    def close(self) -> None:
        """Release the detector threads."""
        self.pool.close()


class RequestGuard:
    """The guardrail checks of one request (not shared between requests).

    The gateway sets ``system_prompt`` and ``json_schema`` from the request (output checks
    read them), calls :meth:`check_input` before the call and :meth:`check_output` on the
    answer, and :meth:`restore` on text released to the client."""

    def __init__(self, engine: GuardrailEngine, policy: Policy, tenant: str | None) -> None:
        self._engine = engine
        self.policy = policy
        self.tenant = tenant
        self.system_prompt: str | None = None
        self.json_schema: dict[str, Any] | None = None
        self.checks: list[GuardrailCheck] = []
        self._positions: dict[str, int] = {}
        self.blocked: str | None = None  # the rule that blocked, if one did
        self.input_checked = False  # retries and fallbacks reuse the first check
        self.pseudonymizer = Pseudonymizer() if policy.pseudonymizes else None

    async def check_input(self, texts: Sequence[tuple[Source, str]]) -> list[str] | None:
        """Check the request's texts; the rewritten texts (same order), or ``None`` when
        nothing changed. Raises when a rule blocks, or a fail-closed check fails."""
        rules = self.policy.input
        if not rules or not texts:
            return None
        work = []
        for rule in rules:
            items = [
                (index, text, self._context(source))
                for index, (source, text) in enumerate(texts)
                if source in rule.sources and text
            ]
            if items:
                work.append((rule, items))
        return await self._apply("input", work, [text for _, text in texts])

    async def check_output(
        self, texts: Sequence[str], *, whole: bool | None = None
    ) -> list[str] | None:
        """Check the answer's texts; the rewritten texts or ``None`` when nothing changed.
        Placeholders are not restored here (see :meth:`restore`): the checks see what the
        model wrote, not the caller's own values put back. ``whole`` limits the rules to
        those that judge a whole answer (True) or those that may see a part (False)."""
        rules = self.policy.output
        if whole is not None:
            rules = tuple(rule for rule in rules if rule.whole_text is whole)
        if not rules or not texts:
            return None
        context = self._context("output")
        items = [(index, text, context) for index, text in enumerate(texts) if text]
        if not items:
            return None
        return await self._apply("output", [(rule, items) for rule in rules], list(texts))

    def restore(self, text: str) -> str:
        """``text`` with this request's placeholders replaced by the caller's values."""
        return self.pseudonymizer.restore(text) if self.pseudonymizer is not None else text

    def _context(self, source: Source) -> CheckContext:
        return CheckContext(
            source=source,
            tenant=self.tenant,
            system_prompt=self.system_prompt,
            json_schema=self.json_schema,
        )

    async def check_output_window(self, text: str, cut: int) -> tuple[str, str]:
        """Check a stream's held ``text`` and split it at ``cut``: the part to release now
        (rewritten as the rules say) and the part to keep holding. The cut moves back to the
        start of a finding that crosses it, so no finding is released half rewritten."""
        context = self._context("output")
        work = [(rule, [(0, text, context)]) for rule in self.policy.output if not rule.whole_text]
        edits = (await self._decide("output", work)).get(0, []) if work else []
        spans = [finding for finding, _ in edits if finding.end > finding.start]
        moved = True
        while moved:
            moved = False
            for finding in spans:
                if finding.start < cut < finding.end:
                    cut, moved = finding.start, True
        released = [(finding, action) for finding, action in edits if finding.end <= cut]
        return self._rewrite(text[:cut], released), text[cut:]

    async def _apply(
        self,
        stage: str,
        work: Sequence[tuple[Rule, Sequence[tuple[int, str, CheckContext]]]],
        texts: list[str],
    ) -> list[str] | None:
        if not work:
            return None
        edits = await self._decide(stage, work)
        if not edits:
            return None
        out = list(texts)
        for index, found in edits.items():
            out[index] = self._rewrite(texts[index], found)
        return out

    async def _decide(
        self,
        stage: str,
        work: Sequence[tuple[Rule, Sequence[tuple[int, str, CheckContext]]]],
    ) -> dict[int, list[tuple[Finding, str]]]:
        """Run the rules, record each, and raise for the first that blocks or fails
        closed; else the rewrites to make, by text index."""
        results = await self._engine.pool.run(work, self.policy.timeout_s)
        failure: LLMPlaneError | None = None
        edits: dict[int, list[tuple[Finding, str]]] = {}
        for result in results:
            rule = result.rule
            verdicts = result.verdicts if result.outcome == PASS else []
            flagged = [(i, v) for i, v in verdicts if rule.flagged(v)]
            outcome = FLAGGED if flagged and result.outcome == PASS else result.outcome
            types = tuple(dict.fromkeys(t for _, v in flagged for t in v.types))
            score = max((v.score for _, v in flagged), default=0.0)
            action = "none"
            if outcome == FLAGGED:
                action = rule.action
            elif outcome in _FAILED:
                action = "block" if self.policy.fail_closed else "none"
            self._record(
                GuardrailCheck(
                    self.policy.name, stage, rule.id, rule.detector_name, outcome, action,
                    result.seconds, types, score,
                )
            )  # fmt: skip
            if failure is not None:
                continue
            if outcome in _FAILED and self.policy.fail_closed:
                failure = self._unavailable(stage, rule, outcome)
            elif outcome == FLAGGED and rule.action == "block":
                failure = self._blocked(stage, rule, types)
            elif outcome == FLAGGED and rule.action in _REWRITES:
                for index, verdict in flagged:
                    edits.setdefault(index, []).extend(
                        (finding, rule.action) for finding in rule.findings(verdict)
                    )
        if failure is not None:
            raise failure
        return edits

    def _rewrite(self, text: str, found: list[tuple[Finding, str]]) -> str:
        """``text`` with each finding's span rewritten as its rule says; where findings of
        two rules overlap, the first rule's (in policy order) wins."""
        chosen: list[tuple[Finding, str]] = []
        for finding, action in found:
            if finding.end <= finding.start:
                continue  # about the whole text: nothing to rewrite
            if all(finding.end <= f.start or finding.start >= f.end for f, _ in chosen):
                chosen.append((finding, action))
        chosen.sort(key=lambda item: item[0].start)
        parts: list[str] = []
        position = 0
        for finding, action in chosen:
            value = text[finding.start : finding.end]
            whole = (Finding(finding.type, 0, len(value), finding.score),)
            parts.append(text[position : finding.start])
            if action == "pseudonymize":
                assert self.pseudonymizer is not None
                parts.append(self.pseudonymizer.replace(value, whole))
            elif action == "hash":
                key = self._engine.hash_key(self.tenant)
                parts.append(rewrite(value, whole, "hash", hash_key=key))
            else:
                parts.append(rewrite(value, whole, "mask" if action == "mask" else "redact"))
            position = finding.end
        parts.append(text[position:])
        return "".join(parts)

    def _record(self, check: GuardrailCheck) -> None:
        """Add a check; a rule checked again in the same stage (a stream's windows) merges
        into its first record: the worst outcome, all types, the total time."""
        key = f"{check.stage}:{check.rule}"
        position = self._positions.get(key)
        if position is None:
            self._positions[key] = len(self.checks)
            self.checks.append(check)
            return
        old = self.checks[position]
        worst = check if _RANK[check.outcome] > _RANK[old.outcome] else old
        self.checks[position] = replace(
            old,
            outcome=worst.outcome,
            action=worst.action,
            seconds=old.seconds + check.seconds,
            types=tuple(dict.fromkeys((*old.types, *check.types))),
            score=max(old.score, check.score),
        )

    def _blocked(self, stage: str, rule: Rule, types: tuple[str, ...]) -> LLMPlaneError:
        self.blocked = rule.id
        found = ", ".join(types) if types else "flagged content"
        where = f"guardrail policy '{self.policy.name}', rule {rule.id} ({rule.detector_name})"
        if stage == "input":
            return GuardrailBlockedError(f"The request was blocked by {where}: {found}.")
        return OutputBlockedError(f"The answer was withheld by {where}: {found}.")

    def _unavailable(self, stage: str, rule: Rule, outcome: str) -> LLMPlaneError:
        self.blocked = rule.id
        what = "request" if stage == "input" else "answer"
        how = {
            TIMEOUT: f"did not finish within {self.policy.timeout_s * 1000:g} ms",
            ERROR: "failed",
            UNAVAILABLE: "is unavailable (earlier checks are still running)",
        }[outcome]
        return GuardrailUnavailableError(
            f"Guardrail policy '{self.policy.name}' could not check the {what}: rule "
            f"{rule.id} ({rule.detector_name}) {how}, and the policy fails closed."
        )

    def summary(self) -> dict[str, Any] | None:
        """The checks so far as JSON for the ledger (a copy: later checks do not change it)."""
        if not self.checks:
            return None
        data: dict[str, Any] = {
            "policy": self.policy.name,
            "checks": [check.to_json() for check in self.checks],
        }
        if self.blocked is not None:
            data["blocked"] = self.blocked
        return data
