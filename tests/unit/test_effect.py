"""The regression-discontinuity estimator (domain/effect.py) on generated data: it finds a planted jump, its
interval covers zero when there is none, and it says plainly when the sample is too small."""

from __future__ import annotations

import random

import pytest

from domain.effect import MIN_PER_SIDE, local_linear_rd


def generated(jump: float, n: int = 4000, seed: int = 7) -> list[tuple[float, float]]:
    """x uniform on [-100, 100), y = 50 + 0.8 x + jump above 0 + noise (sd 20)."""
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        x = rng.uniform(-100, 100)
        points.append((x, 50 + 0.8 * x + (jump if x >= 0 else 0) + rng.gauss(0, 20)))
    return points


def test_it_finds_a_planted_effect() -> None:
    e = local_linear_rd(generated(25.0), bandwidth=50)
    assert not e.too_small
    assert e.effect is not None
    assert e.ci_low is not None
    assert e.ci_high is not None
    assert e.ci_low < 25.0 < e.ci_high
    assert e.ci_low > 0
    assert abs(e.effect - 25.0) < 5
    assert e.note == "the interval excludes zero"


def test_without_an_effect_the_interval_covers_zero() -> None:
    """With no jump the 95 % interval covers zero in about 95 % of data sets (one in twenty excludes it by
    chance: a single data set proves nothing either way), and the estimates centre on zero."""
    estimates = [local_linear_rd(generated(0.0, n=2000, seed=500 + seed), bandwidth=50) for seed in range(200)]
    covering = sum(e.ci_low is not None and e.ci_high is not None and e.ci_low < 0 < e.ci_high for e in estimates)
    assert 0.9 <= covering / len(estimates) <= 0.99
    assert abs(sum(e.effect or 0 for e in estimates) / len(estimates)) < 1.0
    assert estimates[0].note in ("the interval includes zero: no effect shown", "the interval excludes zero")


def test_the_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    covered = 0
    runs = 200
    for seed in range(runs):
        e = local_linear_rd(generated(10.0, n=800, seed=100 + seed), bandwidth=60)
        assert e.ci_low is not None
        assert e.ci_high is not None
        covered += e.ci_low < 10.0 < e.ci_high
    assert 0.88 <= covered / runs <= 0.99


def test_a_small_sample_is_too_small_to_tell() -> None:
    points = generated(25.0, n=40)
    e = local_linear_rd(points, bandwidth=50)
    assert e.too_small
    assert e.effect is None
    assert e.below < MIN_PER_SIDE or e.above < MIN_PER_SIDE
    assert e.note.startswith("sample too small to tell:")


def test_a_bandwidth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        local_linear_rd(generated(0.0), bandwidth=0)
