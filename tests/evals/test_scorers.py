"""The built-in scorers: what passes, what fails and what the explanation says; options
refused with the scorer's and the option's name; judge and embedding scorers against a
real gateway process (the judge's model answered by the upstream simulator)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from llmplane.evals.gateway_client import GatewayCallError, GatewayClient
from llmplane.evals.scorers import build_scorer, scorer_names
from llmplane.evals.scorers.judge import UnreadableVerdict, parse_verdict
from llmplane.evals.scoring import Case, CaseOutput, Score, Scorer
from llmplane.testing.upstream import UpstreamSimulator
from tests.helpers import ADMIN_KEY, GatewayProcess, simulator_model


class NoModels:
    """The context of scorers that must not call a model: any call fails the test."""

    async def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any) -> str:
        raise AssertionError("this scorer should call no model")

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        raise AssertionError("this scorer should call no model")


async def score(
    name: str, output: str, expected: Any = None, context: Any = None, **options: Any
) -> Score:
    scorer = build_scorer(name, options)
    case = Case("case-1", {"question": "What is the capital of France?"}, expected)
    return await scorer.score(case, CaseOutput(output), context or NoModels())


def test_names_and_protocol() -> None:
    assert scorer_names() == sorted(
        [
            "exact",
            "normalized",
            "contains",
            "regex",
            "json_valid",
            "json_schema",
            "numeric",
            "embedding_similarity",
            "llm_judge",
            "python",
        ]
    )
    scorer = build_scorer("exact", None)
    assert isinstance(scorer, Scorer)
    assert scorer.name == "exact"


async def test_exact() -> None:
    hit = await score("exact", "Paris", "Paris")
    assert (hit.value, hit.passed) == (1.0, True)
    miss = await score("exact", "Paris.", "Paris")
    assert (miss.value, miss.passed) == (0.0, False)
    assert "'Paris.'" in miss.explanation and "'Paris'" in miss.explanation
    assert (await score("exact", " Paris\n", "Paris", strip=True)).passed
    assert (await score("exact", "Lyon", ["Paris", "Lyon"])).passed
    assert (await score("exact", "42", 42)).passed
    nothing = await score("exact", "Paris", None)
    assert not nothing.passed
    assert "case-1" in nothing.explanation and "no 'expected'" in nothing.explanation


async def test_normalized() -> None:
    assert (await score("normalized", "  PARIS!! ", "paris")).passed
    assert (await score("normalized", "Ｐａｒｉｓ", "Paris")).passed  # full-width, NFKC
    assert (await score("normalized", "new   york,\tcity", "New York City")).passed
    without = await score("normalized", "The Eiffel Tower", "eiffel tower")
    assert not without.passed
    assert "'the eiffel tower'" in without.explanation  # shows what was compared
    assert (
        await score("normalized", "The Eiffel Tower", "eiffel tower", remove_articles=True)
    ).passed
    strict = await score("normalized", "PARIS", "paris", ignore_case=False)
    assert not strict.passed


async def test_contains_all_any_none() -> None:
    both = await score("contains", "Refunds take 5 days; contact support.", ["refund", "support"])
    assert not both.passed  # case-sensitive by default: "Refunds" does not contain "refund"
    assert (
        both.value == 0.5 and "lacks 1 of 2" in both.explanation and "'refund'" in both.explanation
    )
    insensitive = await score(
        "contains",
        "Refunds take 5 days; contact support.",
        ["refund", "support"],
        case_sensitive=False,
    )
    assert (insensitive.value, insensitive.passed) == (1.0, True)
    anyone = await score(
        "contains", "Call us", values=["email", "call"], mode="any", case_sensitive=False
    )
    assert anyone.passed and "'call'" in anyone.explanation
    forbidden = await score(
        "contains", "Try CompetitorCo instead", values=["CompetitorCo"], mode="none"
    )
    assert not forbidden.passed and "forbidden 'CompetitorCo'" in forbidden.explanation
    assert (await score("contains", "All good", values="CompetitorCo", mode="none")).passed


async def test_regex() -> None:
    by_option = await score("regex", "Order #A-1234 shipped", pattern=r"#[A-Z]-\d{4}")
    assert by_option.passed and "'#A-1234'" in by_option.explanation
    assert not (await score("regex", "Order shipped", pattern=r"#[A-Z]-\d{4}")).passed
    assert (await score("regex", "2024-01-31", r"\d{4}-\d{2}-\d{2}", full_match=True)).passed
    partial = await score("regex", "on 2024-01-31", r"\d{4}-\d{2}-\d{2}", full_match=True)
    assert not partial.passed and "does not fully match" in partial.explanation
    assert (await score("regex", "YES", pattern="^yes$", flags=["ignorecase"])).passed
    bad_case = await score("regex", "x", "(unclosed")
    assert not bad_case.passed and "invalid pattern" in bad_case.explanation


async def test_json_valid() -> None:
    good = await score("json_valid", '{"a": [1, 2]}')
    assert good.passed and "object" in good.explanation
    bad = await score("json_valid", "{'a': 1}")
    assert not bad.passed and "not JSON" in bad.explanation
    fenced = '```json\n{"a": 1}\n```'
    assert not (await score("json_valid", fenced)).passed
    assert (await score("json_valid", fenced, allow_fences=True)).passed


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


async def test_json_schema() -> None:
    assert (await score("json_schema", '{"name": "Ada", "age": 36}', schema=SCHEMA)).passed
    wrong = await score("json_schema", '{"name": "Ada", "age": -1}', schema=SCHEMA)
    assert not wrong.passed and "$.age" in wrong.explanation
    assert wrong.details is not None and wrong.details["errors"][0]["path"] == "$.age"
    missing = await score("json_schema", '{"age": 3}', schema=SCHEMA)
    assert "'name' is a required property" in missing.explanation
    per_case = await score("json_schema", '{"name": "Ada", "age": 36}', SCHEMA)
    assert per_case.passed  # the case's expected value as the schema
    not_json = await score("json_schema", "Ada, 36", schema=SCHEMA)
    assert not not_json.passed and "not JSON" in not_json.explanation
    remote = {"$ref": "https://example.com/schema.json"}
    refused = await score("json_schema", "{}", schema=remote)
    assert not refused.passed and "not fetched" in refused.explanation


async def test_numeric() -> None:
    assert (await score("numeric", "The total is 1,234.50 dollars", 1234.5)).passed
    off = await score("numeric", "The total is 1,240", 1234.5)
    assert not off.passed and "off 1234.5 by 5.5" in off.explanation
    assert (await score("numeric", "The total is 1,240", 1234.5, rel_tol=0.01)).passed
    assert (await score("numeric", "about 3.1", "3.14159", abs_tol=0.05)).passed
    path = await score(
        "numeric",
        '{"result": {"items": [{"price": "12.5 EUR"}]}}',
        12.5,
        path="$.result.items[0].price",
    )
    assert path.passed and path.details is not None and path.details["parsed"] == 12.5
    nothing = await score("numeric", '{"result": {}}', 1, path="result.total")
    assert not nothing.passed and "no key 'total'" in nothing.explanation
    assert not (await score("numeric", "no digits here", 3)).passed
    assert (await score("numeric", "-2e-3", expected=-0.002)).passed


async def test_python_scorers() -> None:
    module = "tests.evals.scorer_functions"
    polite = await score("python", "Please wait", function=f"{module}:says_please")
    assert polite.passed and "returned True" in polite.explanation
    ratio = await score(
        "python", "one two three four five", function=f"{module}:length_ratio", args={"target": 10}
    )
    assert ratio.value == 0.5 and ratio.passed
    strict = await score(
        "python",
        "one two three four five",
        function=f"{module}:length_ratio",
        args={"target": 10},
        threshold=0.6,
    )
    assert not strict.passed and "below 0.6" in strict.explanation
    cited = await score("python", "As shown [1].", function=f"{module}:cites_source")
    assert cited == Score(1.0, True, "cites [1]")
    with pytest.raises(TypeError, match="returned str"):
        await score("python", "x", function=f"{module}:returns_text")


@pytest.mark.parametrize(
    ("name", "options", "error", "message"),
    [
        ("fuzzy", {}, ValueError, "unknown scorer 'fuzzy'; the scorers are: contains"),
        (
            "exact",
            {"stirp": True},
            TypeError,
            "scorer 'exact': unknown option(s) 'stirp' (options: strip)",
        ),
        ("exact", ["strip"], TypeError, "scorer 'exact': options must be a mapping"),
        (
            "normalized",
            {"ignore_case": "yes"},
            TypeError,
            "scorer 'normalized': option 'ignore_case' must be true or false",
        ),
        (
            "contains",
            {"mode": "some"},
            ValueError,
            "scorer 'contains': option 'mode' must be one of 'all', 'any', 'none'",
        ),
        (
            "contains",
            {"values": [1, 2]},
            TypeError,
            "option 'values' must be a string or a list of strings",
        ),
        (
            "regex",
            {"pattern": "(open"},
            ValueError,
            "scorer 'regex': option 'pattern' is not a valid regular expression",
        ),
        ("regex", {"flags": ["LOUD"]}, ValueError, "option 'flags' must be one of"),
        (
            "json_schema",
            {"schema": {"type": "strin"}},
            ValueError,
            "scorer 'json_schema': option 'schema' is not a valid JSON Schema",
        ),
        ("numeric", {"abs_tol": -1}, ValueError, "scorer 'numeric': option 'abs_tol' must be >= 0"),
        ("numeric", {"path": "a..b"}, ValueError, "option 'path' is not a JSON path"),
        (
            "embedding_similarity",
            {"threshold": "high"},
            TypeError,
            "option 'threshold' must be a number",
        ),
        (
            "llm_judge",
            {"model": "judge"},
            TypeError,
            "scorer 'llm_judge': missing required option(s) 'rubric'",
        ),
        (
            "llm_judge",
            {"model": "j", "rubric": "r", "scale": [5, 1]},
            ValueError,
            "option 'scale' must be [low, high]",
        ),
        (
            "llm_judge",
            {"model": "j", "rubric": "r", "samples": 0},
            ValueError,
            "option 'samples' must be between 1 and 15",
        ),
        (
            "llm_judge",
            {"model": "j", "rubric": "r", "response_format": "xml"},
            ValueError,
            "option 'response_format'",
        ),
        (
            "python",
            {"function": "os.system"},
            ValueError,
            "scorer 'python': option 'function' must look like 'package.module:function'",
        ),
        (
            "python",
            {"function": "no_such_module_x:f"},
            ValueError,
            "cannot import 'no_such_module_x'",
        ),
        (
            "python",
            {"function": "tests.evals.scorer_functions:missing"},
            ValueError,
            "has no 'missing'",
        ),
        (
            "python",
            {"function": "tests.evals.scorer_functions:NOT_CALLABLE"},
            TypeError,
            "is not callable",
        ),
    ],
)
def test_bad_options_name_the_scorer_and_option(
    name: str, options: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        build_scorer(name, options)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "score", "reasoning"),
    [
        ('{"reasoning": "Polite and correct.", "score": 4}', 4, "Polite and correct."),
        ('```json\n{"score": 5, "reasoning": "ok"}\n```', 5, "ok"),
        ('Here is my verdict:\n{"Reasoning": "meh", "Score": "3/5"}\nThanks.', 3, "meh"),
        ('{"note": 1} then {"score": 2.5, "reason": "half"}', 2.5, "half"),
        ("Reasoning: too vague.\nScore: 2", 2, "Reasoning: too vague.\nScore: 2"),
    ],
)
def test_judge_answers_are_read_leniently(raw: str, score: float, reasoning: str) -> None:
    verdict = parse_verdict(raw, 1, 5)
    assert (verdict.score, verdict.reasoning, verdict.raw) == (score, reasoning, raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("I think it is good.", 'no JSON object with a "score"'),
        ('{"reasoning": "great", "score": 9}', "the score 9 is outside the scale 1 to 5"),
        ('{"reasoning": "great", "score": true}', 'no JSON object with a "score"'),
    ],
)
def test_unreadable_judge_answers_say_why(raw: str, why: str) -> None:
    with pytest.raises(UnreadableVerdict, match=why):
        parse_verdict(raw, 1, 5)


# -- against a real gateway --------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream_simulator_session: UpstreamSimulator
) -> Iterator[GatewayProcess]:
    """A gateway with ``judge`` (the simulator, which answers like the mock model) and the
    built-in ``mock-embed``."""
    models = [
        simulator_model("judge", upstream_simulator_session.url),
        {
            "name": "mock-embed",
            "deployments": [{"provider": "mock"}],
            "price": {"input_per_mtok": 0.02, "output_per_mtok": 0.0},
        },
    ]
    with GatewayProcess(tmp_path_factory.mktemp("evals-gateway"), models) as process:
        yield process


def ledger_tags(gateway: GatewayProcess, test: str, expected_rows: int) -> list[dict[str, str]]:
    """The tags of this test's ledger rows, once the gateway has written them."""
    deadline = time.monotonic() + 10
    while True:
        rows = [
            json.loads(tags)
            for (tags,) in gateway.sql("SELECT tags FROM usage_ledger WHERE tags IS NOT NULL")
            if json.loads(tags).get("test") == test
        ]
        if len(rows) >= expected_rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def judge_options(**more: Any) -> dict[str, Any]:
    return {"model": "judge", "rubric": "The answer names the capital correctly.", **more}


async def test_judge_with_structured_output_stores_its_reasoning(
    gateway: GatewayProcess, upstream_simulator: UpstreamSimulator
) -> None:
    # The simulator answers a json_schema response format with the schema's smallest
    # instance: {"reasoning": "mock", "score": <minimum>}: 1 on a 1-5 scale, a fail.
    case = Case("capital", {"question": "What is the capital of France?"}, "Paris")
    scorer = build_scorer("llm_judge", judge_options(response_format="json_schema"))
    async with GatewayClient(
        gateway.base_url, ADMIN_KEY, tags={"purpose": "eval-judge", "test": "structured"}
    ) as client:
        verdict = await scorer.score(case, CaseOutput("It is Lyon."), client)
    assert (verdict.value, verdict.passed) == (0.0, False)
    assert verdict.explanation == "judge judge: 1 on 1–5 (fail at 0.75): mock"
    assert verdict.details is not None
    assert verdict.details["reasoning"] == "mock"
    assert json.loads(verdict.details["raw"]) == {"reasoning": "mock", "score": 1}
    sent = upstream_simulator.requests[-1]["body"]
    assert sent["temperature"] == 0
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["score"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
    }
    prompt = sent["messages"][1]["content"]
    assert "The answer names the capital correctly." in prompt
    assert "What is the capital of France?" in prompt and "Paris" in prompt
    assert "<answer>\nIt is Lyon.\n</answer>" in prompt
    assert ledger_tags(gateway, "structured", 1) == [
        {"purpose": "eval-judge", "test": "structured"}
    ]


async def test_binary_judge_passes_and_samples_report_agreement(
    gateway: GatewayProcess, upstream_simulator: UpstreamSimulator
) -> None:
    # On a 0-1 scale the simulator's smallest integer instance is 1 (it never answers 0).
    case = Case("capital", {"question": "What is the capital of France?"}, "Paris")
    scorer = build_scorer(
        "llm_judge", judge_options(response_format="json_schema", scale=[0, 1], samples=3)
    )
    async with GatewayClient(gateway.base_url, ADMIN_KEY) as client:
        verdict = await scorer.score(case, CaseOutput("Paris."), client)
    assert (verdict.value, verdict.passed) == (1.0, True)
    assert (
        verdict.explanation
        == "judge judge: median 1 on 0–1 of 3 samples (1, 1, 1); 3 of 3 agree on pass: mock"
    )
    assert verdict.details is not None
    assert verdict.details["samples"] == [1, 1, 1] and verdict.details["agreement"] == 1.0
    assert len(upstream_simulator.requests) == 3


async def test_unreadable_judge_is_asked_again_then_explained(
    gateway: GatewayProcess, upstream_simulator: UpstreamSimulator
) -> None:
    # In plain text the mock echoes the prompt: no score in it, twice.
    case = Case("capital", {"question": "What is the capital of France?"}, "Paris")
    scorer = build_scorer("llm_judge", judge_options())
    tags = {"purpose": "eval-judge", "test": "unreadable"}
    async with GatewayClient(gateway.base_url, ADMIN_KEY, tags=tags) as client:
        verdict = await scorer.score(case, CaseOutput("Paris."), client)
    assert (verdict.value, verdict.passed) == (0.0, False)
    assert verdict.explanation == (
        "the judge's answer could not be read, even when asked again: "
        'no JSON object with a "score"'
    )
    assert verdict.details is not None and verdict.details["unreadable"] is True
    assert [r.startswith("This is a mock reply to:") for r in verdict.details["raw"]] == [
        True,
        True,
    ]
    first, second = (r["body"]["messages"] for r in upstream_simulator.requests)
    assert second[:2] == first
    assert second[2]["role"] == "assistant" and second[2]["content"] == verdict.details["raw"][0]
    assert 'could not be read (no JSON object with a "score")' in second[3]["content"]
    assert ledger_tags(gateway, "unreadable", 2) == [tags, tags]


async def test_embedding_similarity(gateway: GatewayProcess) -> None:
    case = Case("capital", {"question": "capital of France?"}, "The capital of France is Paris")
    scorer = build_scorer("embedding_similarity", {"model": "mock-embed", "threshold": 0.8})
    async with GatewayClient(gateway.base_url, ADMIN_KEY) as client:
        same = await scorer.score(case, CaseOutput("The capital of France is Paris"), client)
        close = await scorer.score(case, CaseOutput("Paris is the capital of France"), client)
        far = await scorer.score(case, CaseOutput("Bananas grow on tall plants"), client)
        several = await scorer.score(
            Case("c", {}, ["Bananas are yellow", "The capital of France is Paris"]),
            CaseOutput("The capital of France is Paris"),
            client,
        )
    assert same.passed and same.value == pytest.approx(1.0)
    assert close.passed  # the mock's vectors are bags of words: same words, same vector
    assert not far.passed and far.value < 0.3
    assert (
        far.explanation.startswith("cosine similarity ")
        and "is below 0.8 (mock-embed)" in far.explanation
    )
    assert several.passed and "closest of 2 expected answers" in several.explanation


async def test_python_scorer_calls_models_through_the_context(gateway: GatewayProcess) -> None:
    scorer = build_scorer("python", {"function": "tests.evals.scorer_functions:judged_by_model"})
    async with GatewayClient(gateway.base_url, ADMIN_KEY) as client:
        verdict = await scorer.score(Case("c", {}), CaseOutput("hello"), client)
    assert verdict.passed


async def test_gateway_client_complete_reports_cost_and_errors(gateway: GatewayProcess) -> None:
    body = {"model": "judge", "messages": [{"role": "user", "content": "hi"}]}
    async with GatewayClient(gateway.url, ADMIN_KEY) as client:
        reply, cost, latency = await client.complete(body)
        assert reply["choices"][0]["message"]["content"] == "This is a mock reply to: hi"
        assert cost is not None and cost > 0 and latency > 0
        with pytest.raises(GatewayCallError) as unknown:
            await client.chat("no-such-model", [{"role": "user", "content": "hi"}])
    assert unknown.value.status == 404 and "no-such-model" in str(unknown.value)
    async with GatewayClient(gateway.base_url, "sk-lp-not-a-key") as client:
        with pytest.raises(GatewayCallError) as refused:
            await client.chat("judge", [{"role": "user", "content": "hi"}])
    assert refused.value.status == 401 and "sk-lp-not-a-key" not in str(refused.value)
    async with GatewayClient("http://127.0.0.1:9", ADMIN_KEY) as client:
        with pytest.raises(GatewayCallError, match="could not reach the gateway"):
            await client.embed("mock-embed", ["x"])


def test_gateway_client_refuses_tags_the_header_cannot_carry() -> None:
    with pytest.raises(ValueError, match="must not hold"):
        GatewayClient("http://127.0.0.1:9", "k", tags={"suite": "a,b"})
    client = GatewayClient("http://127.0.0.1:9/v1/", "secret-key")
    assert client.base_url == "http://127.0.0.1:9"
    assert "secret-key" not in repr(client)
