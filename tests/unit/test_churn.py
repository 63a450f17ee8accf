"""The churn rules (domain/churn.py), each with hand-computed inputs: which signals fire, with which
numbers, and the score and level they add up to."""

from __future__ import annotations

import pytest

from domain.churn import GREEN, MODEL, RED, YELLOW, ChurnInputs, assess, without_money


def codes(inputs: ChurnInputs) -> list[str]:
    return [s.code for s in assess(inputs).signals]


def signal(inputs: ChurnInputs, code: str) -> dict[str, object]:
    found = [s for s in assess(inputs).signals if s.code == code]
    assert found, f"{code} did not fire"
    return found[0].to_json()


class TestSilence:
    RHYTHM = {"orders": 5, "median_gap_days": 30.0, "gaps": 4}

    def test_quiet_for_longer_than_twice_the_own_rhythm(self) -> None:
        s = signal(ChurnInputs(**self.RHYTHM, days_since_last_purchase=75.0), "silence")
        assert s["weight"] == 30
        assert s["values"] == {
            "daysSinceLastPurchase": 75.0,
            "rhythmDays": 30.0,
            "ownRhythm": True,
            "ratio": 2.5,
            "threshold": 2.0,
        }
        assert s["message"] == "no purchase for 75 days, 2.5x the usual 30-day gap"

    @pytest.mark.parametrize(("days", "fires"), [(60.0, False), (60.5, True), (61.0, True)])
    def test_the_threshold_is_strict(self, days: float, fires: bool) -> None:
        assert ("silence" in codes(ChurnInputs(**self.RHYTHM, days_since_last_purchase=days))) is fires

    def test_a_long_silence_weighs_more(self) -> None:
        s = signal(ChurnInputs(**self.RHYTHM, days_since_last_purchase=121.0), "silence")
        assert (s["weight"], s["values"]["threshold"]) == (45, 4.0)  # type: ignore[index]

    def test_frequent_buyers_are_not_alarmed_after_a_few_days(self) -> None:
        weekly = ChurnInputs(orders=20, median_gap_days=2.0, gaps=19, days_since_last_purchase=10.0)
        assert codes(weekly) == []  # the rhythm is at least 7 days: 10 / 7 < 2
        assert "silence" in codes(ChurnInputs(orders=20, median_gap_days=2.0, gaps=19, days_since_last_purchase=15.0))

    def test_without_a_rhythm_of_its_own_the_default_applies(self) -> None:
        s = signal(ChurnInputs(orders=1, gaps=0, days_since_last_purchase=181.0), "silence")
        assert s["values"]["ownRhythm"] is False  # type: ignore[index]
        assert s["values"]["rhythmDays"] == 90.0  # type: ignore[index]
        assert codes(ChurnInputs(orders=1, gaps=0, days_since_last_purchase=179.0)) == []
        # one gap is no rhythm either
        assert codes(ChurnInputs(orders=2, gaps=1, median_gap_days=10.0, days_since_last_purchase=100.0)) == []

    def test_no_purchase_no_silence(self) -> None:
        assert codes(ChurnInputs()) == []


class TestSpendDrop:
    def test_spend_halved_against_the_window_before(self) -> None:
        s = signal(ChurnInputs(spend_prior=200.0, spend_recent=80.0), "spend_drop")
        assert s["weight"] == 20
        assert s["values"] == {"dropPct": 60.0, "windowDays": 90, "recentSpend": 80.0, "priorSpend": 200.0}
        assert "fell 60%" in str(s["message"])
        assert "80" not in str(s["message"])  # amounts are in the values only (left out for some callers)

    @pytest.mark.parametrize(
        ("prior", "recent", "fires"), [(200.0, 100.0, True), (200.0, 100.01, False), (49.99, 0.0, False)]
    )
    def test_thresholds(self, prior: float, recent: float, fires: bool) -> None:
        assert ("spend_drop" in codes(ChurnInputs(spend_prior=prior, spend_recent=recent))) is fires


class TestComplaintsAndScores:
    def test_repeated_breached_and_reopened_complaints(self) -> None:
        got = assess(ChurnInputs(complaints=2, breached_complaints=1, reopened_complaints=1))
        assert [(s.code, s.weight) for s in got.signals] == [
            ("repeated_complaints", 15),
            ("breached_complaints", 15),
            ("reopened_complaints", 10),
        ]
        assert (got.score, got.level) == (40, YELLOW)
        assert codes(ChurnInputs(complaints=1)) == []

    @pytest.mark.parametrize(
        ("nps", "csat", "fires"), [(6, None, True), (7, None, False), (None, 2, True), (None, 3, False), (0, 1, True)]
    )
    def test_detractor(self, nps: int | None, csat: int | None, fires: bool) -> None:
        assert ("detractor" in codes(ChurnInputs(latest_nps=nps, latest_csat=csat))) is fires

    def test_falling_scores(self) -> None:
        s = signal(ChurnInputs(latest_nps=7, previous_nps=9), "falling_score")
        assert s["message"] == "score fell: NPS 9 → 7"
        assert codes(ChurnInputs(latest_nps=7, previous_nps=8)) == []
        assert codes(ChurnInputs(latest_csat=4, previous_csat=5)) == ["falling_score"]
        assert codes(ChurnInputs(latest_nps=10, previous_nps=3)) == []  # rising

    def test_a_recent_downgrade(self) -> None:
        s = signal(ChurnInputs(days_since_downgrade=30.0, downgrade="gold→silver"), "tier_downgrade")
        assert s["values"] == {"daysAgo": 30.0, "change": "gold→silver"}
        assert s["message"] == "tier downgrade gold→silver 30 days ago"
        assert codes(ChurnInputs(days_since_downgrade=91.0, downgrade="gold→silver")) == []


class TestLevels:
    def test_nothing_fires_green(self) -> None:
        got = assess(ChurnInputs(orders=3, gaps=2, median_gap_days=20.0, days_since_last_purchase=5.0))
        assert (got.level, got.score, got.signals, got.model_version) == (GREEN, 0, (), MODEL.version)

    def test_silence_and_a_spend_drop_make_red(self) -> None:
        got = assess(
            ChurnInputs(
                orders=6, gaps=5, median_gap_days=30.0, days_since_last_purchase=70.0, spend_prior=300, spend_recent=0
            )
        )
        assert [s.code for s in got.signals] == ["silence", "spend_drop"]
        assert (got.score, got.level) == (50, RED)

    def test_everything_at_once_is_capped_at_100_strongest_first(self) -> None:
        got = assess(
            ChurnInputs(
                orders=6,
                gaps=5,
                median_gap_days=10.0,
                days_since_last_purchase=100.0,
                spend_prior=500,
                spend_recent=0,
                complaints=3,
                breached_complaints=2,
                reopened_complaints=1,
                latest_nps=2,
                previous_nps=9,
                days_since_downgrade=3.0,
                downgrade="gold→silver",
            )
        )
        weights = [s.weight for s in got.signals]
        assert sum(weights) == 45 + 20 + 15 + 15 + 10 + 25 + 10 + 20
        assert weights == sorted(weights, reverse=True)
        assert (got.score, got.level) == (100, RED)

    def test_yellow_from_25(self) -> None:
        assert assess(ChurnInputs(latest_nps=3)).level == YELLOW  # 25
        assert assess(ChurnInputs(complaints=2)).level == GREEN  # 15

    def test_money_can_be_left_out(self) -> None:
        signals = assess(ChurnInputs(spend_prior=200.0, spend_recent=0.0, latest_nps=1)).signals_json()
        stripped = without_money(signals)
        assert [s["code"] for s in stripped] == ["detractor", "spend_drop"]
        assert stripped[1]["values"] == {"dropPct": 100.0, "windowDays": 90}
        assert signals[1]["values"]["priorSpend"] == 200.0  # the stored signals keep them
