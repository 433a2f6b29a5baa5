"""``llmplane guardrails eval``, run as a user runs it: exact scores, the JSON document, the
CI gates, plugins, and what bad input says."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.guardrails.test_evaluate import FALCON_SET, TERM, write_set
from tests.helpers import cli

FALCON = 'blocklist.terms=["falcon"]'


def test_scores_are_printed_per_detector_type_and_tag(tmp_path: Path) -> None:
    data = write_set(tmp_path / "falcon.jsonl", FALCON_SET)
    out = cli(
        "guardrails", "eval", "--detector", "blocklist", "--set", str(data), "--option", FALCON,
        url="",
    ).stdout  # fmt: skip
    assert f"blocklist on {data} (6 examples)" in out
    assert "precision 0.667  recall 0.667  F1 0.667  false positive rate 0.333" in out
    assert "(TP 2 FP 1 FN 1 TN 2)" in out and "µs" in out
    type_row = next(line.split() for line in out.splitlines() if line.strip().startswith(TERM))
    assert type_row == [TERM, "3", "2", "2", "0.500", "0.667"]
    tag_rows = {line.split()[0]: line.split() for line in out.splitlines() if "hard-benign" in line}
    assert tag_rows["hard-benign"][1:] == ["2", "0", "1", "0", "1", "0.000", "-", "0.500"]


def test_json_document_and_recall_gate(tmp_path: Path) -> None:
    data = write_set(tmp_path / "falcon.jsonl", FALCON_SET)
    args = ["guardrails", "eval", "--detector", "blocklist", "--set", str(data)]
    passed = cli(*args, "--option", FALCON, "--json", "--repeat", "2", "--min-recall", "0.6",
                 url="")  # fmt: skip
    document = json.loads(passed.stdout)
    assert document["passed"] is True and document["gates_missed"] == []
    (result,) = document["results"]
    assert (result["detector"], result["set"], result["examples"]) == ("blocklist", str(data), 6)
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (2, 1, 1, 2)
    assert (result["precision"], result["recall"], result["false_positive_rate"]) == (
        0.6667, 0.6667, 0.3333
    )  # fmt: skip
    assert result["types"][TERM]["false_positives"] == 2
    assert result["tags"]["adversarial"]["fn"] == 1
    assert result["latency_us"]["checks"] == 12 and result["latency_us"]["p99"] > 0

    missed = cli(*args, "--option", FALCON, "--json", "--min-recall", "0.9",
                 "--min-precision", "0.5", url="", check=False)  # fmt: skip
    assert missed.returncode == 1
    assert json.loads(missed.stdout)["gates_missed"] == [
        {"detector": "blocklist", "set": str(data), "metric": "recall", "value": 0.6667,
         "minimum": 0.9}
    ]  # fmt: skip
    assert "recall 0.667 is below 0.9" in missed.stderr


def test_a_plugin_detector_is_loaded_by_module_name(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "acme_guards.py").write_text(
        "from llmplane.guardrails.base import Verdict\n"
        "from llmplane.guardrails.registry import register_detector\n\n"
        "@register_detector('shouting')\n"
        "class Shouting:\n"
        "    name = 'shouting'\n"
        "    def check(self, text, context=None):\n"
        "        return Verdict(self.name, text.isupper())\n",
        encoding="utf-8",
    )
    (plugins / "broken_guards.py").write_text("raise RuntimeError('half-written')\n")
    data = write_set(
        tmp_path / "caps.jsonl",
        [
            {"id": "1", "text": "STOP NOW", "label": True},
            {"id": "2", "text": "stop now", "label": False},
            {"id": "3", "text": "Stop Now", "label": True},
        ],
    )
    env = {"PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")])}
    args = ["guardrails", "eval", "--set", str(data), "--detector", "shouting", "--json"]
    out = cli(*args, "--plugin", "acme_guards", url="", env=env).stdout
    (result,) = json.loads(out)["results"]
    assert (result["detector"], result["tp"], result["fn"], result["tn"]) == ("shouting", 1, 1, 1)

    broken = cli(*args, "--plugin", "broken_guards", url="", env=env, check=False)
    assert broken.returncode == 2
    assert "'broken_guards' could not be imported: RuntimeError: half-written" in broken.stderr
    unknown = cli(*args, url="", env=env, check=False)
    assert unknown.returncode == 2 and "unknown detector 'shouting'" in unknown.stderr


def test_bad_input_exits_2_saying_what_to_fix(tmp_path: Path) -> None:
    good = write_set(tmp_path / "falcon.jsonl", FALCON_SET)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "text": "falcon", "label": true}\n{"id": "2", "text": "x"}\n')
    cases = [
        (["--detector", "blocklist", "--set", str(bad), "--option", FALCON],
         f"{bad}:2: field 'label': missing"),
        (["--set", str(good)], "say which detector it is for (--detector NAME)"),
        (["--detector", "blocklist", "--set", str(good)], "needs terms or patterns"),
        (["--detector", "blocklist", "--set", str(good), "--option", "terms=x"],
         "write it as DETECTOR.KEY=VALUE"),
        (["--detector", "blocklist", "--set", str(good), "--option", FALCON, "--option",
          "pii.entities=[]"], "--option names detector 'pii', which is not evaluated"),
        (["--detector", "blocklist"], "'blocklist' has no packaged set"),
        (["--detector", "blocklist", "--set", str(tmp_path / "none.jsonl"), "--option", FALCON],
         "none.jsonl: cannot be read"),
    ]  # fmt: skip
    for args, message in cases:
        result = cli("guardrails", "eval", *args, url="", check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)


def test_the_packaged_output_sets_are_the_default(tmp_path: Path) -> None:
    out = cli(
        "guardrails", "eval", "--detector", "system_prompt_leak", "--detector", "json_schema",
        "--json", url="",
    ).stdout  # fmt: skip
    results = {r["detector"]: r for r in json.loads(out)["results"]}
    leak, schema = results["system_prompt_leak"], results["json_schema"]
    assert leak["set"].endswith("datasets/system_prompt_leak.jsonl") and leak["examples"] >= 40
    # No answer that merely shares short phrases with its system prompt is flagged.
    assert leak["tags"]["hard-benign"]["fp"] == 0 and leak["tags"]["verbatim"]["fn"] == 0
    assert schema["set"].endswith("datasets/json_schema.jsonl")
    assert (schema["fp"], schema["fn"]) == (0, 0)
