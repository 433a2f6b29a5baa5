"""Running a suite: every case × model × repetition through the gateway, concurrently
(a semaphore of ``concurrency``), scored, and stored as each finishes.

- Output cache: each model call's key is the SHA-256 of (model, rendered messages,
  parameters, repetition). Before calling, the run asks the store for results of the same
  team with those keys (the stored case results are the cache: it is shared by every CI
  job and person of the team, where a local file would be lost with each CI machine); a
  hit is reused at no cost. Python targets are not cached (their code is not in the key).
- Resume: finished results are posted as they finish; resuming a run skips every result
  it already stored. A plain re-run gets the same effect through the cache.
- Cost cap: once the run has spent ``max_cost_usd``, no new case starts; the run is
  ``capped``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import orjson

from llmplane.errors import LLMPlaneError
from llmplane.evals.client import ChatResult, HarnessClient
from llmplane.evals.gateway_client import GatewayCallError
from llmplane.evals.scoring import Case, CaseOutput, Score, Scorer
from llmplane.evals.suite import Suite
from llmplane.prompts.template import CompiledTemplate, parse_variables

_FLUSH_BATCH = 200
_FLUSH_BYTES = 48 * 1024  # per post of results: under any sane request body limit
MAX_OUTPUT_CHARS = 100_000  # of an output, as stored (scorers see all of it)


@dataclass(slots=True)
class CaseResult:
    """One case × model × repetition: what the target said and how it scored."""

    case_id: str
    model: str
    repetition: int
    output: str | None
    scores: dict[str, dict[str, Any]]
    cost_usd: float = 0.0
    latency_ms: float | None = None
    error: str | None = None
    cached: bool = False
    cache_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "case_id": self.case_id,
            "model": self.model,
            "repetition": self.repetition,
            "output": self.output,
            "scores": self.scores,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "cached": self.cached,
            "cache_key": self.cache_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        """A stored result."""
        return cls(
            case_id=data["case_id"],
            model=data["model"],
            repetition=data["repetition"],
            output=data.get("output"),
            scores=dict(data.get("scores") or {}),
            cost_usd=float(data.get("cost_usd") or 0.0),
            latency_ms=data.get("latency_ms"),
            error=data.get("error"),
            cached=bool(data.get("cached")),
            cache_key=data.get("cache_key"),
        )


class Progress:
    """``cases done/total, cost so far, errors`` on one refreshed line of ``stream``
    (only when it is a terminal, so CI logs stay clean)."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total = stream, total
        self.done = self.errors = 0
        self.cost_usd = 0.0
        self._live = stream.isatty()

    def advance(self, result: CaseResult) -> None:
        """Count one finished result."""
        self.done += 1
        self.cost_usd += 0.0 if result.cached else result.cost_usd
        self.errors += result.error is not None
        if self._live:
            self.stream.write(f"\r{self.line()}")
            self.stream.flush()

    def line(self) -> str:
        """The progress as text."""
        width = 24
        filled = width * self.done // max(self.total, 1)
        return (
            f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} cases"
            f"  ${self.cost_usd:.4f}  {self.errors} errors"
        )

    def close(self) -> None:
        """End the line."""
        self.stream.write(("\r" if self._live else "") + self.line() + "\n")
        self.stream.flush()


@dataclass(frozen=True, slots=True)
class Call:
    """What one work item sends: the request body, or a Python callable."""

    body: dict[str, Any] | None
    cache_key: str | None
    function: Callable[..., Any] | None = None


def cache_key(
    model: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], repetition: int
) -> str:
    """The output cache's key of one model call."""
    data = {"model": model, "messages": list(messages), "params": dict(params), "rep": repetition}
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def load_callable(reference: str) -> Callable[..., Any]:
    """``module:function`` imported."""
    module_name, _, name = reference.partition(":")
    function = getattr(importlib.import_module(module_name), name, None)
    if not callable(function):
        raise ValueError(f"'{reference}' is not a callable")
    return function  # type: ignore[no-any-return]


class CallPlanner:
    """Turns a case into the request for one model and repetition."""

    def __init__(self, suite: Suite, prompt_version: Mapping[str, Any] | None) -> None:
        target = suite.target
        self.target = target
        self.inline = target.compiled_messages()
        self.prompt_version = prompt_version
        self.prompt_template: CompiledTemplate | None = None
        self.prompt_params: dict[str, Any] = {}
        if prompt_version is not None:
            variables = parse_variables(prompt_version.get("variables"))
            self.prompt_template = CompiledTemplate.build(prompt_version["template"], variables)
            self.prompt_params = dict(prompt_version.get("params") or {})
            for name in ("tools", "response_format"):
                if prompt_version.get(name):
                    self.prompt_params[name] = prompt_version[name]
        self.function = load_callable(target.python) if target.python is not None else None

    def model_for(self, model: str | None) -> str:
        """The model a call actually asks for."""
        if model is not None:
            return model
        if self.prompt_version is not None and self.prompt_version.get("model"):
            return str(self.prompt_version["model"])
        return ""

    def plan(self, case: Case, model: str | None, repetition: int) -> Call:
        """The call for ``case`` (raises :class:`LLMPlaneError` when its input does not fit)."""
        if self.function is not None:
            return Call(None, None, self.function)
        params = dict(self.target.params)
        if self.prompt_template is not None and self.prompt_version is not None:
            messages = self.prompt_template.render(case.input)
            body: dict[str, Any] = {
                "prompt": {
                    "name": self.prompt_version["name"],
                    "version": self.prompt_version["version"],
                    "variables": dict(case.input),
                },
                **params,
            }
            if model is not None:
                body["model"] = model
            key_params = {**self.prompt_params, **params}
        else:
            assert self.inline is not None
            values = {name: _as_text(value) for name, value in case.input.items()}
            messages = self.inline.render(
                {k: v for k, v in values.items() if k in self.inline.variables}
            )
            body = {**params, "model": model, "messages": messages}
            key_params = params
        return Call(body, cache_key(self.model_for(model), messages, key_params, repetition))


class _CostCountingClient:
    """The client a Python target gets: the gateway client, counting the case's cost."""

    def __init__(self, client: HarnessClient) -> None:
        self._client = client
        self.cost_usd = 0.0

    async def chat_completion(self, body: Mapping[str, Any]) -> ChatResult:
        result = await self._client.chat_completion(body)
        self.cost_usd += result.cost_usd
        return result

    async def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> str:
        result = await self.chat_completion({**params, "model": model, "messages": messages})
        return result.text

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        return await self._client.embed(model, texts)


@dataclass(slots=True)
class RunState:
    """What a run has done so far."""

    results: list[CaseResult] = field(default_factory=list)
    spent_usd: float = 0.0
    capped: bool = False


async def score_output(
    scorers: Mapping[str, tuple[Scorer, float | None]],
    case: Case,
    output: CaseOutput,
    client: HarnessClient,
) -> dict[str, dict[str, Any]]:
    """Every scorer's verdict as stored. A scorer that raises, or a judge whose answers could
    not be read, gives a score marked ``"error": true``: stored and shown, but left out of
    the metrics and the comparison (a judge's trouble is not the target's regression)."""
    scores: dict[str, dict[str, Any]] = {}
    for name, (scorer, threshold) in scorers.items():
        error = False
        try:
            score = await scorer.score(case, output, client)
        except Exception as exc:  # noqa: BLE001 - a broken scorer fails its case, not the run
            score = Score(0.0, False, f"scorer failed: {type(exc).__name__}: {exc}")
            error = True
        details = dict(score.details) if score.details is not None else None
        if details is not None and details.get("unreadable") is True:
            error = True
        passed = score.passed if threshold is None else score.value >= threshold
        scores[name] = {
            "value": float(score.value),
            "passed": bool(passed) and not error,
            "explanation": score.explanation,
            "details": details,
        }
        if error:
            scores[name]["error"] = True
    return scores


def _failed_scores(scorers: Mapping[str, Any], error: str) -> dict[str, dict[str, Any]]:
    return {
        name: {"value": 0.0, "passed": False, "explanation": f"no output: {error}", "details": None}
        for name in scorers
    }


async def execute(
    suite: Suite,
    cases: Sequence[Case],
    planner: CallPlanner,
    scorers: Mapping[str, tuple[Scorer, float | None]],
    client: HarnessClient,
    run_id: str,
    *,
    done: set[tuple[str, str, int]],
    repetitions: int,
    concurrency: int,
    max_cost_usd: float | None,
    use_cache: bool,
    progress: Progress | None = None,
) -> RunState:
    """Run every result of the suite that is not in ``done``, storing each as it finishes."""
    state = RunState()
    items: list[tuple[Case, str | None, int, Call | None, str | None]] = []
    for case in cases:
        for model in suite.target.model_list():
            for repetition in range(repetitions):
                if (case.id, planner.model_for(model), repetition) in done:
                    continue
                try:
                    items.append(
                        (case, model, repetition, planner.plan(case, model, repetition), None)
                    )
                except LLMPlaneError as exc:
                    items.append((case, model, repetition, None, str(exc)))
    cache: dict[str, dict[str, Any]] = {}
    keys = sorted({i[3].cache_key for i in items if i[3] is not None and i[3].cache_key})
    if use_cache and keys:
        for start in range(0, len(keys), 5000):
            found = await client.api(
                "POST", "/admin/evals/cache", {"keys": keys[start : start + 5000]}
            )
            cache.update(found["hits"])

    queue: asyncio.Queue[CaseResult | None] = asyncio.Queue()

    path = f"/admin/evals/runs/{run_id}/cases"

    async def store() -> None:
        finished = False
        while not finished:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < _FLUSH_BATCH:
                batch.append(queue.get_nowait())
            finished = batch[-1] is None
            chunk: list[dict[str, Any]] = []
            size = 0
            for result in batch:
                if result is None:
                    continue
                stored = result.to_json()
                length = len(orjson.dumps(stored))
                if chunk and size + length > _FLUSH_BYTES:  # under the gateway's body limit
                    await client.api("POST", path, {"cases": chunk})
                    chunk, size = [], 0
                chunk.append(stored)
                size += length
            if chunk:
                await client.api("POST", path, {"cases": chunk})

    async def run_one(
        case: Case, model: str | None, repetition: int, call: Call | None, error: str | None
    ) -> None:
        result = CaseResult(case.id, planner.model_for(model), repetition, None, {})
        try:
            output: CaseOutput | None = None
            if call is None:
                result.error = error
            elif call.cache_key is not None and call.cache_key in cache:
                hit = cache[call.cache_key]
                output = CaseOutput(hit["output"] or "")
                result.cached, result.latency_ms = True, hit["latency_ms"]
            elif call.function is not None:
                counting = _CostCountingClient(client)
                started = asyncio.get_running_loop().time()
                value = call.function(case.input, counting)
                if inspect.isawaitable(value):
                    value = await value
                result.latency_ms = (asyncio.get_running_loop().time() - started) * 1000
                result.cost_usd = counting.cost_usd
                output = (
                    value if isinstance(value, CaseOutput) else CaseOutput(_as_text(value), value)
                )
            else:
                assert call.body is not None
                answer = await client.chat_completion(call.body)
                output = CaseOutput(answer.text, answer.raw)
                result.cost_usd, result.latency_ms = answer.cost_usd, answer.latency_ms
            if call is not None:
                result.cache_key = call.cache_key
            if output is not None:
                result.output = output.text[:MAX_OUTPUT_CHARS]
                result.scores = await score_output(scorers, case, output, client)
        except (
            GatewayCallError,
            OSError,
            TimeoutError,
            ValueError,
            TypeError,
            LLMPlaneError,
        ) as exc:
            result.error = str(exc) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a pipeline's own bug fails its case
            result.error = f"{type(exc).__name__}: {exc}"
        if result.error is not None:
            result.scores = _failed_scores(scorers, result.error)
        if not result.cached:
            state.spent_usd += result.cost_usd
        state.results.append(result)
        queue.put_nowait(result)
        if progress is not None:
            progress.advance(result)

    writer = asyncio.create_task(store())
    semaphore = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def guarded(item: tuple[Case, str | None, int, Call | None, str | None]) -> None:
        try:
            await run_one(*item)
        finally:
            semaphore.release()

    try:
        for item in items:
            await semaphore.acquire()
            if max_cost_usd is not None and state.spent_usd >= max_cost_usd:
                semaphore.release()
                state.capped = True
                break
            task = asyncio.create_task(guarded(item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        queue.put_nowait(None)
        await writer
    return state
