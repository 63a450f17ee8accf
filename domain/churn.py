"""An explainable, rule-based churn warning per customer.

Each rule looks at one signal computed from the customer's own history (infra/churn.py computes the
inputs set-based in SQL) and, when it fires, adds its weight to the score and says why, with its
numbers. The score (0-100) gives the level: green, yellow or red. The thresholds and weights are a
versioned ``ChurnModel``: a stored score names the model version that computed it.

Signals (model version 1):

- ``silence``: no purchase for longer than ``silence_factor`` x the customer's own median gap
  between purchases (never shorter than ``min_gap_days``; ``default_gap_days`` with fewer than two
  gaps); a longer silence (``strong_silence_factor``) weighs more.
- ``spend_drop``: spend of the last ``spend_window_days`` fell by ``spend_drop`` or more against
  the window before (which had at least ``min_prior_spend``).
- ``repeated_complaints``: ``repeated_complaints`` or more complaints in ``complaint_window_days``.
- ``breached_complaints``: a complaint of that window breached its SLA.
- ``reopened_complaints``: a complaint of that window was reopened.
- ``detractor``: the latest NPS answer is a detractor's (0-6), or the latest CSAT is 1-2.
- ``falling_score``: the latest NPS fell by ``nps_drop`` points or more, or the CSAT by
  ``csat_drop``, against the answer before.
- ``tier_downgrade``: a tier downgrade in the last ``downgrade_window_days``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

GREEN, YELLOW, RED = "green", "yellow", "red"

# Signal values that are money: shown only to callers who may read spend figures.
MONETARY_VALUES = frozenset({"recentSpend", "priorSpend"})

_WEIGHTS_V1 = MappingProxyType(
    {
        "silence": 30,
        "strong_silence": 45,
        "spend_drop": 20,
        "repeated_complaints": 15,
        "breached_complaints": 15,
        "reopened_complaints": 10,
        "detractor": 25,
        "falling_score": 10,
        "tier_downgrade": 20,
    }
)


@dataclass(frozen=True)
class ChurnModel:
    version: int = 1
    silence_factor: float = 2.0
    strong_silence_factor: float = 4.0
    min_gap_days: float = 7.0
    default_gap_days: float = 90.0
    spend_window_days: int = 90
    spend_drop: float = 0.5
    min_prior_spend: float = 50.0
    complaint_window_days: int = 90
    repeated_complaints: int = 2
    score_window_days: int = 365
    detractor_max_nps: int = 6
    unhappy_max_csat: int = 2
    nps_drop: int = 2
    csat_drop: int = 1
    downgrade_window_days: int = 90
    yellow_at: int = 25
    red_at: int = 50
    weights: Mapping[str, int] = field(default_factory=lambda: _WEIGHTS_V1)


MODEL = ChurnModel()


@dataclass(frozen=True)
class ChurnInputs:
    """What the rules look at, for one customer at one moment (days are fractional)."""

    orders: int = 0
    days_since_last_purchase: float | None = None
    median_gap_days: float | None = None  # median of the gaps between consecutive purchases
    gaps: int = 0  # how many gaps the median is of
    spend_recent: float = 0.0  # the last spend_window_days
    spend_prior: float = 0.0  # the spend_window_days before those
    complaints: int = 0  # opened in the last complaint_window_days
    breached_complaints: int = 0
    reopened_complaints: int = 0
    latest_nps: int | None = None  # answers of the last score_window_days
    previous_nps: int | None = None
    latest_csat: int | None = None
    previous_csat: int | None = None
    days_since_downgrade: float | None = None  # the latest downgrade of the last downgrade_window_days
    downgrade: str | None = None  # "gold→silver"


@dataclass(frozen=True)
class Signal:
    code: str
    weight: int
    message: str
    values: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "weight": self.weight, "message": self.message, "values": dict(self.values)}


@dataclass(frozen=True)
class ChurnAssessment:
    level: str
    score: int
    signals: tuple[Signal, ...]
    model_version: int

    def signals_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.signals]


def _r(x: float) -> float:
    return round(x, 2)


def _silence(i: ChurnInputs, m: ChurnModel) -> Signal | None:
    if i.orders == 0 or i.days_since_last_purchase is None:
        return None
    own = i.median_gap_days if i.gaps >= 2 and i.median_gap_days is not None else None
    rhythm = max(own if own is not None else m.default_gap_days, m.min_gap_days)
    ratio = i.days_since_last_purchase / rhythm
    if ratio <= m.silence_factor:
        return None
    strong = ratio > m.strong_silence_factor
    basis = f"the usual {rhythm:.0f}-day gap" if own is not None else f"a default {rhythm:.0f}-day rhythm"
    return Signal(
        "silence",
        m.weights["strong_silence" if strong else "silence"],
        f"no purchase for {i.days_since_last_purchase:.0f} days, {ratio:.1f}x {basis}",
        {
            "daysSinceLastPurchase": _r(i.days_since_last_purchase),
            "rhythmDays": _r(rhythm),
            "ownRhythm": own is not None,
            "ratio": _r(ratio),
            "threshold": m.strong_silence_factor if strong else m.silence_factor,
        },
    )


def _spend_drop(i: ChurnInputs, m: ChurnModel) -> Signal | None:
    if i.spend_prior < m.min_prior_spend:
        return None
    drop = (i.spend_prior - i.spend_recent) / i.spend_prior
    if drop < m.spend_drop:
        return None
    return Signal(
        "spend_drop",
        m.weights["spend_drop"],
        f"spend of the last {m.spend_window_days} days fell {drop:.0%} against the {m.spend_window_days} days before",
        {
            "dropPct": _r(100 * drop),
            "windowDays": m.spend_window_days,
            "recentSpend": _r(i.spend_recent),
            "priorSpend": _r(i.spend_prior),
        },
    )


def _complaints(i: ChurnInputs, m: ChurnModel) -> list[Signal]:
    out = []
    window = m.complaint_window_days
    if i.complaints >= m.repeated_complaints:
        out.append(
            Signal(
                "repeated_complaints",
                m.weights["repeated_complaints"],
                f"{i.complaints} complaints in {window} days",
                {"complaints": i.complaints, "windowDays": window, "threshold": m.repeated_complaints},
            )
        )
    if i.breached_complaints > 0:
        out.append(
            Signal(
                "breached_complaints",
                m.weights["breached_complaints"],
                f"{i.breached_complaints} complaint(s) of the last {window} days breached their SLA",
                {"breachedComplaints": i.breached_complaints, "windowDays": window},
            )
        )
    if i.reopened_complaints > 0:
        out.append(
            Signal(
                "reopened_complaints",
                m.weights["reopened_complaints"],
                f"{i.reopened_complaints} complaint(s) of the last {window} days reopened",
                {"reopenedComplaints": i.reopened_complaints, "windowDays": window},
            )
        )
    return out


def _scores(i: ChurnInputs, m: ChurnModel) -> list[Signal]:
    out = []
    nps_low = i.latest_nps is not None and i.latest_nps <= m.detractor_max_nps
    csat_low = i.latest_csat is not None and i.latest_csat <= m.unhappy_max_csat
    if nps_low or csat_low:
        said = []
        if nps_low:
            said.append(f"NPS {i.latest_nps}")
        if csat_low:
            said.append(f"CSAT {i.latest_csat}")
        out.append(
            Signal(
                "detractor",
                m.weights["detractor"],
                f"latest answer is a detractor's: {' and '.join(said)}",
                {"latestNps": i.latest_nps, "latestCsat": i.latest_csat},
            )
        )
    nps_fell = i.latest_nps is not None and i.previous_nps is not None and i.previous_nps - i.latest_nps >= m.nps_drop
    csat_fell = (
        i.latest_csat is not None and i.previous_csat is not None and i.previous_csat - i.latest_csat >= m.csat_drop
    )
    if nps_fell or csat_fell:
        said = []
        if nps_fell:
            said.append(f"NPS {i.previous_nps} → {i.latest_nps}")
        if csat_fell:
            said.append(f"CSAT {i.previous_csat} → {i.latest_csat}")
        out.append(
            Signal(
                "falling_score",
                m.weights["falling_score"],
                f"score fell: {', '.join(said)}",
                {
                    "previousNps": i.previous_nps,
                    "latestNps": i.latest_nps,
                    "previousCsat": i.previous_csat,
                    "latestCsat": i.latest_csat,
                },
            )
        )
    return out


def _downgrade(i: ChurnInputs, m: ChurnModel) -> Signal | None:
    if i.days_since_downgrade is None or i.days_since_downgrade > m.downgrade_window_days:
        return None
    return Signal(
        "tier_downgrade",
        m.weights["tier_downgrade"],
        f"tier downgrade{f' {i.downgrade}' if i.downgrade else ''} {i.days_since_downgrade:.0f} days ago",
        {"daysAgo": _r(i.days_since_downgrade), "change": i.downgrade},
    )


def assess(inputs: ChurnInputs, model: ChurnModel = MODEL) -> ChurnAssessment:
    """The level, score (capped at 100) and the signals that fired, strongest first."""
    fired = [
        s
        for s in (
            _silence(inputs, model),
            _spend_drop(inputs, model),
            *_complaints(inputs, model),
            *_scores(inputs, model),
            _downgrade(inputs, model),
        )
        if s is not None
    ]
    fired.sort(key=lambda s: -s.weight)
    score = min(100, sum(s.weight for s in fired))
    level = RED if score >= model.red_at else YELLOW if score >= model.yellow_at else GREEN
    return ChurnAssessment(level=level, score=score, signals=tuple(fired), model_version=model.version)


def without_money(signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The signals with their monetary values left out (for callers who may not read spend)."""
    return [
        {**s, "values": {k: v for k, v in (s.get("values") or {}).items() if k not in MONETARY_VALUES}} for s in signals
    ]
