"""CI output of a run: JUnit XML (one testcase per case × scorer, one per threshold, one
per compared metric) and a Markdown summary fit for a pull-request comment."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from llmplane.evals.harness import EvalReport

_MAX_CASES_LISTED = 20


def junit_xml(report: EvalReport) -> str:
    """The run as a JUnit XML document."""
    suite_name = report.suite.name
    root = ET.Element("testsuites", name=f"llmplane eval {suite_name}")
    cases = ET.SubElement(root, "testsuite", name=suite_name)
    failures = tests = 0
    for result in sorted(report.results, key=lambda r: (r.case_id, r.model, r.repetition)):
        for scorer, score in result.scores.items():
            tests += 1
            name = f"{result.case_id} [{scorer}]"
            if result.model:
                name += f" {result.model}"
            if report.run["repetitions"] > 1:
                name += f" #{result.repetition}"
            case = ET.SubElement(cases, "testcase", classname=f"{suite_name}.{scorer}", name=name)
            if result.latency_ms is not None:
                case.set("time", f"{result.latency_ms / 1000:.3f}")
            if not score["passed"]:
                failures += 1
                kind = "error" if result.error is not None else "failure"
                failed = ET.SubElement(case, kind, message=str(score["explanation"])[:500])
                failed.text = f"output: {result.output!r}"[:2000]
    cases.set("tests", str(tests))
    cases.set("failures", str(failures))
    checks = ET.SubElement(root, "testsuite", name=f"{suite_name} thresholds")
    for check in report.summary["thresholds"]:
        case = ET.SubElement(
            checks, "testcase", classname=f"{suite_name}.thresholds", name=check["metric"]
        )
        if not check["passed"]:
            ET.SubElement(
                case,
                "failure",
                message=f"{check['metric']} = {check['value']:.4f} < {check['min']}",
            )
    comparison = report.summary.get("comparison")
    if comparison is not None:
        for scorer, metric in comparison["metrics"].items():
            case = ET.SubElement(
                checks, "testcase", classname=f"{suite_name}.regression", name=scorer
            )
            if metric.get("regression"):
                ET.SubElement(
                    case,
                    "failure",
                    message=(
                        f"{scorer} regressed against {comparison['baseline_run_id']}: "
                        f"delta {metric['delta']:+.4f}, CI [{metric['ci'][0]:+.4f}, "
                        f"{metric['ci'][1]:+.4f}], {metric['newly_failing']} newly failing"
                    ),
                )
    if report.run["status"] == "capped":
        case = ET.SubElement(checks, "testcase", classname=f"{suite_name}.run", name="cost cap")
        ET.SubElement(case, "failure", message="the cost cap stopped the run")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: EvalReport) -> str:
    """A summary for a pull-request comment."""
    summary, run = report.summary, report.run
    verdict = "✅ passed" if report.passed else "❌ failed"
    lines = [
        f"### Eval `{report.suite.name}`: {verdict}",
        "",
        f"Run `{run['id']}` ({run['status']}) · target `{run['target']}`"
        + (f" · prompt `{run['prompt']}`" if run["prompt"] else "")
        + (f" · dataset `{run['dataset']}`" if run.get("dataset") else "")
        + f" · {summary['cases']} results, {summary['errors']} errors, "
        f"{summary['cached']} cached · ${summary['spent_usd']:.4f}",
        "",
    ]
    comparison = summary.get("comparison")
    if comparison is not None:
        lines.append(
            f"Baseline: run `{comparison['baseline_run_id']}`"
            + (
                f" (prompt `{comparison['baseline_prompt']}`)"
                if comparison["baseline_prompt"]
                else ""
            )
        )
    else:
        lines.append("Baseline: none (no blessed run and no finished run on main yet)")
    lines += [
        "",
        "| metric | value | baseline | delta | 95% CI | verdict |",
        "|---|---|---|---|---|---|",
    ]
    limits = {t["metric"]: t for t in summary["thresholds"]}
    for scorer, values in summary["metrics"].items():
        compared = (comparison or {}).get("metrics", {}).get(scorer, {})
        for metric in ("mean", "pass_rate"):
            value = values[metric]
            base = delta = ci = "–"
            if compared.get("paired"):
                if metric == "mean":
                    base = f"{compared['mean_baseline']:.3f}"
                    delta = f"{compared['delta']:+.3f}"
                    ci = f"[{compared['ci'][0]:+.3f}, {compared['ci'][1]:+.3f}]"
                else:
                    base = _pct(compared["pass_rate_baseline"])
                    delta = (
                        f"{(compared['pass_rate'] - compared['pass_rate_baseline']) * 100:+.1f} pt"
                    )
                    ci = f"McNemar p={compared['mcnemar_p']:.3g}"
            verdicts = []
            limit = limits.get(f"{scorer}.{metric}")
            if limit is not None:
                verdicts.append(("✅" if limit["passed"] else "❌") + f" ≥ {limit['min']}")
            if compared.get("regression"):
                verdicts.append("❌ regression")
            shown = f"{value:.3f}" if metric == "mean" else _pct(value)
            lines.append(
                f"| {scorer} {metric} | {shown} | {base} | {delta} | {ci} | "
                f"{' '.join(verdicts) or '–'} |"
            )
    if comparison is not None and comparison["newly_failing"]:
        lines += ["", f"**Newly failing** ({len(comparison['newly_failing'])}):", ""]
        outputs = {(r.case_id, r.model): r for r in report.results}
        for item in comparison["newly_failing"][:_MAX_CASES_LISTED]:
            result = outputs.get((item["case_id"], item["model"]))
            explanation = ""
            if result is not None and item["scorer"] in result.scores:
                explanation = f": {_cell(result.scores[item['scorer']]['explanation'])[:200]}"
            lines.append(f"- `{item['case_id']}` [{item['scorer']}]{explanation}")
        if len(comparison["newly_failing"]) > _MAX_CASES_LISTED:
            lines.append(f"- … and {len(comparison['newly_failing']) - _MAX_CASES_LISTED} more")
    flaky = summary.get("repetitions", {}).get("flaky", [])
    if flaky:
        lines += ["", f"**Flaky** (repetitions disagree, {len(flaky)}):", ""]
        for item in flaky[:_MAX_CASES_LISTED]:
            passes = "".join("✓" if p else "✗" for p in item["passes"])
            lines.append(f"- `{item['case_id']}` [{item['scorer']}] {passes}")
    pass_k = summary.get("repetitions", {}).get("pass_hat_k", {})
    if pass_k:
        lines += ["", "pass^k: " + ", ".join(f"{k} {v:.3f}" for k, v in pass_k.items())]
    reasons = summary["verdict"]["reasons"]
    if reasons:
        lines += ["", "Failed because:", "", *(f"- {r}" for r in reasons)]
    return "\n".join(lines) + "\n"
