"""Score formulas (domain/surveys.py) on hand-checked answers, and the choice of an invitation's channel."""

from __future__ import annotations

import pytest

from domain.surveys import ces, csat, nps, pick_channel, reachable_channels, score, score_from_counts


class TestScores:
    def test_nps_is_promoters_minus_detractors(self) -> None:
        # 10, 9, 9 promoters; 8, 7 passives; 6, 3, 0 detractors: (3 - 3) / 8 = 0
        assert nps([10, 9, 9, 8, 7, 6, 3, 0]) == 0.0
        # 4 promoters, 1 passive, 0 detractors of 5: 80
        assert nps([9, 10, 9, 10, 8]) == 80.0
        # 1 promoter, 3 detractors of 4: (1 - 3) / 4 = -50
        assert nps([10, 6, 5, 0]) == -50.0
        assert nps([7, 8]) == 0.0
        assert nps([]) is None

    def test_nps_band_edges(self) -> None:
        assert nps([9]) == 100.0
        assert nps([8]) == 0.0
        assert nps([7]) == 0.0
        assert nps([6]) == -100.0

    def test_csat_is_the_share_of_4_and_5(self) -> None:
        assert csat([5, 4, 3, 2, 1]) == 40.0
        assert csat([4, 4, 4]) == 100.0
        assert csat([3]) == 0.0
        assert csat([5, 1, 1]) == pytest.approx(33.3333, abs=1e-3)

    def test_ces_is_the_share_of_5_to_7(self) -> None:
        assert ces([7, 6, 5, 4, 1]) == 60.0
        assert ces([4]) == 0.0
        assert ces([5]) == 100.0

    def test_counts_and_lists_agree(self) -> None:
        answers = [10, 9, 8, 6, 6, 2, 10]  # 3 promoters, 3 detractors
        assert score("nps", answers) == score_from_counts("nps", 7, 3, 3) == 0.0
        assert score_from_counts("csat", 0, 0) is None


class TestChannels:
    ALL = ("email", "sms", "web", "in_app", "phone")

    def test_contact_channels_need_the_detail_and_consent(self) -> None:
        assert reachable_channels(
            email=True, email_consent=False, phone=True, sms_consent=False, phone_consent=False
        ) == {
            "web",
            "in_app",
        }
        assert reachable_channels(
            email=False, email_consent=True, phone=True, sms_consent=True, phone_consent=True
        ) == {
            "web",
            "in_app",
            "sms",
            "phone",
        }

    def test_the_preferred_channel_first_then_the_usual_order(self) -> None:
        everything = frozenset(self.ALL)
        assert pick_channel(self.ALL, everything) == "email"
        assert pick_channel(self.ALL, everything, preferred="phone") == "phone"
        assert pick_channel(("web", "sms"), everything) == "sms"
        assert pick_channel(("email", "web"), frozenset({"web", "in_app"}), preferred="email") == "web"
        assert pick_channel(("email", "sms"), frozenset({"web", "in_app"})) is None
