"""Output filters: the system prompt quoted in an answer, and structured outputs checked
against their JSON Schema."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from llmplane.guardrails.base import CheckContext
from llmplane.guardrails.output import JsonSchemaDetector, SystemPromptLeakDetector
from llmplane.guardrails.registry import build_detector

SYSTEM_PROMPT = (
    "You are Aria, the support assistant of Northwind Bank. You are a helpful assistant. "
    "Never reveal the internal fee schedule to anyone. Escalate any fraud report to the "
    "duty officer using code RED-7 and never tell the customer about the code. Answer in "
    "at most three sentences and always be polite."
)
LEAK = CheckContext(source="output", system_prompt=SYSTEM_PROMPT)


def quoted(text: str, detector: SystemPromptLeakDetector | None = None) -> list[str]:
    verdict = (detector or SystemPromptLeakDetector()).check(text, LEAK)
    return [text[f.start : f.end] for f in verdict.findings] if verdict.flagged else []


def test_a_verbatim_quote_is_flagged_with_its_span_and_share() -> None:
    answer = (
        "My instructions say: Escalate any fraud report to the duty officer using code RED-7 "
        "and never tell the customer about the code. Anything else?"
    )
    verdict = build_detector("system_prompt_leak").check(answer, LEAK)
    assert verdict.flagged and verdict.types == ["system_prompt_leak.quote"]
    (finding,) = verdict.findings
    assert answer[finding.start : finding.end] == (
        "Escalate any fraud report to the duty officer using code RED-7 "
        "and never tell the customer about the code"
    )
    assert 0.3 < verdict.score < 0.5  # about a third of the prompt's words
    assert "RED-7" not in verdict.reason and "fraud" not in verdict.reason


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # case, spacing and punctuation changed
        (
            "sure!! you are ARIA -- the support-assistant of\n\nnorthwind bank... YOU ARE A "
            "HELPFUL ASSISTANT!",
            "you are ARIA -- the support-assistant of\n\nnorthwind bank... YOU ARE A "
            "HELPFUL ASSISTANT",
        ),
        # full-width letters (NFKC) in upper case
        (
            "I'll Ｎｅｖｅｒ ＲＥＶＥＡＬ the internal fee schedule to ANYONE.",
            "Ｎｅｖｅｒ ＲＥＶＥＡＬ the internal fee schedule to ANYONE",
        ),
        # a word changed, a word inserted, a word dropped (a lone last word is not seen)
        (
            "I must escalate every fraud report to the duty officer with code RED-7 and "
            "never ever tell the customer about code.",
            "fraud report to the duty officer with code RED-7 and never ever tell the customer "
            "about",
        ),
    ],
)
def test_a_lightly_altered_quote_is_still_flagged(answer: str, expected: str) -> None:
    assert quoted(answer) == [expected]


def test_a_short_common_phrase_of_the_prompt_is_no_leak() -> None:
    # "you are a helpful assistant" and "the support assistant of northwind bank" are in
    # the prompt, but shorter than min_words (8).
    assert quoted("Hi! I am the support assistant of Northwind Bank. How can I help?") == []
    assert quoted("As you are a helpful assistant, please summarise this.") == []
    assert quoted("Your fee schedule is on our website.") == []


def test_min_words_and_threshold_tune_it() -> None:
    answer = "I answer in at most three sentences and always be polite, promise."
    assert quoted(answer) != []  # nine words of the prompt
    assert quoted(answer, SystemPromptLeakDetector(min_words=12)) == []
    strict = SystemPromptLeakDetector(threshold=0.5)  # flag only half the prompt or more
    verdict = strict.check(answer, LEAK)
    assert not verdict.flagged and 0 < verdict.score < 0.5 and verdict.findings
    assert strict.check(SYSTEM_PROMPT.upper(), LEAK).score == 1.0


def test_a_short_system_prompt_leaks_when_all_of_it_is_quoted() -> None:
    context = CheckContext(source="output", system_prompt="The password is swordfish, always.")
    detector = SystemPromptLeakDetector()
    assert detector.check("Well: the password is SWORDFISH always!", context).flagged
    assert not detector.check("The password is secret.", context).flagged
    assert not detector.check("anything", CheckContext(source="output")).flagged  # no prompt


def test_many_prompts_and_threads_share_one_detector() -> None:
    detector = SystemPromptLeakDetector(cache_size=2)
    prompts = [f"{SYSTEM_PROMPT} Tenant number {n} owns this assistant." for n in range(5)]
    failures: list[str] = []

    def work(prompt: str) -> None:
        for _ in range(50):
            verdict = detector.check(f"ok: {prompt}", CheckContext("output", system_prompt=prompt))
            if verdict.score != 1.0:
                failures.append(prompt)

    threads = [threading.Thread(target=work, args=(prompt,)) for prompt in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.parametrize("options", [{"min_words": 2}, {"threshold": 1.5}, {"cache_size": 0}])
def test_bad_leak_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_detector("system_prompt_leak", options)


SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


def test_an_answer_matching_the_schema_passes() -> None:
    detector = build_detector("json_schema", {"schema": SCHEMA})
    assert not detector.check('{"name": "Jane", "age": 41, "tags": ["a"]}').flagged


def test_a_mismatch_names_the_path_and_rule_but_not_the_value() -> None:
    detector = build_detector("json_schema", {"schema": SCHEMA})
    verdict = detector.check('{"name": "Jane", "age": "jane@example.com", "tags": ["a", 7]}')
    assert verdict.flagged
    assert verdict.types == ["json_schema.type"]
    assert "$.age (type)" in verdict.reason and "$.tags[1] (type)" in verdict.reason
    assert "jane@example.com" not in verdict.reason and "7" not in verdict.reason
    missing = detector.check('{"name": "Jane", "extra": 1}')
    assert set(missing.types) == {"json_schema.required", "json_schema.additionalProperties"}


@pytest.mark.parametrize("answer", ['```json\n{"name": "J", "age": 1}\n```', '{"name": ', ""])
def test_an_answer_that_is_not_json_is_flagged(answer: str) -> None:
    verdict = build_detector("json_schema", {"schema": SCHEMA}).check(answer)
    assert verdict.flagged and verdict.types == ["json_schema.not_json"]
    assert "not JSON (line 1" in verdict.reason


def test_the_request_schema_comes_from_the_context() -> None:
    detector = build_detector("json_schema")
    assert not detector.check("plain text, no schema asked").flagged
    context = CheckContext(source="output", json_schema={"type": "array", "maxItems": 2})
    assert not detector.check("[1, 2]", context).flagged
    assert detector.check("[1, 2, 3]", context).types == ["json_schema.maxItems"]
    # The platform's schema wins over the request's.
    fixed = build_detector("json_schema", {"schema": {"type": "object"}})
    assert fixed.check("[1, 2]", context).types == ["json_schema.type"]


def test_schemas_are_checked_and_remote_refs_never_fetched() -> None:
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        build_detector("json_schema", {"schema": {"type": "no-such-type"}})
    # An unreachable address: a fetch would hang or fail differently; none is attempted.
    remote = CheckContext(source="output", json_schema={"$ref": "http://192.0.2.1/s.json"})
    with pytest.raises(ValueError, match="remote references are not fetched"):
        build_detector("json_schema").check("{}", remote)
    local = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    detector = JsonSchemaDetector(local)
    assert not detector.check("[1, 2]").flagged and detector.check('[1, "x"]').flagged
