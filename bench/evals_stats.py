"""Speed of the eval harness's paired bootstrap: ``python bench/evals_stats.py``.

Times ``paired_bootstrap`` (10,000 resamples, the default) on 100 and 1,000 paired cases
in three shapes: pass/fail scores where 20 % of cases changed (the usual comparison:
most cases score the same in both runs, and unchanged cases cost nothing), judge scores
on a 1–5 scale where half changed, and continuous scores (embedding similarity) where
every case changed (the slowest: every pick is drawn). Prints the best and median of 5.
"""

from __future__ import annotations

import random
import statistics
import time

from llmplane.evals.stats import mcnemar, paired_bootstrap

REPEATS = 5


def shapes(n: int, rng: random.Random) -> dict[str, tuple[list[float], list[float]]]:
    passed = [float(rng.random() < 0.8) for _ in range(n)]
    flipped = [1.0 - p if rng.random() < 0.2 else p for p in passed]
    judged = [float(rng.randint(1, 5)) for _ in range(n)]
    rejudged = [float(rng.randint(1, 5)) if rng.random() < 0.5 else j for j in judged]
    cosines = [rng.random() for _ in range(n)]
    recosines = [rng.random() for _ in range(n)]
    return {
        "pass/fail, 20 % changed": (passed, flipped),
        "1-5 judge, 50 % changed": (judged, rejudged),
        "continuous, all changed": (cosines, recosines),
    }


def main() -> None:
    rng = random.Random(0)
    print(f"paired_bootstrap, 10,000 resamples (best / median of {REPEATS})")
    for n in (100, 1000):
        for label, (baseline, candidate) in shapes(n, rng).items():
            samples = []
            for _ in range(REPEATS):
                began = time.perf_counter()
                paired_bootstrap(baseline, candidate)
                samples.append(time.perf_counter() - began)
            best, median = min(samples) * 1000, statistics.median(samples) * 1000
            print(f"  {n:>5} cases, {label:<26} {best:7.1f} ms / {median:7.1f} ms")
    passed = [rng.random() < 0.8 for _ in range(1000)]
    began = time.perf_counter()
    mcnemar(passed, [not p if rng.random() < 0.2 else p for p in passed])
    print(f"mcnemar, 1,000 cases: {(time.perf_counter() - began) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
