"""Latency of the ``pii`` and ``secrets`` detectors per check, at 100, 1,000 and 4,000 tokens.

Usage: ``PYTHONPATH=src .venv/bin/python bench/guardrails_detectors.py [--calls 300] [--ner MODEL]``

For each prompt size (o200k tokens) it times ``check()`` per call and prints p50 and p99
in microseconds, wall clock and the calling thread's CPU time (on a shared machine the
wall p99 is mostly other processes' turns), on three kinds of text:

- ``prose``: English prose with the numbers of ordinary writing (dates, counts, prices,
  a version) and no PII: what most prompts are;
- ``prose + PII``: the same with an e-mail, a phone number, a card, an IBAN and an API
  key spread through it;
- ``technical``: the project's README (code, URLs, ports, config), the worst case for the
  cheap candidate scans.

``--ner MODEL`` adds ``pii`` with ``ner: true`` and that installed spaCy model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from llmplane.gateway.token_counters import counter_for
from llmplane.guardrails.base import Detector
from llmplane.guardrails.pii import PiiDetector, SecretsDetector

README = Path(__file__).resolve().parents[1] / "README.md"
PROSE = [
    "The quarterly planning meeting covered the migration of the billing service to the "
    "new cluster, which the team expects to finish by March 5. ",
    "Engineers raised concerns about latency during the cutover window and asked for a "
    "rollback plan that can be executed in under 15 minutes. ",
    "Product wants the feature flag to stay off until the support team has reviewed the "
    "documentation and the 3 open questions from the pilot customers. ",
    "Last year the service handled about 2.4 million requests a day, with a cost of "
    "$1,250 per month for storage alone. ",
    "Version 4.2 of the client library fixed the retry bug, but two teams still pin the "
    "older release because of a breaking change in the configuration format. ",
    "Please summarise the discussion, list the owners of each action item, and draft a "
    "short note for the leadership update on Friday. ",
]
PII = [
    "Questions go to jane.doe@example.com. ",
    "The on-call phone is +1 212 555 0183. ",
    "Charge the pilot to card 4111 1111 1111 1111. ",
    "Refunds go to IBAN DE89 3704 0044 0532 0130 00. ",
    "The test key is sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56. ",
]


def _cut(text: str, tokens: int) -> str:
    """The longest prefix of ``text`` with at most ``tokens`` o200k tokens."""
    counter = counter_for("openai", "gpt-4o")
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if counter.count(text[:middle]) <= tokens:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def _texts(tokens: int) -> dict[str, str]:
    prose = "".join(PROSE[i % len(PROSE)] for i in range(tokens // 4))
    clean = _cut(prose, tokens)
    sentences = clean.split(". ")
    step = max(1, len(sentences) // (len(PII) + 1))
    for index, item in enumerate(PII):
        sentences.insert(min(len(sentences), (index + 1) * step + index), item.rstrip(". "))
    with_pii = ". ".join(sentences)
    return {
        "prose": clean,
        "prose + PII": with_pii,
        "technical": _cut(README.read_text(encoding="utf-8") * 4, tokens),
    }


def _p50_p99(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.99)] / 1e3


def _measure(detector: Detector, text: str, calls: int) -> tuple[float, float, float, float, int]:
    """Wall p50, p99 and CPU p50, p99 per check in µs, and the findings."""
    detector.check(text)  # warm: lazy tables, caches
    wall, cpu = [], []
    for _ in range(calls):
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        verdict = detector.check(text)
        cpu.append(time.thread_time_ns() - started_cpu)
        wall.append(time.perf_counter_ns() - started)
    return *_p50_p99(wall), *_p50_p99(cpu), len(verdict.findings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--ner", metavar="MODEL", help="also time pii with this spaCy model")
    args = parser.parse_args()
    started = time.perf_counter()
    detectors: dict[str, Detector] = {"pii": PiiDetector(), "secrets": SecretsDetector()}
    print(f"(detectors built in {time.perf_counter() - started:.2f} s)")
    if args.ner:
        detectors["pii, ner"] = PiiDetector(ner=True, ner_model=args.ner)
    print("| tokens | chars | text | detector | findings | p50 µs | p99 µs", end="")
    print(" | CPU p50 µs | CPU p99 µs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tokens in (100, 1_000, 4_000):
        for kind, text in _texts(tokens).items():
            for name, detector in detectors.items():
                calls = args.calls if "ner" not in name else max(10, args.calls // 20)
                p50, p99, cpu50, cpu99, found = _measure(detector, text, calls)
                print(
                    f"| {tokens:,} | {len(text):,} | {kind} | {name} | {found} "
                    f"| {p50:,.0f} | {p99:,.0f} | {cpu50:,.0f} | {cpu99:,.0f} |"
                )


if __name__ == "__main__":
    main()
