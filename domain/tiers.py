"""Tier rules: a small, validated rule language over customer metrics.

A rule is JSON-shaped data, so policies are stored as data and versioned:

    {"all": [{"metric": "spend_12m", "op": ">=", "value": 1000}, ...]}
    {"any": [...]}
    {"score": {"weights": {"spend_12m": 0.01, "orders_12m": 2}, "min": 40}}
    {"always": true}                      # the base tier

The same rule is evaluated in Python (one customer, with an explanation) and
compiled to SQL by infra/ (every customer at once). Both compare and add exactly:
PostgreSQL in ``numeric``, Python in ``Decimal`` (``exact``), so 0.29 x 100 is 29 on
both sides; a test drives both over generated policies and customers
(tests/integration/test_tier_decision_generated.py) and requires identical decisions.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


# Exact arithmetic for rules: enough digits for any metric (numeric, up to 20 decimals) times any weight.
_EXACT = decimal.Context(prec=80)


def exact(value: float | int | Decimal) -> Decimal:
    """A number as PostgreSQL sees it: metric values arrive as ``numeric`` (Decimal) or integers; a rule's
    numbers reach the SQL as ``repr(float(x))`` literals (infra/tiering.py), read as exact numerics."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(repr(float(value)))


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    value: float

    def holds(self, metrics: Metrics) -> bool:
        actual = metrics.get(self.metric)
        if actual is None:
            return False
        a, value = exact(actual), exact(self.value)
        match self.op:
            case ">=":
                return a >= value
            case ">":
                return a > value
            case "<=":
                return a <= value
            case "<":
                return a < value
            case _:
                return a == value

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
            if not _is_number(weight):
                errors.append(ValidationFailed(f"weight of '{metric}' must be a number", field=f"{path}.score"))
        if not _is_number(body["min"]):
            errors.append(ValidationFailed("'min' must be a number", field=f"{path}.score.min"))
        elif all(m in METRICS and _is_number(w) for m, w in weights.items()) and weights:
            if score_bounds(weights)[1] < float(body["min"]):
                errors.append(
                    ValidationFailed(f"a score of {body['min']} can never be reached", field=f"{path}.score.min")
                )
    else:
        errors.append(ValidationFailed(f"unknown rule kind '{key}'", field=path))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def score_bounds(weights: Mapping[str, Any]) -> tuple[float, float]:
    """The lowest and highest score the weights can give (missing metrics count as 0)."""
    low = high = 0.0
    for metric, weight in weights.items():
        _, lo, hi = METRICS[metric]
        w = float(weight)
        top = math.inf if hi is None else hi
        # a missing value counts as 0, so 0 is always reachable besides the metric's own range
        candidates = [w * min(lo, 0.0), w * top if not (w == 0 and math.isinf(top)) else 0.0, 0.0]
        low += min(candidates)
        high += max(candidates)
    return low, high


def _check_condition(item: Mapping[str, Any], path: str, errors: list[ValidationFailed]) -> None:
    metric, op, value = item.get("metric"), item.get("op"), item.get("value")
    if metric not in METRICS:
        errors.append(ValidationFailed(f"unknown metric '{metric}'", field=f"{path}.metric"))
        return
    if op not in OPERATORS:
        errors.append(ValidationFailed(f"unknown operator '{op}'", field=f"{path}.op"))
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
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


def exact_score(body: Mapping[str, Any], metrics: Metrics) -> Decimal:
    """The weighted sum, exactly (a missing metric counts 0), as the SQL computes it in ``numeric``."""
    total = Decimal(0)
    for m, w in body["weights"].items():
        total = _EXACT.add(total, _EXACT.multiply(exact(metrics.get(m) or 0), exact(w)))
    return total


def score(body: Mapping[str, Any], metrics: Metrics) -> float:
    return float(exact_score(body, metrics))


def holds(rule: Rule, metrics: Metrics) -> bool:
    ((key, body),) = rule.items()
    if key == "always":
        return True
    if key == "score":
        return exact_score(body, metrics) >= exact(body["min"])
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


# ---------------------------------------------------------------- policies


@dataclass(frozen=True)
class PolicySpec:
    """A tier policy as data: tiers by rank (the lowest rank is the base tier) and the hysteresis knobs."""

    name: str
    tiers: Sequence[TierSpec]
    grace_days: int = 30
    min_stay_days: int = 30
    spend_window_days: int = 365
    version: int = 0
    benefits: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # the benefit holdout (domain/holdout.py): share of upgraded customers whose new benefits are withheld, days
    holdout_share: Decimal = Decimal(0)
    holdout_days: int = 0

    def by_rank(self) -> list[TierSpec]:
        """Highest rank first."""
        return sorted(self.tiers, key=lambda t: t.rank, reverse=True)

    @property
    def base(self) -> TierSpec:
        return min(self.tiers, key=lambda t: t.rank)

    def tier(self, code: str | None) -> TierSpec | None:
        return next((t for t in self.tiers if t.code == code), None)

    def above(self, tier: TierSpec) -> TierSpec | None:
        higher = [t for t in self.tiers if t.rank > tier.rank]
        return min(higher, key=lambda t: t.rank) if higher else None


CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_TIERS = 12
MAX_RULE_NODES = 60
MAX_RULE_DEPTH = 5
MAX_DAYS = 3650


def _rule_size(rule: Any, depth: int = 1) -> tuple[int, int]:
    """(nodes, depth) of a rule, for abuse limits; non-rules count as one node."""
    if not isinstance(rule, Mapping) or len(rule) != 1:
        return 1, depth
    ((key, body),) = rule.items()
    if key in ("all", "any") and isinstance(body, list):
        nodes, deepest = 1, depth
        for item in body:
            n, d = _rule_size(item, depth + 1)
            nodes, deepest = nodes + n, max(deepest, d)
        return nodes, deepest
    return 1, depth


def validate_policy(policy: PolicySpec) -> None:
    """Raise ``Invalid`` listing every problem of a policy; field paths use the API's names."""
    errors: list[ValidationFailed] = []

    def err(message: str, path: str) -> None:
        errors.append(ValidationFailed(message, field=path))

    if not policy.name.strip() or len(policy.name) > 200:
        err("a policy name has 1 to 200 characters", "name")
    for value, path in (
        (policy.grace_days, "graceDays"),
        (policy.min_stay_days, "minStayDays"),
        (policy.spend_window_days, "spendWindowDays"),
    ):
        low = 1 if path == "spendWindowDays" else 0
        if not low <= value <= MAX_DAYS:
            err(f"{path} must be between {low} and {MAX_DAYS} days", path)
    tiers = list(policy.tiers)
    if not tiers:
        err("a policy needs at least one tier (the base tier)", "tiers")
    if len(tiers) > MAX_TIERS:
        err(f"at most {MAX_TIERS} tiers", "tiers")
    seen_codes: dict[str, int] = {}
    seen_ranks: dict[int, int] = {}
    sound: list[int] = []  # tiers whose rules are well-formed, for the checks across tiers
    for i, t in enumerate(tiers):
        where = f"tiers[{i}]"
        if not CODE.match(t.code):
            err("a tier code is 1 to 32 lowercase letters, digits or _, starting with a letter", f"{where}.code")
        elif t.code in seen_codes:
            err(f"tier code '{t.code}' is used twice (tiers[{seen_codes[t.code]}] and {where})", f"{where}.code")
        seen_codes.setdefault(t.code, i)
        if not t.name.strip() or len(t.name) > 100:
            err("a tier name has 1 to 100 characters", f"{where}.name")
        if not 0 <= t.rank <= 1000:
            err("a rank is between 0 and 1000", f"{where}.rank")
        elif t.rank in seen_ranks:
            err(f"rank {t.rank} is used twice (tiers[{seen_ranks[t.rank]}] and {where})", f"{where}.rank")
        seen_ranks.setdefault(t.rank, i)
        ok = True
        for rule, name in ((t.entry_rule, "entryRule"), (t.retain_rule, "retainRule")):
            nodes, depth = _rule_size(rule)
            if nodes > MAX_RULE_NODES or depth > MAX_RULE_DEPTH:
                err(
                    f"a rule has at most {MAX_RULE_NODES} parts, nested at most {MAX_RULE_DEPTH} deep",
                    f"{where}.{name}",
                )
                ok = False
                continue
            try:
                validate_rule(rule, f"{where}.{name}")
            except Invalid as exc:
                errors.extend(exc.errors)
                ok = False
        if ok:
            sound.append(i)
    if errors or not tiers:
        raise Invalid(errors)

    base_rank = min(t.rank for t in tiers)
    ordered = sorted(range(len(tiers)), key=lambda i: tiers[i].rank)
    for i in ordered:
        t, where = tiers[i], f"tiers[{i}]"
        if t.rank == base_rank:
            if not _is_always(t.entry_rule):
                err(
                    f"the base tier '{t.code}' (lowest rank) is for everyone: its entry rule is {{always: true}}",
                    f"{where}.entryRule",
                )
            if not _is_always(t.retain_rule):
                err(
                    f"the base tier '{t.code}' has no tier below it: its retain rule is {{always: true}}",
                    f"{where}.retainRule",
                )
            continue
        if _is_always(t.entry_rule):
            err(
                f"only the base tier is entered by everyone: tier '{t.code}' needs a real entry rule "
                "(exactly one base tier with {always: true})",
                f"{where}.entryRule",
            )
            continue
        if never_holds(t.entry_rule):
            err(f"tier '{t.code}' can never be reached: its entry rule can never hold", f"{where}.entryRule")
            continue
        if implies(t.entry_rule, t.retain_rule) is False:
            err(
                f"the retain rule of '{t.code}' must be looser than its entry rule: a customer who just met the "
                "entry rule would already fail the retain rule",
                f"{where}.retainRule",
            )
        if never_holds(t.retain_rule):
            err(f"the retain rule of '{t.code}' can never hold", f"{where}.retainRule")
    for a, i in enumerate(ordered):
        lower = tiers[i]
        if lower.rank == base_rank or _is_always(lower.entry_rule):
            continue
        for j in ordered[a + 1 :]:
            higher = tiers[j]
            if implies(lower.entry_rule, higher.entry_rule) is True:
                err(
                    f"tier '{lower.code}' can never be reached: everyone who meets its entry rule also meets the "
                    f"entry rule of the higher tier '{higher.code}' (overlapping tiers; a higher tier's entry rule "
                    "must be stricter)",
                    f"tiers[{i}].entryRule",
                )
                break
    if errors:
        raise Invalid(errors)


def _is_always(rule: Rule) -> bool:
    return dict(rule) == {"always": True}


# Intervals of a metric: (low, low included, high, high included).
Interval = tuple[float, bool, float, bool]


def _domain(metric: str) -> Interval:
    _, low, high = METRICS[metric]
    return (float(low), True, math.inf if high is None else float(high), True)


def _leaf_interval(item: Mapping[str, Any]) -> Interval:
    v = float(item["value"])
    match item["op"]:
        case ">=":
            return (v, True, math.inf, True)
        case ">":
            return (v, False, math.inf, True)
        case "<=":
            return (-math.inf, True, v, True)
        case "<":
            return (-math.inf, True, v, False)
        case _:
            return (v, True, v, True)


def _intersect(a: Interval, b: Interval) -> Interval:
    lo, lo_in = max((a[0], a[1]), (b[0], b[1]), key=lambda x: (x[0], not x[1]))
    hi, hi_in = min((a[2], a[3]), (b[2], b[3]), key=lambda x: (x[0], x[1]))
    return (lo, lo_in, hi, hi_in)


def _empty(i: Interval) -> bool:
    return i[0] > i[2] or (i[0] == i[2] and not (i[1] and i[3]))


def _subset(a: Interval, b: Interval) -> bool:
    """a ⊆ b (a is not empty)."""
    low_ok = a[0] > b[0] or (a[0] == b[0] and (b[1] or not a[1]))
    high_ok = a[2] < b[2] or (a[2] == b[2] and (b[3] or not a[3]))
    return low_ok and high_ok


def _is_leaf(rule: Mapping[str, Any]) -> bool:
    return "metric" in rule


def _conjunction(rule: Mapping[str, Any]) -> dict[str, Interval] | None:
    """A leaf or an ``all`` of leaves (nested ``all`` too) as one interval per metric; None otherwise."""
    if _is_leaf(rule):
        return {rule["metric"]: _intersect(_domain(rule["metric"]), _leaf_interval(rule))}
    ((key, body),) = rule.items()
    if key != "all":
        return None
    out: dict[str, Interval] = {}
    for item in body:
        part = _conjunction(item)
        if part is None:
            return None
        for metric, interval in part.items():
            out[metric] = _intersect(out.get(metric, _domain(metric)), interval)
    return out


def never_holds(rule: Rule) -> bool:
    """True when the rule provably holds for no customer (contradictory conditions, unreachable score)."""
    ((key, body),) = rule.items()
    if key == "score":
        return score_bounds(body["weights"])[1] < float(body["min"])
    if key == "always":
        return False
    conj = _conjunction(rule)
    if conj is not None:
        return any(_empty(i) for i in conj.values())
    if key == "all":
        return any(never_holds(item) for item in body if not _is_leaf(item))
    if key == "any":
        return all(never_holds(item) if not _is_leaf(item) else never_holds({"all": [item]}) for item in body)
    return False


def _and3(results: Sequence[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return True if all(r is True for r in results) else None


def implies(a: Rule, b: Rule) -> bool | None:
    """Whether every customer meeting rule ``a`` meets rule ``b``: True (proved), False (a counter-example
    exists) or None (not comparable: different metrics, or shapes this reasoning does not cover). Metrics
    are treated as independent, which only ever makes the answer None where a dependency could matter."""
    if _is_always(b):
        return True
    if not _is_leaf(a):
        ((ka, body_a),) = a.items()
        if ka == "any":
            return _and3([implies(item, b) for item in body_a])
        if ka == "always":
            return None
    if not _is_leaf(b):
        ((kb, body_b),) = b.items()
        if kb == "all":
            return _and3([implies(a, item) for item in body_b])
        if kb == "any":
            results = [implies(a, item) for item in body_b]
            if any(r is True for r in results):
                return True
            conj = _conjunction(a)
            metrics = [item.get("metric") for item in body_b]
            if conj is not None and all(_is_leaf(item) for item in body_b) and len(set(metrics)) == len(metrics):
                # each alternative fails somewhere inside a's range of its metric: a counter-example exists
                escapes = []
                for item in body_b:
                    m = item["metric"]
                    own = conj.get(m, _domain(m))
                    escapes.append(not _subset(own, _intersect(_domain(m), _leaf_interval(item))))
                if all(escapes) and all(item["metric"] in conj for item in body_b):
                    return False
            return None
        if kb == "score":
            if not _is_leaf(a) and "score" in a:
                return _score_implies(a["score"], b["score"])
            if not _is_leaf(a) and "all" in a:
                return True if any(implies(item, b) is True for item in a["all"]) else None
            return None
    # b is a leaf
    conj = _conjunction(a)
    metric = b["metric"]
    target = _intersect(_domain(metric), _leaf_interval(b))
    if conj is not None:
        own = conj.get(metric, _domain(metric))
        if _subset(own, target):
            return True
        return False if metric in conj else None
    if not _is_leaf(a) and "all" in a:
        return True if any(implies(item, b) is True for item in a["all"]) else None
    return None


def _score_implies(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    wa = {m: float(w) for m, w in a["weights"].items()}
    wb = {m: float(w) for m, w in b["weights"].items()}
    min_a, min_b = float(a["min"]), float(b["min"])
    if wa == wb:
        return min_a >= min_b
    metrics = set(wa) | set(wb)
    if all(wb.get(m, 0.0) >= wa.get(m, 0.0) for m in metrics) and min_b <= min_a:
        return True  # metrics are never negative: b's score is at least a's
    return None


# ---------------------------------------------------------------- hysteresis


@dataclass(frozen=True)
class TierState:
    """Where a customer stands: its tier, since when, since when its retain rule fails, any override."""

    tier: str | None
    since: dt.datetime | None = None
    grace_since: dt.datetime | None = None
    override_tier: str | None = None
    override_expires_at: dt.datetime | None = None
    override_reason: str | None = None
    override_by: str | None = None

    def override_active(self, now: dt.datetime) -> bool:
        return self.override_tier is not None and (self.override_expires_at is None or self.override_expires_at > now)


# What the engine does with one customer (the SQL in infra/tiering.py makes the same decision):
#   override  an unexpired manual override: nothing to evaluate
#   replace   the override expired: placed by the entry rules            -> 'manual_override' row
#   place     no tier yet, or one the policy does not have: entry rules  -> 'initial' row
#   up        a higher tier's entry rule holds                           -> 'upgrade' row
#   keep      the retain rule of the current tier holds
#   recover   the retain rule holds again while a grace period ran       -> 'grace' row (grace ends)
#   grace     the retain rule fails for the first time                   -> 'grace' row (grace starts)
#   wait      the retain rule still fails; grace or minimum stay not over
#   down      grace and minimum stay are over: to the highest tier whose entry or retain rule holds
#                                                                         -> 'downgrade' row
CHANGE_TYPE = {
    "replace": "manual_override",
    "place": "initial",
    "up": "upgrade",
    "recover": "grace",
    "grace": "grace",
    "down": "downgrade",
}


@dataclass(frozen=True)
class Decision:
    kind: str
    tier: str | None
    grace_since: dt.datetime | None

    @property
    def change_type(self) -> str | None:
        """The ``tier_changes.change_type`` of the history row this decision writes, if any."""
        return CHANGE_TYPE.get(self.kind)


def downgrade_at(policy: PolicySpec, state: TierState) -> dt.datetime | None:
    """The earliest moment a customer in grace may move down: grace period and minimum stay both over."""
    if state.grace_since is None:
        return None
    at = state.grace_since + dt.timedelta(days=policy.grace_days)
    if state.since is not None:
        at = max(at, state.since + dt.timedelta(days=policy.min_stay_days))
    return at


def decide(policy: PolicySpec, state: TierState, metrics: Metrics, now: dt.datetime) -> Decision:
    """The hysteresis: up as soon as a higher entry rule holds; down only when the retain rule of the
    current tier fails, the grace period since it first failed is over and the minimum stay too."""
    if state.override_active(now):
        return Decision("override", state.tier, state.grace_since)
    entry = entry_tier(list(policy.tiers), metrics)
    if state.override_tier is not None:
        return Decision("replace", entry.code, None)
    current = policy.tier(state.tier)
    if current is None:
        return Decision("place", entry.code, None)
    if entry.rank > current.rank:
        return Decision("up", entry.code, None)
    if entry.rank == current.rank or holds(current.retain_rule, metrics):
        return Decision("keep" if state.grace_since is None else "recover", current.code, None)
    if state.grace_since is None:
        return Decision("grace", current.code, now)
    due = downgrade_at(policy, state)
    if due is not None and now >= due:
        return Decision("down", step_down(policy, current, metrics).code, None)
    return Decision("wait", current.code, state.grace_since)


def step_down(policy: PolicySpec, current: TierSpec, metrics: Metrics) -> TierSpec:
    """The tier a downgrade lands in: the highest tier below ``current`` whose entry or retain rule holds."""
    for t in policy.by_rank():
        if t.rank < current.rank and (holds(t.retain_rule, metrics) or holds(t.entry_rule, metrics)):
            return t
    return policy.base


# ---------------------------------------------------------------- explanation


@dataclass(frozen=True)
class ConditionCheck:
    """One condition against a customer: the actual value and, when it fails, how far off it is
    (``gap``: how much the metric must rise for >, >=, fall for <, <=, or move for ==)."""

    metric: str
    op: str
    threshold: float
    actual: float | None
    holds: bool
    gap: float | None

    def words(self, show: bool) -> str:
        head = f"{METRICS[self.metric][0]} {self.op} {_num(self.threshold)}"
        if not show:
            return f"{head} ({'holds' if self.holds else 'fails'}; value not shown)"
        if self.actual is None:
            return f"{head} (no value yet)"
        now = f"now {_num(self.actual)}"
        if self.holds:
            return f"{head} ({now}: met)"
        direction = "more" if self.op in (">=", ">") else ("less" if self.op in ("<=", "<") else "off")
        return f"{head} ({now}: {_num(self.gap or 0)} {direction} needed)"


@dataclass(frozen=True)
class ScoreTerm:
    metric: str
    weight: float
    actual: float | None
    #: how much this metric alone would have to rise to close the gap (None when it cannot help)
    needed_alone: float | None


@dataclass(frozen=True)
class RuleCheck:
    kind: str  # always, all, any, score
    holds: bool
    conditions: list[ConditionCheck]
    nested: bool = False  # the rule nests all/any: conditions are its leaves, in order
    score: float | None = None
    min_score: float | None = None
    points_missing: float | None = None
    terms: list[ScoreTerm] = field(default_factory=list)

    def words(self, show: Callable[[str], bool]) -> str:
        if self.kind == "always":
            return "everyone"
        if self.kind == "score":
            formula = " + ".join(f"{_num(t.weight)} x {t.metric}" for t in self.terms)
            if self.score is None:
                return (
                    f"score {formula} >= {_num(self.min_score or 0)} ({'holds' if self.holds else 'fails'}; "
                    "values not shown)"
                )
            head = f"score {formula} >= {_num(self.min_score or 0)} (now {_num(self.score)}"
            if self.holds:
                return head + ": met)"
            ways = [f"{_num(t.needed_alone)} more {t.metric}" for t in self.terms if t.needed_alone is not None]
            tail = f"; e.g. {' or '.join(ways)}" if ways else ""
            return head + f": {_num(self.points_missing or 0)} points missing{tail})"
        joiner = "all of" if self.kind == "all" else "any of"
        parts = "; ".join(c.words(show(c.metric)) for c in self.conditions)
        return f"{joiner}{' (nested)' if self.nested else ''}: {parts}"


def _value(metrics: Metrics, metric: str) -> float | None:
    v = metrics.get(metric)
    return None if v is None else float(v)


def check_condition(metric: str, op: str, threshold: float, metrics: Metrics) -> ConditionCheck:
    actual = _value(metrics, metric)
    ok = Condition(metric, op, threshold).holds(metrics)
    gap: float | None = None
    if actual is not None:
        if ok:
            gap = 0.0
        elif op in (">=", ">"):
            gap = threshold - actual if op == ">=" else max(threshold - actual, 0.0)
        elif op in ("<=", "<"):
            gap = actual - threshold if op == "<=" else max(actual - threshold, 0.0)
        else:
            gap = abs(actual - threshold)
    return ConditionCheck(metric, op, threshold, actual, ok, gap)


def check_rule(rule: Rule, metrics: Metrics) -> RuleCheck:
    ((key, body),) = rule.items()
    ok = holds(rule, metrics)
    if key == "always":
        return RuleCheck("always", True, [])
    if key == "score":
        weights = {m: float(w) for m, w in body["weights"].items()}
        total = score(body, metrics)
        minimum = float(body["min"])
        missing = max(minimum - total, 0.0)
        terms = [
            ScoreTerm(m, w, _value(metrics, m), missing / w if w > 0 and missing > 0 else None)
            for m, w in weights.items()
        ]
        return RuleCheck("score", ok, [], False, total, minimum, missing, terms)
    leaves = conditions(rule)
    nested = any("metric" not in item for item in body)
    return RuleCheck(key, ok, [check_condition(c.metric, c.op, c.value, metrics) for c in leaves], nested)


@dataclass(frozen=True)
class Explanation:
    tier: str | None
    tier_name: str | None
    basis: str  # override, base, entry, retain, grace, unplaced
    since: dt.datetime | None
    policy_version: int
    held_by: RuleCheck | None  # the rule that keeps the customer in its tier
    entry: RuleCheck | None  # the entry rule of the current tier
    retain: RuleCheck | None  # its retain rule
    grace_since: dt.datetime | None
    downgrade_at: dt.datetime | None
    min_stay_until: dt.datetime | None
    next_tier: str | None
    next_tier_name: str | None
    next: RuleCheck | None  # the next tier's entry rule, with the gap per condition
    pending: str  # what the engine would do at the next evaluation (a Decision kind)
    lines: list[str]


def _hide(check: RuleCheck | None, show: Callable[[str], bool]) -> RuleCheck | None:
    """The check with every value of a metric the caller may not see taken out."""
    if check is None:
        return None
    conds = [
        c if show(c.metric) else ConditionCheck(c.metric, c.op, c.threshold, None, c.holds, None)
        for c in check.conditions
    ]
    if check.kind == "score" and not all(show(t.metric) for t in check.terms):
        terms = [ScoreTerm(t.metric, t.weight, None, None) for t in check.terms]
        return RuleCheck("score", check.holds, [], False, None, check.min_score, None, terms)
    return RuleCheck(
        check.kind,
        check.holds,
        conds,
        check.nested,
        check.score,
        check.min_score,
        check.points_missing,
        check.terms,
    )


def _day(at: dt.datetime | None) -> str:
    return at.date().isoformat() if at else "?"


def explain(
    policy: PolicySpec,
    state: TierState,
    metrics: Metrics,
    now: dt.datetime,
    show: Callable[[str], bool] = lambda metric: True,
) -> Explanation:
    """Why the customer is in its tier (which rule holds, actual against threshold) and what it would take
    to move up (the gap per condition of the next tier's entry rule; for a score, the points missing).
    Values of metrics for which ``show`` is false are left out, in the words too."""
    current = policy.tier(state.tier)
    decision = decide(policy, state, metrics, now)
    lines: list[str] = []
    if current is None:
        entry = entry_tier(list(policy.tiers), metrics)
        lines.append(
            f"Not placed under policy v{policy.version} yet"
            + (f" (its tier '{state.tier}' is not part of it)" if state.tier else "")
            + f": the entry rules place the customer in {entry.name} at the next evaluation."
        )
        return Explanation(
            state.tier,
            None,
            "unplaced",
            state.since,
            policy.version,
            None,
            None,
            None,
            None,
            None,
            None,
            entry.code,
            entry.name,
            _hide(check_rule(entry.entry_rule, metrics), show),
            decision.kind,
            lines,
        )
    entry_check = check_rule(current.entry_rule, metrics)
    retain_check = check_rule(current.retain_rule, metrics)
    is_base = current.code == policy.base.code
    lines.append(f"{current.name} (rank {current.rank}) since {_day(state.since)}, under policy v{policy.version}.")
    held_by: RuleCheck | None
    if state.override_active(now):
        basis, held_by = "override", None
        until = f"until {_day(state.override_expires_at)}" if state.override_expires_at else "without an end date"
        lines.append(
            f"Set by a manual override{f' of {state.override_by}' if state.override_by else ''} {until}: "
            f"{state.override_reason or 'no reason given'}. The rules do not apply while it lasts."
        )
    elif is_base:
        basis, held_by = "base", entry_check
        lines.append(f"{current.name} is the base tier: every customer is at least {current.name}.")
    elif entry_check.holds:
        basis, held_by = "entry", entry_check
        lines.append(f"The entry rule of {current.name} holds: {entry_check.words(show)}.")
    elif retain_check.holds:
        basis, held_by = "retain", retain_check
        lines.append(
            f"The entry rule of {current.name} no longer holds, but its retain rule does, so the tier is kept: "
            f"{retain_check.words(show)}."
        )
    else:
        basis, held_by = "grace", None
        grace_since = state.grace_since or now
        due = downgrade_at(policy, TierState(state.tier, state.since, grace_since))
        lines.append(
            f"The retain rule of {current.name} fails ({retain_check.words(show)}). A grace period runs since "
            f"{_day(grace_since)}: the tier is kept until at least {_day(due)} (grace of {policy.grace_days} days, "
            f"minimum stay of {policy.min_stay_days} days); after that the customer moves down unless the retain "
            "rule holds again."
        )
    upper = policy.above(current)
    next_check = check_rule(upper.entry_rule, metrics) if upper else None
    if upper is None:
        lines.append(f"{current.name} is the highest tier.")
    elif next_check is not None and next_check.holds:
        lines.append(f"The entry rule of {upper.name} holds already: the customer moves up at the next evaluation.")
    elif next_check is not None:
        lines.append(f"To reach {upper.name}: {next_check.words(show)}.")
    min_stay_until = state.since + dt.timedelta(days=policy.min_stay_days) if state.since else None
    return Explanation(
        tier=current.code,
        tier_name=current.name,
        basis=basis,
        since=state.since,
        policy_version=policy.version,
        held_by=_hide(held_by, show),
        entry=_hide(entry_check, show),
        retain=_hide(retain_check, show),
        grace_since=state.grace_since,
        downgrade_at=downgrade_at(policy, state),
        min_stay_until=min_stay_until,
        next_tier=upper.code if upper else None,
        next_tier_name=upper.name if upper else None,
        next=_hide(next_check, show),
        pending=decision.kind,
        lines=lines,
    )
