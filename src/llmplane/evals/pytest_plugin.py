"""Eval suites as pytest tests (the ``llmplane-evals`` pytest11 entry point).

- Suite files named ``eval_*.yaml`` or ``*.eval.yaml`` (``.yml`` too) are collected: one
  test per suite, which runs it through the gateway exactly as ``llmplane eval run`` does
  (stored, compared with its baseline) and fails when a threshold is missed or a metric
  regressed significantly, listing which.
- The ``llmplane_eval`` fixture runs a suite given in Python (a :class:`Suite`, or the
  path of a YAML) and returns its :class:`~llmplane.evals.harness.EvalReport`; with
  ``check=True`` (the default) a failed verdict fails the test the same way.

Options: ``--llmplane-url`` and ``--llmplane-key`` (else ``LLMPLANE_URL`` and
``LLMPLANE_API_KEY``), ``--llmplane-baseline`` (as ``eval run --baseline``: a run id,
``auto``, ``prompt:NAME@V`` or ``none``; default ``auto``), ``--llmplane-no-cache``.

Loading this plugin imports only pytest: the harness is imported when a suite file is
collected or the fixture is used, so test runs without suites pay nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from llmplane.evals.harness import EvalReport
    from llmplane.evals.suite import Suite

__all__ = ["EvalFailed", "llmplane_eval"]

_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmplane", "llmplane eval suites")
    group.addoption("--llmplane-url", help="the gateway (default: LLMPLANE_URL)")
    group.addoption("--llmplane-key", help="the key runs use (default: LLMPLANE_API_KEY)")
    group.addoption(
        "--llmplane-baseline",
        default="auto",
        help="a run id, auto (blessed, else last on main), prompt:NAME@V or none",
    )
    group.addoption(
        "--llmplane-no-cache",
        action="store_true",
        default=False,
        help="call the models even for outputs the team has stored",
    )


def is_suite_file(path: Path) -> bool:
    """``eval_*.yaml`` or ``*.eval.yaml`` (``.yml`` too)."""
    name = path.name
    if not name.endswith(_SUFFIXES):
        return False
    stem = name.rsplit(".", 1)[0]
    return stem.startswith("eval_") or stem.endswith(".eval")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if is_suite_file(file_path):
        return SuiteFile.from_parent(parent, path=file_path)
    return None


class EvalFailed(AssertionError):
    """A suite's verdict failed; the message lists the thresholds missed and regressions."""


class SuiteFile(pytest.File):
    """A suite YAML: one test, the suite."""

    def collect(self) -> Iterator[pytest.Item]:
        from llmplane.evals.suite import SuiteError, load_suite

        try:
            suite = load_suite(self.path)
        except SuiteError as exc:
            raise self.CollectError(str(exc)) from None
        yield SuiteItem.from_parent(self, name=suite.name, suite=suite)


class SuiteItem(pytest.Item):
    """One suite run through the gateway."""

    def __init__(self, *, suite: Suite, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite = suite

    def runtest(self) -> None:
        report = _run(self.config, self.suite, self.path.parent)
        self.user_properties.append(("llmplane_run", report.run["id"]))
        _check(report)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        from llmplane.evals.suite import SuiteError

        if isinstance(excinfo.value, EvalFailed | SuiteError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"eval suite {self.name}"


def _connection(config: pytest.Config) -> tuple[str, str]:
    url = config.getoption("llmplane_url") or os.environ.get("LLMPLANE_URL")
    key = config.getoption("llmplane_key") or os.environ.get("LLMPLANE_API_KEY")
    if not url or not key:
        raise pytest.UsageError(
            "eval suites need the gateway: --llmplane-url and --llmplane-key "
            "(or LLMPLANE_URL and LLMPLANE_API_KEY)"
        )
    return url.rstrip("/"), key


def _run(
    config: pytest.Config, suite: Suite, folder: Path, baseline: str | None = None
) -> EvalReport:
    from llmplane.evals.client import HarnessClient
    from llmplane.evals.harness import EvalOptions, GitInfo, run_eval

    url, key = _connection(config)
    chosen = baseline or config.getoption("llmplane_baseline")
    options = EvalOptions(
        baseline=None if chosen == "none" else chosen,
        use_cache=not config.getoption("llmplane_no_cache"),
        git=GitInfo.detect(folder),
    )

    async def run() -> EvalReport:
        async with HarnessClient(url, key) as client:
            return await run_eval(suite, client, options)

    report: EvalReport = _run_coroutine(run)
    return report


def _run_coroutine(make: Callable[[], Any]) -> Any:
    """Run a coroutine to its end, also from a test that is itself running an event loop
    (pytest-asyncio, anyio): then on a thread of its own."""
    import asyncio
    import threading

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="llmplane-eval")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def failure_text(report: EvalReport) -> str:
    """What failed: the verdict's reasons (thresholds missed, regressions, the cost cap),
    the metrics, and the newly failing cases of a regression."""
    summary = report.summary
    lines = [f"eval suite '{report.suite.name}' failed (run {report.run['id']}):"]
    lines += [f"  - {reason}" for reason in summary["verdict"]["reasons"]]
    lines.append("metrics:")
    for name, values in summary["metrics"].items():
        lines.append(f"  {name}: mean {values['mean']:.3f}, pass_rate {values['pass_rate']:.3f}")
    comparison = summary.get("comparison") or {}
    for name in comparison.get("regressions", []):
        deltas = comparison["metrics"][name]
        lines.append(
            f"  {name} against {comparison['baseline_run_id']}: mean {deltas['mean_baseline']:.3f}"
            f" -> {deltas['mean']:.3f} (95% CI of the change {deltas['ci'][0]:+.3f} to "
            f"{deltas['ci'][1]:+.3f}), McNemar p={deltas['mcnemar_p']:.3g}"
        )
    failing = comparison.get("newly_failing") or []
    if failing:
        shown = ", ".join(f"{f['case_id']} ({f['scorer']})" for f in failing[:20])
        more = f" and {len(failing) - 20} more" if len(failing) > 20 else ""
        lines.append(f"newly failing: {shown}{more}")
    return "\n".join(lines)


def _check(report: EvalReport) -> None:
    if not report.passed:
        raise EvalFailed(failure_text(report))


@pytest.fixture
def llmplane_eval(request: pytest.FixtureRequest) -> Callable[..., EvalReport]:
    """``llmplane_eval(suite, *, baseline=None, check=True)``: run a :class:`Suite` (or a
    suite YAML's path) through the gateway and return its report; a failed verdict fails
    the test unless ``check=False``."""

    def run(suite: Suite | str | Path, *, baseline: str | None = None, check: bool = True) -> Any:
        from llmplane.evals.suite import load_suite

        if isinstance(suite, str | Path):
            suite = load_suite(Path(suite))
        folder = suite.source.parent if suite.source is not None else request.path.parent
        report = _run(request.config, suite, folder, baseline)
        request.node.user_properties.append(("llmplane_run", report.run["id"]))
        if check:
            _check(report)
        return report

    return run
