"""``llmplane guardrails eval``: how well each detector works on labelled sets, measured
in this process with the library (no gateway needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from llmplane.cli.admin import print_json, print_table
from llmplane.guardrails.evaluate import (
    DatasetError,
    Example,
    Pairing,
    Result,
    evaluate,
    load_examples,
    pairings,
    scored_types,
)
from llmplane.guardrails.registry import PluginError, build_detector, load_plugins

_PROGRESS_EVERY_S = 2.0


class BadInput(click.ClickException):
    """Input the user must fix: exits 2 with the message."""

    exit_code = 2


def _fail(message: str) -> NoReturn:
    raise BadInput(message)


@click.group()
def guardrails() -> None:
    """Guardrail detectors: measure them on labelled sets."""


def _options(given: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    options: dict[str, dict[str, Any]] = {}
    for item in given:
        name, equals, raw = item.partition("=")
        detector, dot, key = name.partition(".")
        if not equals or not dot or not detector or not key:
            _fail(f"--option {item!r}: write it as DETECTOR.KEY=VALUE (blocklist.terms='[\"x\"]')")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a plain string needs no JSON quotes
        options.setdefault(detector, {})[key] = value
    return options


def _num(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _print_result(result: dict[str, Any]) -> None:
    latency = result["latency_us"]
    errors = f", {result['errors']} errors" if result["errors"] else ""
    click.echo(f"{result['detector']} on {result['set']} ({result['examples']} examples{errors})")
    click.echo(
        f"  precision {_num(result['precision'])}  recall {_num(result['recall'])}  "
        f"F1 {_num(result['f1'])}  false positive rate {_num(result['false_positive_rate'])}  "
        f"(TP {result['tp']} FP {result['fp']} FN {result['fn']} TN {result['tn']})"
    )
    click.echo(
        f"  latency per check: p50 {_num(latency['p50'], '.1f')} µs  "
        f"p99 {_num(latency['p99'], '.1f')} µs  ({latency['checks']} checks)"
    )
    if result["types"]:
        click.echo("")
        print_table(
            [
                [
                    f"  {name}",
                    str(t["gold"]),
                    str(t["found"]),
                    str(t["false_positives"]),
                    _num(t["precision"]),
                    _num(t["recall"]),
                ]
                for name, t in result["types"].items()
            ],
            ["  TYPE", "GOLD", "FOUND", "FP", "PRECISION", "RECALL"],
        )
    if result["tags"]:
        click.echo("")
        print_table(
            [
                [
                    f"  {name}",
                    str(t["examples"]),
                    str(t["tp"]),
                    str(t["fp"]),
                    str(t["fn"]),
                    str(t["tn"]),
                    _num(t["precision"]),
                    _num(t["recall"]),
                    _num(t["false_positive_rate"]),
                ]
                for name, t in result["tags"].items()
            ],
            ["  TAG", "N", "TP", "FP", "FN", "TN", "PRECISION", "RECALL", "FPR"],
        )
    click.echo("")


def _gates(
    results: list[dict[str, Any]], min_recall: float | None, min_precision: float | None
) -> list[dict[str, Any]]:
    missed = []
    for result in results:
        for metric, minimum in (("recall", min_recall), ("precision", min_precision)):
            if minimum is None:
                continue
            value = result[metric]
            if value is None or value < minimum:
                missed.append(
                    {
                        "detector": result["detector"],
                        "set": result["set"],
                        "metric": metric,
                        "value": value,
                        "minimum": minimum,
                    }
                )
    return missed


@guardrails.command("eval")
@click.option("--detector", "detectors", multiple=True, help="Detector to evaluate (repeatable).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Labelled JSONL set (repeatable); default: the packaged sets of the detectors.",
)
@click.option(
    "--option", "options", multiple=True, help="Detector option NAME.KEY=VALUE (VALUE as JSON)."
)
@click.option("--plugin", "plugins", multiple=True, help="Python module registering detectors.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Checks per example, for steadier latency.",
)
@click.option(
    "--min-recall",
    type=click.FloatRange(0, 1),
    default=None,
    help="Exit 1 when a detector's recall is below this.",
)
@click.option(
    "--min-precision",
    type=click.FloatRange(0, 1),
    default=None,
    help="Exit 1 when a detector's precision is below this.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def eval_command(
    detectors: tuple[str, ...],
    sets: tuple[Path, ...],
    options: tuple[str, ...],
    plugins: tuple[str, ...],
    repeat: int,
    min_recall: float | None,
    min_precision: float | None,
    as_json: bool,
) -> None:
    """Precision, recall, F1, false-positive rate, per type and per tag, and the latency
    of one check (p50/p99), of each detector on labelled sets. Exits 1 when a detector
    misses --min-recall or --min-precision, 2 on bad input."""
    try:
        load_plugins(plugins)
    except PluginError as exc:
        _fail(str(exc))
    try:
        pairs, missing = pairings(detectors, sets)
    except DatasetError as exc:
        _fail(str(exc))
    for note in missing:
        click.echo(note, err=True)
    by_detector = _options(options)
    for name in by_detector:
        if name not in {pair.detector for pair in pairs}:
            _fail(f"--option names detector {name!r}, which is not evaluated")
    examples: dict[Path, list[Example]] = {}
    built = {}
    skipped: set[str] = set()
    for pair in pairs:
        try:
            if pair.path not in examples:
                examples[pair.path] = load_examples(pair.path)
        except DatasetError as exc:
            _fail(str(exc))
        if pair.detector not in built and pair.detector not in skipped:
            try:
                built[pair.detector] = build_detector(pair.detector, by_detector.get(pair.detector))
            except ImportError as exc:
                if detectors or sets:
                    _fail(f"detector {pair.detector!r} cannot be built: {exc}")
                # A run of every packaged set measures what this installation has.
                click.echo(f"{pair.detector} is not evaluated: {exc}", err=True)
                skipped.add(pair.detector)
            except (ValueError, TypeError, AttributeError) as exc:
                _fail(f"detector {pair.detector!r} cannot be built: {exc}")
    pairs = [pair for pair in pairs if pair.detector in built]
    if not pairs:
        _fail("nothing to evaluate: no detector of the packaged sets could be built")
    results = [_run(built[pair.detector], pair, examples[pair.path], repeat) for pair in pairs]
    documents = [result.as_dict() for result in results]
    missed = _gates(documents, min_recall, min_precision)
    if as_json:
        print_json({"results": documents, "gates_missed": missed, "passed": not missed})
    else:
        for document in documents:
            _print_result(document)
    for gate in missed:
        click.echo(
            f"{gate['detector']} on {gate['set']}: {gate['metric']} {_num(gate['value'])} "
            f"is below {gate['minimum']}",
            err=True,
        )
    if missed:
        raise click.exceptions.Exit(1)


def _run(detector: Any, pair: Pairing, examples: list[Example], repeat: int) -> Result:
    began = last = time.monotonic()
    label = f"{pair.detector} on {pair.path.name}"

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_EVERY_S:
            last = now
            click.echo(f"{label}: {done}/{total}", err=True)

    result = evaluate(
        detector,
        examples,
        set_name=str(pair.path),
        types=scored_types(detector, pair.types),
        repeat=repeat,
        progress=progress,
    )
    result.detector = pair.detector  # the registry's name, which a plugin's class may not share
    if time.monotonic() - began >= _PROGRESS_EVERY_S:
        click.echo(f"{label}: done", err=True)
    return result
