"""The blocklist detector and the detector registry."""

from __future__ import annotations

import pytest

from llmplane.guardrails.base import DEFAULT_CONTEXT, CheckContext, Detector, Verdict
from llmplane.guardrails.blocklist import BlocklistDetector
from llmplane.guardrails.registry import build_detector, detector_names, register_detector


def test_terms_match_whole_words_in_any_case_and_spacing() -> None:
    detector = BlocklistDetector(terms=["project falcon"])
    verdict = detector.check("Status of PROJECT   Falcon, please")
    assert verdict.flagged and verdict.types == ["blocklist.term[0]"]
    assert "falcon" not in verdict.reason.lower()  # the rule is named, not the word
    (finding,) = verdict.findings
    assert "Status of PROJECT   Falcon, please"[finding.start : finding.end] == "PROJECT   Falcon"
    assert not detector.check("project falconry club").flagged


def test_patterns_are_regexes() -> None:
    detector = BlocklistDetector(patterns=[r"\bINT-\d{4}\b"])
    assert detector.check("see INT-2041 and INT-7").types == ["blocklist.pattern[0]"]
    assert detector.check("clean text") == Verdict.clean("blocklist")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "needs terms or patterns"),
        ({"patterns": ["("]}, "not a valid regex"),
        ({"terms": [" "]}, "term 0 is empty"),
    ],
)
def test_bad_options_say_what_is_wrong(options: dict[str, list[str]], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        build_detector("blocklist", options)


def test_the_registry_builds_builtins_and_registered_checks() -> None:
    assert isinstance(build_detector("blocklist", {"terms": ["x"]}), BlocklistDetector)

    @register_detector("test_shouting")
    class Shouting:
        name = "test_shouting"

        def __init__(self, ratio: float = 0.5) -> None:
            self.ratio = ratio

        def check(self, text: str, context: CheckContext = DEFAULT_CONTEXT) -> Verdict:
            upper = sum(c.isupper() for c in text) / max(len(text), 1)
            return Verdict(self.name, upper > self.ratio, upper)

    detector = build_detector("test_shouting", {"ratio": 0.8})
    assert isinstance(detector, Detector)
    assert detector.check("HELLO").flagged and not detector.check("Hello").flagged
    assert "test_shouting" in detector_names()
    with pytest.raises(ValueError, match="built-in"):
        register_detector("pii")(Shouting)
    with pytest.raises(ValueError, match="unknown detector 'nope'"):
        build_detector("nope")


def test_each_match_names_its_own_term_and_longer_terms_win() -> None:
    terms = [f"codename{n}" for n in range(200)] + ["project", "project falcon"]
    detector = BlocklistDetector(terms=terms)
    verdict = detector.check("codename7, Project Falcon, project falconry, codename150")
    assert [f.type for f in verdict.findings] == [
        "blocklist.term[7]",
        "blocklist.term[201]",  # the longer term, not "project" inside it
        "blocklist.term[200]",  # "falconry" is not "falcon": the shorter term matches
        "blocklist.term[150]",
    ]
