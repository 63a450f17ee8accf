"""The tier engine's pure rules: policy validation, rule implication, the hysteresis decision and the
explanation. No database: infra/tiering.py compiles the same decision to SQL (tests/integration)."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from domain import tiers as t
from domain.errors import Invalid

NOW = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
ALWAYS = {"always": True}


def _shipped() -> t.PolicySpec:
    path = Path(__file__).parents[2] / "infra/migrations/versions/0002_default_reference_data.py"
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return t.PolicySpec(
        "Default standard",
        [t.TierSpec(code, name, rank, entry, retain) for code, name, rank, entry, retain, _ in module.TIERS],
        version=1,
    )


SHIPPED = _shipped()


def spend(op: str, value: float) -> dict[str, Any]:
    return {"metric": "spend_12m", "op": op, "value": value}


def orders(op: str, value: float) -> dict[str, Any]:
    return {"metric": "orders_12m", "op": op, "value": value}


def simple(grace: int = 30, stay: int = 30, **overrides: Any) -> t.PolicySpec:
    """bronze < silver (spend >= 500, kept from 400) < gold (spend >= 2000, kept from 1600)."""
    tiers = [
        t.TierSpec("bronze", "Bronze", 0, ALWAYS, ALWAYS),
        t.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 500)]}, {"all": [spend(">=", 400)]}),
        t.TierSpec("gold", "Gold", 2, {"all": [spend(">=", 2000)]}, {"all": [spend(">=", 1600)]}),
    ]
    return t.PolicySpec("Simple", overrides.pop("tiers", tiers), grace_days=grace, min_stay_days=stay, version=7)


def problems(policy: t.PolicySpec) -> dict[str, str]:
    with pytest.raises(Invalid) as exc:
        t.validate_policy(policy)
    return {e.field or "": e.message for e in exc.value.errors}


def with_tiers(*tiers: t.TierSpec, **knobs: Any) -> t.PolicySpec:
    return t.PolicySpec("P", list(tiers), **knobs)


BRONZE = t.TierSpec("bronze", "Bronze", 0, ALWAYS, ALWAYS)


# ============================================================== validation


class TestPolicyValidation:
    def test_the_shipped_policy_and_the_simple_one_are_valid(self) -> None:
        t.validate_policy(SHIPPED)
        t.validate_policy(simple())

    def test_unknown_metric(self) -> None:
        bad = t.TierSpec("silver", "Silver", 1, {"all": [{"metric": "karma", "op": ">=", "value": 1}]}, ALWAYS)
        assert problems(with_tiers(BRONZE, bad)) == {"tiers[1].entryRule.all[0].metric": "unknown metric 'karma'"}

    def test_impossible_threshold(self) -> None:
        bad = t.TierSpec("silver", "Silver", 1, {"all": [{"metric": "latest_csat", "op": ">=", "value": 6}]}, ALWAYS)
        assert set(problems(with_tiers(BRONZE, bad))) == {"tiers[1].entryRule.all[0].value"}

    def test_contradictory_conditions_make_an_unreachable_tier(self) -> None:
        bad = t.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 1000), spend("<", 500)]}, ALWAYS)
        assert "can never be reached" in problems(with_tiers(BRONZE, bad))["tiers[1].entryRule"]

    def test_unreachable_score(self) -> None:
        rule = {"score": {"weights": {"latest_nps": 1, "latest_csat": 1}, "min": 16}}  # at most 10 + 5
        bad = t.TierSpec("silver", "Silver", 1, rule, ALWAYS)
        assert "can never be reached" in problems(with_tiers(BRONZE, bad))["tiers[1].entryRule.score.min"]

    def test_a_lower_tier_whose_entry_implies_a_higher_ones_is_unreachable(self) -> None:
        silver = t.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 1000)]}, ALWAYS)
        gold = t.TierSpec("gold", "Gold", 2, {"all": [spend(">=", 500)]}, ALWAYS)
        message = problems(with_tiers(BRONZE, silver, gold))["tiers[1].entryRule"]
        assert "overlapping" in message
        assert "'gold'" in message

    def test_equal_entry_rules_overlap(self) -> None:
        silver = t.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 500)]}, ALWAYS)
        gold = t.TierSpec("gold", "Gold", 2, {"all": [spend(">=", 500)]}, ALWAYS)
        assert "tiers[1].entryRule" in problems(with_tiers(BRONZE, silver, gold))

    def test_incomparable_tiers_are_accepted(self) -> None:
        silver = t.TierSpec("silver", "Silver", 1, {"all": [orders(">=", 6)]}, {"all": [orders(">=", 5)]})
        gold = t.TierSpec("gold", "Gold", 2, {"all": [spend(">=", 2000)]}, {"all": [spend(">=", 1600)]})
        t.validate_policy(with_tiers(BRONZE, silver, gold))

    def test_retain_stricter_than_entry(self) -> None:
        silver = t.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 500)]}, {"all": [spend(">=", 600)]})
        assert "looser" in problems(with_tiers(BRONZE, silver))["tiers[1].retainRule"]

    def test_retain_stricter_than_entry_score(self) -> None:
        weights = {"spend_12m": 0.01, "orders_12m": 1}
        silver = t.TierSpec(
            "silver",
            "Silver",
            1,
            {"score": {"weights": weights, "min": 50}},
            {"score": {"weights": weights, "min": 60}},
        )
        assert "tiers[1].retainRule" in problems(with_tiers(BRONZE, silver))

    def test_duplicate_codes_and_ranks(self) -> None:
        a = t.TierSpec("silver", "Silver", 1, {"all": [spend(">=", 500)]}, ALWAYS)
        b = t.TierSpec("silver", "Gold", 1, {"all": [orders(">=", 9)]}, ALWAYS)
        errors = problems(with_tiers(BRONZE, a, b))
        assert set(errors) == {"tiers[2].code", "tiers[2].rank"}

    def test_exactly_one_base_tier_with_always(self) -> None:
        not_always = t.TierSpec("bronze", "Bronze", 0, {"all": [orders(">=", 1)]}, ALWAYS)
        assert "base tier" in problems(with_tiers(not_always))["tiers[0].entryRule"]
        second = t.TierSpec("silver", "Silver", 1, ALWAYS, ALWAYS)
        assert "only the base tier" in problems(with_tiers(BRONZE, second))["tiers[1].entryRule"]
        loose_base = t.TierSpec("bronze", "Bronze", 0, ALWAYS, {"all": [orders(">=", 1)]})
        assert "tiers[0].retainRule" in problems(with_tiers(loose_base))

    @pytest.mark.parametrize(
        ("knob", "value", "field"),
        [
            ("grace_days", -1, "graceDays"),
            ("min_stay_days", 4000, "minStayDays"),
            ("spend_window_days", 0, "spendWindowDays"),
        ],
    )
    def test_days_out_of_range(self, knob: str, value: int, field: str) -> None:
        assert field in problems(with_tiers(BRONZE, **{knob: value}))

    def test_bad_codes_names_and_empty_policies(self) -> None:
        assert "tiers" in problems(with_tiers())
        odd = t.TierSpec("Gold Tier", " ", 1, {"all": [spend(">=", 5)]}, ALWAYS)
        assert {"tiers[1].code", "tiers[1].name"} <= set(problems(with_tiers(BRONZE, odd)))
        assert "name" in problems(t.PolicySpec(" ", [BRONZE]))

    def test_rules_too_large_are_refused(self) -> None:
        deep: dict[str, Any] = {"all": [spend(">=", 1)]}
        for _ in range(6):
            deep = {"all": [deep]}
        assert "tiers[1].entryRule" in problems(with_tiers(BRONZE, t.TierSpec("x", "X", 1, deep, ALWAYS)))

    def test_every_problem_at_once(self) -> None:
        a = t.TierSpec("silver", "Silver", 1, {"all": [{"metric": "karma", "op": ">=", "value": 1}]}, ALWAYS)
        b = t.TierSpec("gold", "Gold", 2, {"all": [spend(">=", 1)]}, {"sometimes": True})
        assert set(problems(with_tiers(BRONZE, a, b))) == {"tiers[1].entryRule.all[0].metric", "tiers[2].retainRule"}


class TestImplication:
    @pytest.mark.parametrize(
        ("a", "b", "expected"),
        [
            ({"all": [spend(">=", 500)]}, {"all": [spend(">=", 400)]}, True),
            ({"all": [spend(">=", 400)]}, {"all": [spend(">=", 500)]}, False),
            ({"all": [spend(">", 500)]}, {"all": [spend(">=", 500)]}, True),
            ({"all": [spend(">=", 500)]}, {"all": [spend(">", 500)]}, False),
            ({"all": [spend(">=", 500)]}, {"all": [orders(">=", 1)]}, None),
            ({"all": [spend(">=", 500), orders(">=", 8)]}, {"all": [spend(">=", 400)]}, True),
            ({"any": [spend(">=", 500), orders(">=", 6)]}, {"any": [spend(">=", 400), orders(">=", 5)]}, True),
            ({"any": [spend(">=", 500), orders(">=", 6)]}, {"all": [spend(">=", 2000), orders(">=", 8)]}, False),
            ({"all": [spend(">=", 500)]}, ALWAYS, True),
            ({"all": [spend(">=", 100), orders(">=", 1)]}, {"any": [spend(">=", 200), orders(">=", 2)]}, False),
            (
                {"score": {"weights": {"spend_12m": 1}, "min": 10}},
                {"score": {"weights": {"spend_12m": 1, "orders_12m": 1}, "min": 5}},
                True,
            ),
            ({"score": {"weights": {"spend_12m": 1}, "min": 10}}, {"all": [spend(">=", 1)]}, None),
        ],
    )
    def test_implies(self, a: Any, b: Any, expected: bool | None) -> None:
        assert t.implies(a, b) is expected

    def test_the_shipped_policy_relations(self) -> None:
        _, silver, gold, platinum = SHIPPED.tiers
        for tier in (silver, gold, platinum):
            assert t.implies(tier.entry_rule, tier.retain_rule) is True
        assert t.implies(silver.entry_rule, gold.entry_rule) is False


# ============================================================== hysteresis


def state(tier: str | None, *, since_days: float = 365, grace_days: float | None = None, **kw: Any) -> t.TierState:
    return t.TierState(
        tier,
        since=NOW - dt.timedelta(days=since_days),
        grace_since=None if grace_days is None else NOW - dt.timedelta(days=grace_days),
        **kw,
    )


class TestDecide:
    def test_first_placement_is_by_entry_rules(self) -> None:
        d = t.decide(simple(), t.TierState(None), {"spend_12m": 2500}, NOW)
        assert (d.kind, d.tier, d.change_type) == ("place", "gold", "initial")

    def test_a_tier_unknown_to_the_policy_is_placed_again(self) -> None:
        d = t.decide(simple(), state("platinum"), {"spend_12m": 600}, NOW)
        assert (d.kind, d.tier) == ("place", "silver")

    def test_upgrade_at_once_even_during_minimum_stay_and_grace(self) -> None:
        d = t.decide(simple(), state("silver", since_days=1, grace_days=1), {"spend_12m": 2000}, NOW)
        assert (d.kind, d.tier, d.change_type, d.grace_since) == ("up", "gold", "upgrade", None)

    def test_retain_rule_keeps_the_tier_below_the_entry_threshold(self) -> None:
        d = t.decide(simple(), state("gold"), {"spend_12m": 1700}, NOW)
        assert (d.kind, d.tier, d.change_type) == ("keep", "gold", None)

    def test_grace_starts_when_the_retain_rule_first_fails(self) -> None:
        d = t.decide(simple(), state("gold"), {"spend_12m": 1500}, NOW)
        assert (d.kind, d.tier, d.change_type, d.grace_since) == ("grace", "gold", "grace", NOW)

    def test_no_downgrade_before_the_grace_period_is_over(self) -> None:
        d = t.decide(simple(grace=30), state("gold", grace_days=29), {"spend_12m": 1500}, NOW)
        assert (d.kind, d.tier, d.grace_since) == ("wait", "gold", NOW - dt.timedelta(days=29))

    def test_downgrade_after_grace_to_the_highest_tier_still_retained(self) -> None:
        d = t.decide(simple(grace=30), state("gold", grace_days=30), {"spend_12m": 450}, NOW)
        assert (d.kind, d.tier, d.change_type) == ("down", "silver", "downgrade")  # silver's retain holds at 450
        d = t.decide(simple(grace=30), state("gold", grace_days=31), {"spend_12m": 100}, NOW)
        assert d.tier == "bronze"

    def test_minimum_stay_holds_a_downgrade_back(self) -> None:
        policy = simple(grace=10, stay=90)
        d = t.decide(policy, state("gold", since_days=60, grace_days=40), {"spend_12m": 100}, NOW)
        assert d.kind == "wait"
        assert t.downgrade_at(policy, state("gold", since_days=60, grace_days=40)) == NOW + dt.timedelta(days=30)
        d = t.decide(policy, state("gold", since_days=90, grace_days=40), {"spend_12m": 100}, NOW)
        assert d.kind == "down"

    def test_grace_ends_when_the_retain_rule_holds_again(self) -> None:
        d = t.decide(simple(), state("gold", grace_days=10), {"spend_12m": 1650}, NOW)
        assert (d.kind, d.tier, d.change_type, d.grace_since) == ("recover", "gold", "grace", None)

    def test_no_flapping_around_a_threshold(self) -> None:
        """Spend oscillating around silver's entry threshold, and then around its retain threshold, over many
        evaluations a day apart: one upgrade, never a downgrade while the grace period keeps being cut short."""
        policy = simple(grace=30, stay=30)
        current = t.TierState("bronze", since=NOW - dt.timedelta(days=400))
        now = NOW
        changes: list[str] = []
        for n in range(200):
            value = 501 if n % 2 else 499 if n < 100 else (399 if n % 2 == 0 else 401)
            d = t.decide(policy, current, {"spend_12m": value}, now)
            if d.change_type in ("upgrade", "downgrade", "initial"):
                changes.append(f"{d.change_type}:{d.tier}")
            since = now if d.kind in ("place", "up", "down", "replace") else current.since
            current = t.TierState(d.tier, since=since, grace_since=d.grace_since)
            now += dt.timedelta(days=1)
        assert changes == ["upgrade:silver"]

    def test_an_active_override_wins_and_an_expired_one_gives_way_to_the_entry_rules(self) -> None:
        active = state("gold", override_tier="gold", override_expires_at=NOW + dt.timedelta(days=1))
        assert t.decide(simple(), active, {"spend_12m": 0}, NOW).kind == "override"
        expired = state("gold", override_tier="gold", override_expires_at=NOW - dt.timedelta(seconds=1))
        d = t.decide(simple(), expired, {"spend_12m": 600}, NOW)
        assert (d.kind, d.tier, d.change_type) == ("replace", "silver", "manual_override")


# ============================================================== explanation


class TestExplain:
    def test_entry_rule_and_the_gap_to_the_next_tier(self) -> None:
        e = t.explain(
            SHIPPED, state("silver"), {"spend_12m": 1500, "orders_12m": 9, "days_since_last_purchase": 150}, NOW
        )
        assert (e.tier, e.basis, e.next_tier) == ("silver", "entry", "gold")
        assert e.held_by is not None
        assert e.held_by.holds
        assert e.next is not None
        gaps = {c.metric: (c.actual, c.holds, c.gap) for c in e.next.conditions}
        assert gaps == {
            "spend_12m": (1500, False, 500),
            "orders_12m": (9, True, 0),
            "days_since_last_purchase": (150, False, 30),
        }
        text = " ".join(e.lines)
        assert "The entry rule of Silver holds" in text
        assert "To reach Gold: all of" in text
        assert "spend in the policy window >= 2000 (now 1500: 500 more needed)" in text
        assert "days since the last purchase <= 120 (now 150: 30 less needed)" in text

    def test_score_rules_give_the_points_missing(self) -> None:
        metrics = {
            "spend_12m": 5000,
            "orders_12m": 10,
            "tenure_days": 500,
            "latest_nps": 5,
            "days_since_last_purchase": 10,
        }
        e = t.explain(SHIPPED, state("gold"), metrics, NOW)
        assert e.next_tier == "platinum"
        assert e.next is not None
        assert e.next.score == pytest.approx(85)  # 50 + 15 + 10 + 10
        assert e.next.points_missing == pytest.approx(10)
        alone = {term.metric: term.needed_alone for term in e.next.terms}
        assert alone["spend_12m"] == pytest.approx(1000)
        assert alone["latest_nps"] == pytest.approx(5)
        assert "10 points missing" in " ".join(e.lines)

    def test_retain_and_grace_are_explained(self) -> None:
        kept = t.explain(simple(), state("gold"), {"spend_12m": 1700}, NOW)
        assert kept.basis == "retain"
        assert "no longer holds, but its retain rule does" in " ".join(kept.lines)
        graced = t.explain(
            simple(grace=30, stay=30), state("gold", since_days=100, grace_days=5), {"spend_12m": 100}, NOW
        )
        assert graced.basis == "grace"
        assert graced.downgrade_at == NOW + dt.timedelta(days=25)
        assert "grace period runs since 2025-05-27" in " ".join(graced.lines)

    def test_hidden_metrics_have_no_numbers(self) -> None:
        e = t.explain(simple(), state("silver"), {"spend_12m": 777}, NOW, show=lambda m: m != "spend_12m")
        assert e.held_by is not None
        assert e.held_by.conditions[0].actual is None
        assert e.next is not None
        assert e.next.conditions[0].gap is None
        text = " ".join(e.lines)
        assert "777" not in text
        assert "1223" not in text
        assert "value not shown" in text

    def test_base_top_and_override(self) -> None:
        base = t.explain(simple(), state("bronze"), {"spend_12m": 10}, NOW)
        assert base.basis == "base"
        top = t.explain(simple(), state("gold"), {"spend_12m": 5000}, NOW)
        assert top.next_tier is None
        assert "Gold is the highest tier." in top.lines
        forced = state(
            "gold",
            override_tier="gold",
            override_expires_at=NOW + dt.timedelta(days=3),
            override_reason="VIP complaint goodwill",
            override_by="user:alice",
        )
        o = t.explain(simple(), forced, {"spend_12m": 10}, NOW)
        assert o.basis == "override"
        assert "VIP complaint goodwill" in " ".join(o.lines)
