"""The paired statistics: a regression on a subset of cases is significant, noise of the
same size is not (at about the nominal false-alarm rate), flaky cases are reported, pass^k
matches hand-computed values and the bootstrap interval covers the true change."""

from __future__ import annotations

import random

import pytest

from llmplane.evals.stats import (
    flaky,
    mcnemar,
    paired_bootstrap,
    pass_at_k,
    pass_hat_k,
    summarize_repetitions,
)

CASES = 100


def suite_pass_probabilities(rng: random.Random) -> list[float]:
    """A suite's cases: 60 % reliable, 20 % hard, 20 % flaky (a coin toss)."""
    return [rng.choice([0.95, 0.95, 0.95, 0.1, 0.5]) for _ in range(CASES)]


def run(probabilities: list[float], rng: random.Random) -> list[bool]:
    return [rng.random() < p for p in probabilities]


def test_a_regression_on_a_subset_of_cases_is_significant() -> None:
    rng = random.Random(7)
    baseline = [i < 80 for i in range(CASES)]  # 80 of 100 pass
    candidate = [passed and not 10 <= i < 25 for i, passed in enumerate(baseline)]  # 15 break
    # …amid noise: 4 other cases flip each way.
    for i in rng.sample(range(25, 80), 4):
        candidate[i] = False
    for i in rng.sample(range(80, 100), 4):
        candidate[i] = True
    test = mcnemar(baseline, candidate)
    assert (test.b, test.c) == (19, 4)
    assert test.exact and test.p_value < 0.01 and test.significant and test.regressed
    assert not test.improved
    delta = paired_bootstrap([float(p) for p in baseline], [float(p) for p in candidate])
    assert (delta.mean_baseline, delta.mean_candidate) == (0.80, 0.65)
    assert delta.delta == pytest.approx(-0.15)
    assert delta.high < 0 and delta.significant and delta.regressed
    # The other way round, it is an improvement.
    assert mcnemar(candidate, baseline).improved
    assert paired_bootstrap([float(p) for p in candidate], [float(p) for p in baseline]).improved


def test_a_regression_is_significant_over_repetitions_too() -> None:
    rng = random.Random(11)
    probabilities = suite_pass_probabilities(rng)
    reliable = [i for i, p in enumerate(probabilities) if p > 0.9]
    broken = set(reliable[:15])  # 15 cases that used to pass now mostly fail
    regressed = [0.05 if i in broken else p for i, p in enumerate(probabilities)]
    baseline_rates, candidate_rates = [], []
    for p, q in zip(probabilities, regressed, strict=True):
        baseline_rates.append(sum(run([p] * 3, rng)) / 3)
        candidate_rates.append(sum(run([q] * 3, rng)) / 3)
    delta = paired_bootstrap(baseline_rates, candidate_rates)
    assert delta.regressed


def test_noise_of_the_same_size_is_rarely_significant() -> None:
    """200 suites whose candidate is the baseline run again: cases flip both ways at
    random (about 20 of 100 per comparison, more than the 15 of the regression above)."""
    trials = 200
    mcnemar_alarms = bootstrap_alarms = flipped = 0
    for seed in range(trials):
        rng = random.Random(seed)
        probabilities = suite_pass_probabilities(rng)
        baseline, candidate = run(probabilities, rng), run(probabilities, rng)
        flipped += sum(b != c for b, c in zip(baseline, candidate, strict=True))
        mcnemar_alarms += mcnemar(baseline, candidate).significant
        scores = [float(b) for b in baseline], [float(c) for c in candidate]
        bootstrap_alarms += paired_bootstrap(*scores, resamples=2000, seed=seed).significant
    assert flipped / trials > 15
    # Measured: McNemar 4.0 %, bootstrap 5.0 % (nominal 5 %; over 200 trials ± 1.5 %).
    assert mcnemar_alarms / trials <= 0.08
    assert bootstrap_alarms / trials <= 0.10


def test_noise_across_repetitions_is_not_significant() -> None:
    rng = random.Random(5)
    probabilities = suite_pass_probabilities(rng)
    baseline_rates = [sum(run([p] * 5, rng)) / 5 for p in probabilities]
    candidate_rates = [sum(run([p] * 5, rng)) / 5 for p in probabilities]
    delta = paired_bootstrap(baseline_rates, candidate_rates)
    assert delta.low < 0 < delta.high and not delta.significant


def test_flaky_cases_are_reported() -> None:
    assert flaky([True, False, True])
    assert not flaky([True, True, True]) and not flaky([False, False]) and not flaky([True])
    summary = summarize_repetitions([1.0, 0.0, 0.5], [True, False, True])
    assert summary.repetitions == 3 and summary.mean_value == 0.5
    assert summary.pass_rate == pytest.approx(2 / 3) and summary.flaky and not summary.all_passed
    steady = summarize_repetitions([1.0, 1.0], [True, True])
    assert steady.all_passed and not steady.flaky
    # In a simulated suite run 5 times, the coin-toss cases are the flaky ones.
    rng = random.Random(3)
    probabilities = suite_pass_probabilities(rng)
    reported = [flaky(run([p] * 5, rng)) for p in probabilities]
    coin_tosses = [r for r, p in zip(reported, probabilities, strict=True) if p == 0.5]
    assert sum(coin_tosses) / len(coin_tosses) >= 0.85  # 1 - 2/32 expected
    with pytest.raises(ValueError, match="2 scores but 1 pass/fail"):
        summarize_repetitions([1.0, 0.0], [True])


RUNS = [
    [True, True, True, True],
    [True, True, False, False],
    [False, False, False, False],
    [True, False, True, True],
]


def test_pass_hat_k_matches_hand_computed_values() -> None:
    assert pass_hat_k(RUNS, 1) == pytest.approx((1 + 0.5 + 0 + 0.75) / 4)
    # C(passes, 2) / C(4, 2): 6/6, 1/6, 0/6, 3/6
    assert pass_hat_k(RUNS, 2) == pytest.approx((1 + 1 / 6 + 0 + 3 / 6) / 4)
    assert pass_hat_k(RUNS, 4) == 0.25
    # pass@2: 1 - C(fails, 2) / C(4, 2): 1, 5/6, 0, 1
    assert pass_at_k(RUNS, 2) == pytest.approx((1 + 5 / 6 + 0 + 1) / 4)
    with pytest.raises(ValueError, match="k is 5 but a case has only 4 repetitions"):
        pass_hat_k(RUNS, 5)
    with pytest.raises(ValueError, match="k must be at least 1"):
        pass_hat_k(RUNS, 0)


def test_mcnemar_p_values() -> None:
    def pairs(b: int, c: int, same: int = 50) -> tuple[list[bool], list[bool]]:
        before = [True] * b + [False] * c + [True] * same
        after = [False] * b + [True] * c + [True] * same
        return before, after

    exact = mcnemar(*pairs(10, 3))
    assert exact.exact and (exact.b, exact.c) == (10, 3)
    assert exact.p_value == pytest.approx(2 * (1 + 13 + 78 + 286) / 2**13)  # 0.092
    assert not exact.significant
    large = mcnemar(*pairs(40, 20))
    assert not large.exact
    assert large.p_value == pytest.approx(0.014171, abs=1e-5)  # chi2 (19²/60 = 6.02), 1 df
    assert large.significant and large.regressed
    assert mcnemar(*pairs(0, 0)).p_value == 1.0
    assert mcnemar(*pairs(5, 5)).p_value == 1.0


def test_bootstrap_is_deterministic_and_checks_its_input() -> None:
    rng = random.Random(1)
    baseline = [rng.random() for _ in range(50)]
    candidate = [b + rng.uniform(-0.2, 0.25) for b in baseline]
    assert paired_bootstrap(baseline, candidate, seed=4) == paired_bootstrap(
        baseline, candidate, seed=4
    )
    assert paired_bootstrap(baseline, candidate, seed=4) != paired_bootstrap(
        baseline, candidate, seed=5
    )
    same = paired_bootstrap(baseline, baseline)
    assert (same.delta, same.low, same.high, same.significant) == (0.0, 0.0, 0.0, False)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="no pairs"):
        mcnemar([], [])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=95)


@pytest.mark.parametrize("kind", ["continuous", "pass/fail"])
def test_bootstrap_interval_covers_the_true_change_at_about_the_nominal_rate(kind: str) -> None:
    """200 simulated comparisons of 100 cases with a known true mean change; the 95 %
    interval should hold it about 95 % of the time (percentile intervals run a little
    narrow at this size)."""
    trials, covered = 200, 0
    for seed in range(trials):
        rng = random.Random(1000 + seed)
        if kind == "continuous":
            true_delta = 0.05
            baseline = [rng.random() for _ in range(CASES)]
            candidate = [b + true_delta + rng.uniform(-0.3, 0.3) for b in baseline]
        else:  # 15 % of cases break, 5 % get fixed, the rest unchanged
            true_delta = -0.10
            baseline = [1.0] * CASES
            candidate = [1.0] * CASES
            for i in range(CASES):
                change = rng.random()
                if change < 0.15:
                    candidate[i] = 0.0
                elif change < 0.20:
                    baseline[i] = 0.0
        delta = paired_bootstrap(baseline, candidate, resamples=1000, seed=seed)
        covered += delta.low <= true_delta <= delta.high
    # Measured: continuous 94.5 %, pass/fail 95.5 %.
    assert 0.89 <= covered / trials <= 0.99
