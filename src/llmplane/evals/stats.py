"""Paired statistics for comparing an eval run with its baseline, in pure Python.

A candidate run (a new prompt or model) and its baseline score the same cases, so each
case is its own control: the tests here look at per-case differences, which removes the
spread between easy and hard cases and leaves the change itself.

- :func:`paired_bootstrap`: the mean score's change with a bootstrap confidence
  interval; *significant* when the interval excludes 0.
- :func:`mcnemar`: whether cases that flipped pass→fail outnumber those that flipped
  fail→pass by more than chance (exact binomial test, or chi-square with continuity
  correction when more than 25 cases flipped).
- :func:`pass_hat_k` (τ-bench's pass^k: the chance that k repetitions of a case all pass)
  and :func:`pass_at_k` (the chance that at least one of k does), :func:`flaky` and
  :func:`summarize_repetitions` for cases run several times.

"Significant" means: a difference this large would be rare (under ``1 - confidence`` or
``alpha``, 5 % by default) if the candidate were no different from the baseline and
the cases merely noisy. It says nothing of whether the change matters: read the delta.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MetricDelta",
    "PassFailTest",
    "RepetitionSummary",
    "flaky",
    "mcnemar",
    "paired_bootstrap",
    "pass_at_k",
    "pass_hat_k",
    "summarize_repetitions",
]

EXACT_MCNEMAR_LIMIT = 25
"""Up to this many flipped cases McNemar's test is the exact binomial one."""


@dataclass(frozen=True, slots=True)
class MetricDelta:
    """A metric's change from baseline to candidate over paired cases: both means, the
    mean per-case difference ``delta`` (candidate − baseline) and its confidence interval
    ``[low, high]``; ``significant`` when the interval excludes 0."""

    mean_baseline: float
    mean_candidate: float
    delta: float
    low: float
    high: float
    significant: bool
    confidence: float = 0.95
    pairs: int = 0

    @property
    def regressed(self) -> bool:
        """Significantly worse (for a metric where higher is better)."""
        return self.significant and self.delta < 0

    @property
    def improved(self) -> bool:
        """Significantly better (for a metric where higher is better)."""
        return self.significant and self.delta > 0


@dataclass(frozen=True, slots=True)
class PassFailTest:
    """McNemar's test on paired pass/fail results: ``b`` cases went from pass to fail,
    ``c`` from fail to pass; ``p_value`` is two-sided; ``significant`` when it is below
    ``alpha``. ``exact`` says whether the exact binomial test was used."""

    b: int
    c: int
    p_value: float
    significant: bool
    exact: bool = True

    @property
    def regressed(self) -> bool:
        """Significantly more cases broke than were fixed."""
        return self.significant and self.b > self.c

    @property
    def improved(self) -> bool:
        """Significantly more cases were fixed than broke."""
        return self.significant and self.c > self.b


@dataclass(frozen=True, slots=True)
class RepetitionSummary:
    """One case run ``repetitions`` times: its mean score, the share of runs that passed,
    whether every run passed, and whether the runs disagree (``flaky``)."""

    repetitions: int
    mean_value: float
    pass_rate: float
    all_passed: bool
    flaky: bool


def _paired(baseline: Sequence[float], candidate: Sequence[float]) -> None:
    if len(baseline) != len(candidate):
        raise ValueError(
            f"paired samples must have the same length ({len(baseline)} and {len(candidate)})"
        )
    if not baseline:
        raise ValueError("no pairs to compare")


def _binomial_cdf(n: int, p: float) -> list[float]:
    """P(X <= k) for k = 0..n, X ~ Binomial(n, p), not normalised (the last is ~1)."""
    log_p, log_q = math.log(p), math.log1p(-p)
    top = math.lgamma(n + 1)
    masses = (
        math.exp(top - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
        for k in range(n + 1)
    )
    return list(itertools.accumulate(masses))


def _resample_means(
    differences: Sequence[float], resamples: int, rng: random.Random
) -> list[float]:
    """Means of ``resamples`` resamples (with replacement) of ``differences``.

    Unchanged cases (difference 0) add nothing to a resample's sum, so each resample
    draws how many of its n picks land on changed cases (binomial, by inverting its CDF)
    and then only those picks: the same distribution as drawing all n, and several times
    faster when most cases did not change, as in most comparisons."""
    n = len(differences)
    changed = [d for d in differences if d != 0]
    if not changed:
        return [0.0] * resamples
    choices = rng.choices
    if len(changed) == n:
        return [sum(choices(changed, k=n)) / n for _ in range(resamples)]
    cdf = _binomial_cdf(n, len(changed) / n)
    total, uniform, find = cdf[-1], rng.random, bisect.bisect_right
    return [
        sum(choices(changed, k=min(n, find(cdf, uniform() * total)))) / n for _ in range(resamples)
    ]


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolated linearly between order statistics."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def paired_bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MetricDelta:
    """The change of a mean score between paired runs, with a percentile bootstrap
    confidence interval over cases (the same ``seed`` gives the same interval).

    ``baseline[i]`` and ``candidate[i]`` are the scores of the same case. With few cases
    (under ~20) the interval is too narrow: read it as a hint, not a verdict."""
    _paired(baseline, candidate)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, not {resamples}")
    differences = [float(c) - float(b) for b, c in zip(baseline, candidate, strict=True)]
    n = len(differences)
    delta = math.fsum(differences) / n
    rng = random.Random(seed)  # noqa: S311 - statistics, not secrets: the seed makes it repeatable
    means = sorted(_resample_means(differences, resamples, rng))
    tail = (1 - confidence) / 2
    low, high = _quantile(means, tail), _quantile(means, 1 - tail)
    return MetricDelta(
        mean_baseline=math.fsum(map(float, baseline)) / n,
        mean_candidate=math.fsum(map(float, candidate)) / n,
        delta=delta,
        low=low,
        high=high,
        significant=low > 0 or high < 0,
        confidence=confidence,
        pairs=n,
    )


def mcnemar(
    baseline: Sequence[bool], candidate: Sequence[bool], *, alpha: float = 0.05
) -> PassFailTest:
    """McNemar's test of paired pass/fail results (two-sided): exact binomial when at most
    :data:`EXACT_MCNEMAR_LIMIT` cases flipped, else chi-square with continuity correction."""
    _paired(baseline, candidate)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    b = sum(1 for before, after in zip(baseline, candidate, strict=True) if before and not after)
    c = sum(1 for before, after in zip(baseline, candidate, strict=True) if after and not before)
    flipped = b + c
    if flipped == 0:
        return PassFailTest(0, 0, 1.0, False)
    exact = flipped <= EXACT_MCNEMAR_LIMIT
    if exact:
        tail = sum(math.comb(flipped, i) for i in range(min(b, c) + 1))
        p_value = min(1.0, 2 * tail / 2**flipped)
    else:
        statistic = (abs(b - c) - 1) ** 2 / flipped
        p_value = math.erfc(math.sqrt(statistic / 2))  # chi-square, 1 degree of freedom
    return PassFailTest(b, c, p_value, p_value < alpha, exact)


def _check_k(k: int, runs: Sequence[Sequence[bool]]) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if not runs:
        raise ValueError("no cases")
    short = min(len(case) for case in runs)
    if short < k:
        raise ValueError(f"k is {k} but a case has only {short} repetitions")


def pass_hat_k(runs: Sequence[Sequence[bool]], k: int) -> float:
    """τ-bench's pass^k: the chance that k repetitions of a case, drawn from its n runs,
    all pass, averaged over cases (per case C(passes, k) / C(n, k)). It falls as k grows
    for an unreliable system; pass^1 is the plain pass rate."""
    _check_k(k, runs)
    return math.fsum(math.comb(sum(case), k) / math.comb(len(case), k) for case in runs) / len(runs)


def pass_at_k(runs: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k: the chance that at least one of k repetitions passes, averaged over cases
    (per case 1 − C(n − passes, k) / C(n, k), the unbiased estimator)."""
    _check_k(k, runs)
    return math.fsum(
        1 - math.comb(len(case) - sum(case), k) / math.comb(len(case), k) for case in runs
    ) / len(runs)


def flaky(runs: Sequence[bool]) -> bool:
    """Whether repetitions of one case disagree (some passed, some failed)."""
    return any(runs) and not all(runs)


def summarize_repetitions(values: Sequence[float], passed: Sequence[bool]) -> RepetitionSummary:
    """One case's repetitions: their scores and whether each passed."""
    if len(values) != len(passed):
        raise ValueError(f"{len(values)} scores but {len(passed)} pass/fail results")
    if not values:
        raise ValueError("no repetitions")
    return RepetitionSummary(
        repetitions=len(values),
        mean_value=math.fsum(map(float, values)) / len(values),
        pass_rate=sum(passed) / len(passed),
        all_passed=all(passed),
        flaky=flaky(passed),
    )
