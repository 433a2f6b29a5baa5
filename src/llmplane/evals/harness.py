"""One eval run from start to verdict: load the dataset, resolve the target, run (or
resume) through the gateway, score, compare with the baseline and store the summary.

The summary stored on the run (``summary``) is what CI output and promotion gates read:
``metrics``, ``thresholds``, ``comparison`` (with the baseline's id and prompt),
``repetitions`` (pass^k, flaky) and ``verdict`` (``passed`` and the reasons it did not).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlencode

from llmplane.evals.client import HarnessClient
from llmplane.evals.compare import check_thresholds, compare, metrics, repetition_report
from llmplane.evals.dataset import load_dataset, parse_dataset
from llmplane.evals.gateway_client import GatewayCallError
from llmplane.evals.runner import CallPlanner, CaseResult, Progress, execute, load_callable
from llmplane.evals.scoring import Case, Scorer
from llmplane.evals.suite import DatasetRef, Suite, SuiteError


@dataclass(frozen=True, slots=True)
class GitInfo:
    """The commit and branch a run was made on."""

    sha: str | None = None
    branch: str | None = None

    @classmethod
    def detect(cls, folder: Path) -> GitInfo:
        """From CI's environment (GitHub Actions' ``GITHUB_SHA``, ``GITHUB_HEAD_REF`` or
        ``GITHUB_REF_NAME``), else ``git`` in ``folder``; unknown parts stay ``None``."""
        sha = os.environ.get("GITHUB_SHA")
        branch = os.environ.get("GITHUB_HEAD_REF") or os.environ.get("GITHUB_REF_NAME")
        if sha is None:
            sha = _git(folder, "rev-parse", "HEAD")
        if branch is None:
            branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
            branch = None if branch == "HEAD" else branch
        return cls(sha, branch)


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


@dataclass(slots=True)
class EvalOptions:
    """How to run: overrides of the suite and the run's surroundings."""

    # a run id; "auto" (blessed, else last on main); "prompt:NAME@V" (the newest finished
    # run against that prompt version); None: no comparison
    baseline: str | None = "auto"
    prompt_version: int | None = None  # run a registered prompt's target at this version
    use_cache: bool = True
    resume: str | None = None
    concurrency: int | None = None
    repetitions: int | None = None
    max_cost_usd: float | None = None
    git: GitInfo = field(default_factory=GitInfo)
    progress: TextIO | None = None


@dataclass(slots=True)
class EvalReport:
    """A finished run: the stored run, its results and summary."""

    suite: Suite
    run: dict[str, Any]
    results: list[CaseResult]
    summary: dict[str, Any]
    baseline: dict[str, Any] | None

    @property
    def passed(self) -> bool:
        """All thresholds hold, no significant regression, the run completed."""
        return bool(self.summary["verdict"]["passed"])


def build_scorers(suite: Suite) -> dict[str, tuple[Scorer, float | None]]:
    """Each scorer of the suite by its metric name: from the scorer registry
    (:func:`llmplane.evals.scorers.build_scorer`), or ``module:factory`` for a scorer of
    one's own (called with the options)."""
    built: dict[str, tuple[Scorer, float | None]] = {}
    for index, spec in enumerate(suite.scorers):
        try:
            if ":" in spec.scorer:
                scorer = load_callable(spec.scorer)(**spec.options)
            else:
                registry = importlib.import_module("llmplane.evals.scorers")
                scorer = registry.build_scorer(spec.scorer, spec.options)
        except (ImportError, AttributeError, ValueError, TypeError, KeyError) as exc:
            where = suite.source or "suite"
            raise SuiteError(f"{where}: scorers.{index}.scorer: {exc}") from None
        if not isinstance(scorer, Scorer):
            raise SuiteError(f"{suite.source or 'suite'}: scorers.{index}.scorer: not a scorer")
        built[spec.name] = (scorer, spec.threshold)
    return built


async def _baseline(
    client: HarnessClient, suite: Suite, option: str | None, run_id: str
) -> dict[str, Any] | None:
    if option is None:
        return None
    if option == "auto" or option.startswith("prompt:"):
        selector = {"suite": suite.name}
        if option.startswith("prompt:"):
            selector["prompt"] = option.removeprefix("prompt:")
        query = urlencode(selector)
        found = (await client.api("GET", f"/admin/evals/baseline?{query}"))["run"]
        if found is None:
            if option != "auto":
                raise SuiteError(f"suite '{suite.name}' has no finished run against {option[7:]}")
            return None
        if found["id"] == run_id:
            return None
        option = str(found["id"])
    run: dict[str, Any] = await client.api("GET", f"/admin/evals/runs/{quote(option, safe='')}")
    return run


async def load_cases(suite: Suite, client: HarnessClient) -> tuple[list[Case], bytes, str | None]:
    """The suite's cases, the bytes its fingerprint covers and, for a registered dataset,
    the ``name@version`` it resolved to (``latest``: the newest version now)."""
    ref = suite.dataset
    if not isinstance(ref, DatasetRef):
        cases, data = load_dataset(suite.dataset_path())
        return cases, data, None
    query = urlencode({"version": ref.version})
    try:
        found = await client.api("GET", f"/admin/evals/datasets/{quote(ref.name, safe='')}?{query}")
    except GatewayCallError as exc:
        if exc.status == 404:
            raise SuiteError(f"{suite.source or 'suite'}: dataset: {exc}") from None
        raise
    subject = f"{found['name']}@{found['version']}"
    data = str(found["content"]).encode("utf-8")
    return parse_dataset(data, Path(f"{subject}.jsonl")), data, subject


async def _resumed_dataset(client: HarnessClient, suite: Suite, run_id: str) -> Suite:
    """The suite with its registered dataset pinned to the version the resumed run used
    (``latest`` may have moved since)."""
    stored = await client.api("GET", f"/admin/evals/runs/{quote(run_id, safe='')}?cases=false")
    used = stored.get("dataset")
    if not isinstance(used, str) or "@" not in used:
        return suite
    name, _, version = used.rpartition("@")
    if not isinstance(suite.dataset, DatasetRef) or name != suite.dataset.name:
        return suite
    pinned = DatasetRef(name=name, version=int(version))
    return suite.model_copy(update={"dataset": pinned})


async def run_eval(
    suite: Suite,
    client: HarnessClient,
    options: EvalOptions,
    scorers: dict[str, tuple[Scorer, float | None]] | None = None,
) -> EvalReport:
    """Run ``suite`` (or resume ``options.resume``) and store its results and summary."""
    if options.prompt_version is not None:
        if suite.target.prompt is None:
            raise SuiteError(f"{suite.source or 'suite'}: target: --prompt-version needs a prompt")
        pinned = suite.target.prompt.model_copy(
            update={"label": None, "version": options.prompt_version}
        )
        suite = suite.model_copy(
            update={"target": suite.target.model_copy(update={"prompt": pinned})}
        )
    scorers = scorers if scorers is not None else build_scorers(suite)
    if options.resume is not None and isinstance(suite.dataset, DatasetRef):
        suite = await _resumed_dataset(client, suite, options.resume)
    cases, data, dataset_subject = await load_cases(suite, client)
    repetitions = options.repetitions or suite.repetitions
    prompt_version = None
    prompt_subject = None
    target = suite.target
    if target.prompt is not None:
        prompt_version = await client.get_prompt(
            target.prompt.name, target.prompt.label, target.prompt.version
        )
        prompt_subject = f"{prompt_version['name']}@{prompt_version['version']}"
    planner = CallPlanner(suite, prompt_version)
    models = [planner.model_for(m) for m in target.model_list()]
    done: set[tuple[str, str, int]] = set()
    previous: list[CaseResult] = []
    if options.resume is not None:
        stored = await client.api("GET", f"/admin/evals/runs/{quote(options.resume, safe='')}")
        if stored["suite"] != suite.name:
            raise SuiteError(f"run {options.resume} is of suite '{stored['suite']}'")
        if stored["suite_fingerprint"] != suite.fingerprint(data):
            raise SuiteError(
                f"the suite or its dataset changed since run {options.resume}; start a new run"
            )
        previous = [CaseResult.from_json(c) for c in stored["cases"]]
        done = {(r.case_id, r.model, r.repetition) for r in previous}
        run = await client.api("POST", f"/admin/evals/runs/{stored['id']}/resume", {})
    else:
        run = await client.api(
            "POST",
            "/admin/evals/runs",
            {
                "suite": suite.name,
                "suite_fingerprint": suite.fingerprint(data),
                "target": target.describe(),
                "models": models,
                "prompt": prompt_subject,
                "dataset": dataset_subject,
                "repetitions": repetitions,
                "cases_total": len(cases) * len(models) * repetitions,
                "git_sha": options.git.sha,
                "git_branch": options.git.branch,
            },
        )
    run_id = run["id"]
    client.tag_run(suite.name, run_id)
    total = len(cases) * len(models) * repetitions
    progress = Progress(options.progress, total) if options.progress is not None else None
    if progress is not None:
        progress.done = len(done)
    state = None
    try:
        state = await execute(
            suite,
            cases,
            planner,
            scorers,
            client,
            run_id,
            done=done,
            repetitions=repetitions,
            concurrency=options.concurrency or suite.concurrency,
            max_cost_usd=options.max_cost_usd
            if options.max_cost_usd is not None
            else suite.max_cost_usd,
            use_cache=options.use_cache,
            progress=progress,
        )
    except BaseException:
        failed = {"verdict": {"passed": False, "reasons": ["the run failed"]}}
        try:
            await client.api(
                "POST",
                f"/admin/evals/runs/{run_id}/finish",
                {"status": "failed", "summary": failed},
            )
        except Exception:  # noqa: BLE001 - the original error is the one to report
            print("could not mark the run failed", file=sys.stderr)
        raise
    finally:
        if progress is not None:
            progress.close()
    results = previous + state.results
    names = list(scorers)
    table = metrics(results, names)
    thresholds = check_thresholds(suite, table)
    summary: dict[str, Any] = {
        "metrics": table,
        "thresholds": thresholds,
        "cases": len(results),
        "errors": sum(1 for r in results if r.error is not None),
        "cached": sum(1 for r in results if r.cached),
        "spent_usd": sum(r.cost_usd for r in results if not r.cached),
        "repetitions": repetition_report(results, names, repetitions),
    }
    baseline = await _baseline(client, suite, options.baseline, run_id)
    if baseline is not None:
        base_results = [CaseResult.from_json(c) for c in baseline["cases"]]
        summary["comparison"] = {
            "baseline_run_id": baseline["id"],
            "baseline_prompt": baseline["prompt"],
            **compare(results, base_results, names),
        }
    reasons = [
        f"{t['metric']} {t['value']:.3f} < {t['min']}" for t in thresholds if not t["passed"]
    ]
    for name in summary.get("comparison", {}).get("regressions", []):
        reasons.append(f"{name} regressed significantly against {baseline and baseline['id']}")
    status = "capped" if state.capped else "finished"
    if state.capped:
        reasons.append("the cost cap stopped the run before every case ran")
    summary["verdict"] = {"passed": not reasons, "reasons": reasons}
    run = await client.api(
        "POST",
        f"/admin/evals/runs/{run_id}/finish",
        {
            "status": status,
            "summary": summary,
            "baseline_run_id": baseline["id"] if baseline is not None else None,
        },
    )
    return EvalReport(suite, run, results, summary, baseline)
