"""The measured effect of a tier: a regression-discontinuity estimate at its entry threshold (issue 15).

Customers just above a tier's spend threshold and customers just below it are alike in almost everything but
the side of the threshold they fell on; what differs in their behaviour afterwards, right at the threshold, is
the effect of being let in (an intention-to-treat effect: the tier's grace periods and other rules mean not
everyone above holds the tier, nor everyone below lacks it).

Method (``local_linear_rd``): sharp local-linear regression discontinuity.

- Running variable ``x``: the customer's spend over the policy's spend window as of the start date, minus the
  threshold (``x >= 0``: above).
- Bandwidth ``h``: only customers with ``|x| < h`` take part; the default (chosen by the caller, documented in
  docs/guide/benefits.md) is a quarter of the threshold.
- Weights: triangular kernel ``1 - |x| / h`` (near the threshold counts most).
- On each side a weighted least-squares line ``y = a + b x``; the effect is ``a_above - a_below``, the jump of
  the two lines at ``x = 0``.
- Standard error: heteroskedasticity-robust (HC0 sandwich) variance of each intercept, the two sides being
  independent samples; 95 % interval ``effect ± 1.96 se`` (normal approximation).
- Too small to tell: fewer than ``MIN_PER_SIDE`` customers on either side within the bandwidth, or no spread
  of ``x`` on a side: no estimate, said plainly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_PER_SIDE = 30
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    std_error: float | None
    below: int  # customers in the bandwidth below the threshold
    above: int
    bandwidth: float
    too_small: bool
    note: str


def _side(points: Sequence[tuple[float, float]], h: float) -> tuple[float, float] | None:
    """(intercept, its robust variance) of the triangular-weighted line through ``points``; None without spread."""
    w = [1.0 - abs(x) / h for x, _ in points]
    sw = sum(w)
    if sw <= 0:
        return None
    mx = sum(wi * x for wi, (x, _) in zip(w, points, strict=True)) / sw
    my = sum(wi * y for wi, (_, y) in zip(w, points, strict=True)) / sw
    sxx = sum(wi * (x - mx) ** 2 for wi, (x, _) in zip(w, points, strict=True))
    if sxx <= 1e-12 * max(1.0, h * h) * sw:
        return None
    slope = sum(wi * (x - mx) * (y - my) for wi, (x, y) in zip(w, points, strict=True)) / sxx
    intercept = my - slope * mx
    # HC0: Var(beta) = (X'WX)^-1 X'W diag(e^2) W X (X'WX)^-1 ; intercept entry, X = [1, x]
    s0 = sw
    s1 = sum(wi * x for wi, (x, _) in zip(w, points, strict=True))
    s2 = sum(wi * x * x for wi, (x, _) in zip(w, points, strict=True))
    det = s0 * s2 - s1 * s1
    if det <= 0:
        return None
    # first row of (X'WX)^-1
    i00, i01 = s2 / det, -s1 / det
    meat = 0.0
    for wi, (x, y) in zip(w, points, strict=True):
        e = y - intercept - slope * x
        g = i00 + i01 * x  # the intercept's influence direction
        meat += (wi * g * e) ** 2
    return intercept, meat


def local_linear_rd(points: Sequence[tuple[float, float]], bandwidth: float) -> Estimate:
    """The jump at ``x = 0`` of ``y`` over ``x`` (see the module doc); ``points`` are (x, y) pairs."""
    if not bandwidth > 0 or not math.isfinite(bandwidth):
        raise ValueError("bandwidth must be positive")
    below = [(x, y) for x, y in points if -bandwidth < x < 0]
    above = [(x, y) for x, y in points if 0 <= x < bandwidth]
    if len(below) < MIN_PER_SIDE or len(above) < MIN_PER_SIDE:
        return Estimate(
            None, None, None, None, len(below), len(above), bandwidth, too_small=True,
            note=f"sample too small to tell: {len(below)} customers below and {len(above)} above the threshold "
            f"within the bandwidth (at least {MIN_PER_SIDE} on each side needed)",
        )  # fmt: skip
    lo, hi = _side(below, bandwidth), _side(above, bandwidth)
    if lo is None or hi is None:
        return Estimate(
            None, None, None, None, len(below), len(above), bandwidth, too_small=True,
            note="sample too small to tell: no spread of spend on one side of the threshold",
        )  # fmt: skip
    effect = hi[0] - lo[0]
    se = math.sqrt(hi[1] + lo[1])
    low, high = effect - Z95 * se, effect + Z95 * se
    verdict = "the interval excludes zero" if low > 0 or high < 0 else "the interval includes zero: no effect shown"
    return Estimate(effect, low, high, se, len(below), len(above), bandwidth, too_small=False, note=verdict)


def spend_threshold(rule: object) -> float | None:
    """The spend (``spend_12m >=`` or ``>``) an entry rule asks for, where it asks for one (the first found)."""
    if not isinstance(rule, dict) or len(rule) != 1:
        return None
    ((key, body),) = rule.items()
    if key not in ("all", "any") or not isinstance(body, list):
        return None
    for item in body:
        if isinstance(item, dict) and item.get("metric") == "spend_12m" and item.get("op") in (">=", ">"):
            return float(item["value"])
        nested = spend_threshold(item)
        if nested is not None:
            return nested
    return None


METHOD = (
    "sharp local-linear regression discontinuity at the tier's spend threshold: customers within the bandwidth "
    "of the threshold (spend over the policy's spend window up to the start, net of refunds), triangular kernel, "
    "one weighted line on each side, the effect is the jump between them at the threshold; heteroskedasticity-"
    "robust (HC0) standard error, 95 % normal interval; an intention-to-treat effect of being above the threshold"
)
