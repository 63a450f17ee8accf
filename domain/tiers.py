"""Tier rules: a small, validated rule language over customer metrics.

A rule is JSON-shaped data, so policies are stored as data and versioned:

    {"all": [{"metric": "spend_12m", "op": ">=", "value": 1000}, ...]}
    {"any": [...]}
    {"score": {"weights": {"spend_12m": 0.01, "orders_12m": 2}, "min": 40}}
    {"always": true}                      # the base tier

The same rule is evaluated in Python (one customer, with an explanation) and
compiled to SQL by infra/ (every customer at once); tests keep the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.errors import Invalid, ValidationFailed

# metric name -> (description, lowest possible value, highest possible value or None)
METRICS: dict[str, tuple[str, float, float | None]] = {
    "spend_12m": ("spend in the policy window", 0, None),
    "orders_12m": ("orders in the policy window", 0, None),
    "lifetime_spend": ("spend since the first purchase", 0, None),
    "order_count": ("orders since the first purchase", 0, None),
    "days_since_last_purchase": ("days since the last purchase", 0, None),
    "tenure_days": ("days since the customer joined", 0, None),
    "latest_nps": ("latest NPS answer (0-10)", 0, 10),
    "latest_csat": ("latest CSAT answer (1-5)", 1, 5),
    "open_complaints": ("complaints not yet resolved", 0, None),
}
OPERATORS = (">=", ">", "<=", "<", "==")

Rule = Mapping[str, Any]
Metrics = Mapping[str, float | int | Decimal | None]


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, metrics: Metrics) -> bool:
        actual = metrics.get(self.metric)
        if actual is None:
            return False
        a = float(actual)
        match self.op:
            case ">=":
                return a >= self.value
            case ">":
                return a > self.value
            case "<=":
                return a <= self.value
            case "<":
                return a < self.value
            case _:
                return a == self.value

    def describe(self) -> str:
        return f"{self.metric} {self.op} {_num(self.value)}"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


def validate_rule(rule: Any, path: str = "rule") -> None:
    """Raise ``Invalid`` listing every problem of the rule."""
    errors: list[ValidationFailed] = []
    _check(rule, path, errors)
    if errors:
        raise Invalid(errors)


def _check(rule: Any, path: str, errors: list[ValidationFailed]) -> None:
    if not isinstance(rule, Mapping) or len(rule) != 1:
        errors.append(ValidationFailed("a rule is an object with one key: all, any, score or always", field=path))
        return
    ((key, body),) = rule.items()
    if key == "always":
        if body is not True:
            errors.append(ValidationFailed("'always' must be true", field=path))
    elif key in ("all", "any"):
        if not isinstance(body, list) or not body:
            errors.append(ValidationFailed(f"'{key}' needs a non-empty list", field=path))
            return
        for i, item in enumerate(body):
            if isinstance(item, Mapping) and "metric" in item:
                _check_condition(item, f"{path}.{key}[{i}]", errors)
            else:
                _check(item, f"{path}.{key}[{i}]", errors)
    elif key == "score":
        if not isinstance(body, Mapping) or not isinstance(body.get("weights"), Mapping) or "min" not in body:
            errors.append(ValidationFailed("'score' needs 'weights' and 'min'", field=path))
            return
        weights = body["weights"]
        if not weights:
            errors.append(ValidationFailed("'score' needs at least one weight", field=path))
        for metric, weight in weights.items():
            if metric not in METRICS:
                errors.append(ValidationFailed(f"unknown metric '{metric}'", field=f"{path}.score.weights"))
            if not isinstance(weight, int | float) or isinstance(weight, bool):
                errors.append(ValidationFailed(f"weight of '{metric}' must be a number", field=f"{path}.score"))
        if not isinstance(body["min"], int | float) or isinstance(body["min"], bool):
            errors.append(ValidationFailed("'min' must be a number", field=f"{path}.score.min"))
    else:
        errors.append(ValidationFailed(f"unknown rule kind '{key}'", field=path))


def _check_condition(item: Mapping[str, Any], path: str, errors: list[ValidationFailed]) -> None:
    metric, op, value = item.get("metric"), item.get("op"), item.get("value")
    if metric not in METRICS:
        errors.append(ValidationFailed(f"unknown metric '{metric}'", field=f"{path}.metric"))
        return
    if op not in OPERATORS:
        errors.append(ValidationFailed(f"unknown operator '{op}'", field=f"{path}.op"))
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        errors.append(ValidationFailed("value must be a number", field=f"{path}.value"))
        return
    _, low, high = METRICS[metric]
    impossible = (
        (op in (">=", "==") and high is not None and value > high)
        or (op == ">" and high is not None and value >= high)
        or (op in ("<=", "==") and value < low)
        or (op == "<" and value <= low)
    )
    if impossible:
        errors.append(ValidationFailed(f"{metric} {op} {value} can never hold", field=f"{path}.value"))


def conditions(rule: Rule) -> list[Condition]:
    """The leaf conditions of a rule, in order (for explanations)."""
    ((key, body),) = rule.items()
    if key in ("all", "any"):
        out: list[Condition] = []
        for item in body:
            if "metric" in item:
                out.append(Condition(item["metric"], item["op"], float(item["value"])))
            else:
                out.extend(conditions(item))
        return out
    return []


def score(body: Mapping[str, Any], metrics: Metrics) -> float:
    return sum(float(metrics.get(m) or 0) * float(w) for m, w in body["weights"].items())


def holds(rule: Rule, metrics: Metrics) -> bool:
    ((key, body),) = rule.items()
    if key == "always":
        return True
    if key == "score":
        return score(body, metrics) >= float(body["min"])
    results = (
        Condition(i["metric"], i["op"], float(i["value"])).holds(metrics) if "metric" in i else holds(i, metrics)
        for i in body
    )
    return all(results) if key == "all" else any(results)


@dataclass(frozen=True)
class TierSpec:
    code: str
    name: str
    rank: int  # 0 = base tier; higher is better
    entry_rule: Rule
    retain_rule: Rule


def entry_tier(tiers: list[TierSpec], metrics: Metrics) -> TierSpec:
    """The highest tier whose entry rule holds (the base tier always holds)."""
    for tier in sorted(tiers, key=lambda t: t.rank, reverse=True):
        if holds(tier.entry_rule, metrics):
            return tier
    return min(tiers, key=lambda t: t.rank)
