"""Latency of the output detectors on long texts: ``python bench/guardrails_output.py``.

The eval sets' answers are a few sentences; this measures system_prompt_leak with a
1,000-word system prompt against 1,000-word answers (one quoting 200 of its words), the
first check of a prompt (its index is built) and the later ones (cached), and
json_schema on a 200-item structured output. Prints p50/p99 per check in µs.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable

from llmplane.guardrails.base import CheckContext
from llmplane.guardrails.output import JsonSchemaDetector, SystemPromptLeakDetector

RUNS = 500


def percentiles(samples: list[int]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered) / 1000:8.1f} µs   p99 {p99 / 1000:8.1f} µs"


def row(label: str, samples: list[int]) -> None:
    print(f"  {label:<32}{percentiles(samples)}")


def timed(check: Callable[[], object], runs: int = RUNS) -> list[int]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter_ns()
        check()
        samples.append(time.perf_counter_ns() - began)
    return samples


def main() -> None:
    rng = random.Random(6)
    vocabulary = [f"w{n}" for n in range(2000)]
    words = [rng.choice(vocabulary) for _ in range(1000)]
    prompt = " ".join(words)
    benign = " ".join(rng.choice(vocabulary) for _ in range(1000))
    leaking = " ".join([*words[300:500], *(rng.choice(vocabulary) for _ in range(800))])
    detector = SystemPromptLeakDetector()
    context = CheckContext(source="output", system_prompt=prompt)
    assert detector.check(leaking, context).flagged and not detector.check(benign, context).flagged

    def first_check() -> object:
        fresh = f"{prompt} {rng.random()}"  # a prompt never seen: the index is built
        return detector.check(benign, CheckContext(source="output", system_prompt=fresh))

    print("system_prompt_leak, 1,000-word prompt and answer")
    row("benign answer, prompt cached", timed(lambda: detector.check(benign, context)))
    row("quoting answer, prompt cached", timed(lambda: detector.check(leaking, context)))
    row("benign answer, new prompt", timed(first_check, 200))

    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["id", "name", "price"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "price": {"type": "number", "minimum": 0},
            },
        },
    }
    document = json.dumps([{"id": n, "name": f"item {n}", "price": n * 1.5} for n in range(200)])
    fixed = JsonSchemaDetector(schema)
    from_request = JsonSchemaDetector()
    request = CheckContext(source="output", json_schema=schema)
    print("json_schema, 200-item array of objects")
    row("schema option", timed(lambda: fixed.check(document)))
    row("schema from the request", timed(lambda: from_request.check(document, request)))


if __name__ == "__main__":
    main()
