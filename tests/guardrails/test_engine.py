"""The policy engine on its own: detectors run in its threads within the policy's time
budget, thresholds and actions decide, a hung detector holds at most half the pool, and
nothing it reports carries the matched text."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from llmplane.config.guardrails import GuardrailsConfig
from llmplane.errors import GuardrailBlockedError, GuardrailUnavailableError, OutputBlockedError
from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Finding, Verdict
from llmplane.guardrails.engine import GuardrailEngine
from llmplane.guardrails.registry import register_detector
from tests.guardrails import plugin_detectors  # noqa: F401 - registers the test detectors

_threads: list[str] = []


@register_detector("test_scored")
class ScoredDetector:
    """Finds ``needle`` with a fixed score, flagging it only at ``flag_at`` or above; notes
    the thread it runs in."""

    name = "test_scored"

    def __init__(self, score: float = 0.5, flag_at: float = 0.5, needle: str = "needle") -> None:
        self._score, self._flag_at, self._needle = score, flag_at, needle

    def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
        _threads.append(threading.current_thread().name)
        start = text.find(self._needle)
        if start < 0:
            return Verdict.clean(self.name)
        found = (Finding("NEEDLE", start, start + len(self._needle), self._score),)
        return Verdict(self.name, self._score >= self._flag_at, self._score, found, "needle")


def _engine(policy: dict[str, Any], **config: Any) -> GuardrailEngine:
    return GuardrailEngine.from_config(
        GuardrailsConfig.model_validate({"policies": {"p": policy}, "default": "p", **config})
    )


@pytest.fixture
def engines() -> Iterator[list[GuardrailEngine]]:
    made: list[GuardrailEngine] = []
    yield made
    for engine in made:
        engine.close()


def test_detectors_run_in_the_engines_threads_not_the_event_loop(
    engines: list[GuardrailEngine],
) -> None:
    engine = _engine({"input": [{"detector": "test_scored", "action": "flag"}]})
    engines.append(engine)
    _threads.clear()
    asyncio.run(engine.guard("p", None).check_input([("user", "a needle")]))
    assert _threads and all(name.startswith("llmplane-guardrail") for name in _threads)


@pytest.mark.parametrize(
    ("options", "threshold", "blocked"),
    [
        ({"score": 0.5, "flag_at": 0.5}, None, True),  # the detector's own decision
        ({"score": 0.5, "flag_at": 0.5}, 0.8, False),  # a stricter rule threshold
        ({"score": 0.5, "flag_at": 0.9}, 0.3, True),  # a looser one
        ({"score": 0.5, "flag_at": 0.9}, None, False),
    ],
)
def test_a_rule_threshold_overrides_the_detectors_decision(
    engines: list[GuardrailEngine],
    options: dict[str, float],
    threshold: float | None,
    blocked: bool,
) -> None:
    rule: dict[str, Any] = {"detector": "test_scored", "options": options, "action": "block"}
    if threshold is not None:
        rule["threshold"] = threshold
    engine = _engine({"input": [rule]})
    engines.append(engine)
    guard = engine.guard("p", None)
    if blocked:
        with pytest.raises(GuardrailBlockedError):
            asyncio.run(guard.check_input([("user", "a needle")]))
    else:
        assert asyncio.run(guard.check_input([("user", "a needle")])) is None


def test_blocks_name_the_rule_and_types_never_the_text(engines: list[GuardrailEngine]) -> None:
    secret_term = "project falcon"
    engine = _engine(
        {
            "input": [{"detector": "blocklist", "options": {"terms": [secret_term]}}],
            "output": [
                {"detector": "blocklist", "options": {"terms": [secret_term]}, "action": "block"}
            ],
        }
    )
    engines.append(engine)
    guard = engine.guard("p", "team-1")
    assert asyncio.run(guard.check_input([("user", f"about {secret_term}")])) is None  # flag
    with pytest.raises(OutputBlockedError) as caught:
        asyncio.run(guard.check_output([f"sure, {secret_term} is"]))
    assert caught.value.http_status == 403 and caught.value.code == "guardrail_blocked"
    assert "output[0]" in caught.value.message and "blocklist.term[0]" in caught.value.message
    summary = guard.summary()
    assert summary is not None and summary["blocked"] == "output[0]"
    assert secret_term not in str(summary) and secret_term not in caught.value.message
    assert [c.outcome for c in guard.checks] == ["flagged", "flagged"]


def test_rewrites_of_two_rules_apply_together_the_first_winning_overlaps(
    engines: list[GuardrailEngine],
) -> None:
    engine = _engine(
        {
            "input": [
                {"detector": "test_email", "action": "mask"},
                {"detector": "blocklist", "options": {"patterns": [r"\w+@"]}, "action": "redact"},
                {"detector": "blocklist", "options": {"terms": ["hello"]}, "action": "redact"},
            ]
        }
    )
    engines.append(engine)
    texts = asyncio.run(
        engine.guard("p", None).check_input([("user", "hello ann@example.com"), ("user", "x")])
    )
    assert texts == ["<blocklist.term[0]> ***@*******.***", "x"]


def test_a_hung_detector_holds_at_most_half_the_pool_and_comes_back(
    engines: list[GuardrailEngine],
) -> None:
    slow = {"detector": "test_slow", "options": {"seconds": 0.6}}
    engine = _engine({"input": [slow], "timeout_ms": 50, "on_error": "open"}, workers=2)
    engines.append(engine)

    async def check(text: str) -> str:
        guard = engine.guard("p", None)
        await guard.check_input([("user", text)])
        return guard.checks[0].outcome

    started = time.monotonic()
    assert asyncio.run(check("SLOW")) == "timeout"
    assert time.monotonic() - started < 0.5  # the request did not wait for the detector
    assert asyncio.run(check("fast")) == "unavailable"  # one of two threads is stuck
    time.sleep(0.7)
    assert asyncio.run(check("fast")) == "pass"


def test_fail_closed_names_what_failed(engines: list[GuardrailEngine]) -> None:
    engine = _engine({"input": [{"detector": "test_broken"}]})
    engines.append(engine)
    with pytest.raises(GuardrailUnavailableError) as caught:
        asyncio.run(engine.guard("p", None).check_input([("user", "x")]))
    assert caught.value.http_status == 503 and caught.value.code == "guardrail_unavailable"
    assert "input[0] (test_broken) failed" in caught.value.message


def test_a_stream_window_is_never_cut_through_a_finding(engines: list[GuardrailEngine]) -> None:
    engine = _engine({"output": [{"detector": "test_email", "action": "redact"}]})
    engines.append(engine)
    guard = engine.guard("p", None)
    text = "to a@b.example and c@d.example"
    released, held = asyncio.run(guard.check_output_window(text, text.index("d.example")))
    assert released == "to <EMAIL_ADDRESS> and "
    assert held == "c@d.example"


def test_only_the_sources_a_rule_reads_are_checked(engines: list[GuardrailEngine]) -> None:
    engine = _engine({"input": [{"detector": "test_email", "action": "redact"}]})
    engines.append(engine)
    texts = asyncio.run(
        engine.guard("p", None).check_input(
            [("system", "ops@corp.example"), ("user", "me@x.example"), ("tool", "t@y.example")]
        )
    )
    assert texts == ["ops@corp.example", "<EMAIL_ADDRESS>", "<EMAIL_ADDRESS>"]


def test_rules_after_a_hung_one_still_run_once_it_is_known_to_hang(
    engines: list[GuardrailEngine],
) -> None:
    slow = {"detector": "test_slow", "options": {"seconds": 0.5}}
    email = {"detector": "test_email", "action": "redact"}
    engine = _engine({"input": [slow, email], "timeout_ms": 50, "on_error": "open"}, workers=2)
    engines.append(engine)

    async def check(text: str) -> tuple[list[str] | None, list[str]]:
        guard = engine.guard("p", None)
        texts = await guard.check_input([("user", text)])
        return texts, [check.outcome for check in guard.checks]

    # The stage's budget is spent in the hung detector: the rule after it did not run.
    assert asyncio.run(check("SLOW a@b.example")) == (None, ["timeout", "timeout"])
    # While it is stuck it is skipped, and the other rules run as usual.
    assert asyncio.run(check("a@b.example")) == (["<EMAIL_ADDRESS>"], ["unavailable", "flagged"])
