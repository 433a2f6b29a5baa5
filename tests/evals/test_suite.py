"""Suite files and datasets: what loads, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmplane.evals.dataset import load_dataset
from llmplane.evals.harness import build_scorers
from llmplane.evals.suite import SuiteError, load_suite

GOOD = {
    "name": "s",
    "dataset": "cases.jsonl",
    "target": {"prompt": {"name": "support-reply", "label": "staging"}, "models": ["a", "b"]},
    "scorers": [{"name": "exact", "scorer": "exact", "threshold": 0.5}],
    "thresholds": {"exact": {"pass_rate": 0.9}},
}


def _write(tmp: Path, data: object) -> Path:
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_suite_loads_with_its_defaults_and_dataset_next_to_it(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    assert suite.repetitions == 1 and suite.concurrency == 8 and suite.max_cost_usd is None
    assert suite.dataset_path() == tmp_path / "cases.jsonl"
    assert suite.target.model_list() == ["a", "b"]
    assert suite.target.describe() == "prompt:support-reply#staging"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scorers": []}, "scorers: List should have at least 1 item"),
        ({"thresholds": {"typo": {"mean": 1}}}, "thresholds names 'typo'"),
        ({"thresholds": {"exact": {"median": 1}}}, "thresholds.exact.median.[key]"),
        ({"repetitions": 0}, "repetitions: Input should be greater than or equal to 1"),
        ({"target": {"model": "m"}}, "target: Value error, give exactly one of"),
        ({"target": {"python": "nocolon"}}, "'python' must be 'module:function'"),
        ({"target": {"prompt": {"name": "p", "label": "x", "version": 2}}}, "target.prompt"),
        ({"target": {"messages": [{"role": "bot", "content": "x"}], "model": "m"}}, "role"),
        (
            {"target": {"messages": [{"role": "user", "content": "{{ bad"}], "model": "m"}},
            "target.messages[0]",
        ),
        ({"concurency": 3}, "concurency: Extra inputs are not permitted"),
    ],
)
def test_errors_name_the_file_and_the_key(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_jsonl_and_csv_datasets_give_cases_with_stable_ids(tmp_path: Path) -> None:
    jsonl = tmp_path / "cases.jsonl"
    jsonl.write_text(
        '{"input": {"q": "hi"}, "expected": "x"}\n\n{"id": 7, "q": "yo", "metadata": {"t": 1}}\n'
    )
    first, second = load_dataset(jsonl)[0]
    assert first.input == {"q": "hi"} and first.expected == "x" and first.id.startswith("c-")
    assert second.id == "7" and second.input == {"q": "yo"} and second.metadata == {"t": 1}
    assert load_dataset(jsonl)[0][0].id == first.id  # the same input, the same id
    csv = tmp_path / "cases.csv"
    csv.write_text("id,q,expected,meta.source\na,hi,x,web\n,yo,,faq\n")
    rows, _ = load_dataset(csv)
    assert (
        rows[0].id == "a" and rows[0].input == {"q": "hi"} and rows[0].metadata == {"source": "web"}
    )
    assert rows[1].id.startswith("c-") and rows[1].expected == ""


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.jsonl", "{not json}\n", "a.jsonl:1: not JSON"),
        ("b.jsonl", '{"id": 1, "q": 1}\n{"id": 1, "q": 2}\n', "case id '1' appears twice"),
        ("c.jsonl", "", "the dataset has no cases"),
        ("d.txt", "x", "a dataset is a .jsonl or .csv file"),
        ("e.jsonl", '{"input": {}, "extra": 1}\n', "e.jsonl:1: unknown field 'extra'"),
    ],
)
def test_bad_datasets_are_refused_with_the_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SuiteError, match=message):
        load_dataset(path)


def test_scorers_are_built_when_the_suite_loads_and_errors_name_the_scorer(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    assert list(build_scorers(suite)) == ["exact"]
    bad = {
        **GOOD,
        "scorers": [
            GOOD["scorers"][0],
            {"name": "n", "scorer": "numeric", "options": {"abs_tol": -1}},
        ],
    }
    with pytest.raises(SuiteError, match=r"scorers\.1\.scorer: scorer 'numeric': option 'abs_tol'"):
        build_scorers(load_suite(_write(tmp_path, bad)))
    unknown = {**GOOD, "scorers": [{"name": "n", "scorer": "exakt"}], "thresholds": {}}
    with pytest.raises(SuiteError, match=r"scorers\.0\.scorer: unknown scorer 'exakt'"):
        build_scorers(load_suite(_write(tmp_path, unknown)))
