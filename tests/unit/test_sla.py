"""SLA clock math (domain/sla.py), by hand: deadlines from targets, pause and resume (whole seconds,
truncated), time left, auto-close, and the validation of SLA policies. Breaches and escalation are
decided in SQL (infra/repos/clocks.py): tests/integration/test_sla_clocks.py."""

from __future__ import annotations

import datetime as dt

import pytest

from domain import sla
from domain.errors import Invalid

T0 = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def clock(**kw: object) -> sla.Clock:
    """A complaint opened at T0 with 1 h to the first response and 8 h to resolution."""
    values: dict[str, object] = {"opened_at": T0, "first_response_due_at": T0 + H, "resolution_due_at": T0 + 8 * H}
    values.update(kw)
    return sla.Clock(**values)  # type: ignore[arg-type]


class TestTargets:
    TARGETS = (
        sla.SlaTarget("*", "high", 120, 600),
        sla.SlaTarget("gold", "high", 30, 240),
        sla.SlaTarget("*", "low", 600, 6000),
    )

    def test_the_tiers_own_target_wins_over_the_wildcard(self) -> None:
        assert sla.target_for(self.TARGETS, "gold", "high") == self.TARGETS[1]
        assert sla.target_for(self.TARGETS, "bronze", "high") == self.TARGETS[0]
        assert sla.target_for(self.TARGETS, None, "high") == self.TARGETS[0]
        assert sla.target_for(self.TARGETS, "gold", "critical") is None

    def test_deadlines_are_the_targets_after_opening(self) -> None:
        first, resolution = sla.deadlines(T0, self.TARGETS[1])
        assert (first, resolution) == (T0 + 30 * M, T0 + 4 * H)

    def test_valid_policy_with_a_wildcard_covers_every_tier(self) -> None:
        targets = [sla.SlaTarget("*", s, 60, 600) for s in ("low", "medium", "high", "critical")]
        sla.validate_targets([*targets, sla.SlaTarget("gold", "critical", 15, 120)], ["bronze", "gold"])

    def test_every_problem_is_listed(self) -> None:
        targets = [
            sla.SlaTarget("diamond", "low", 60, 600),  # unknown tier
            sla.SlaTarget("bronze", "urgent", 60, 600),  # unknown severity
            sla.SlaTarget("bronze", "low", 0, 600),  # zero minutes
            sla.SlaTarget("bronze", "medium", 600, 60),  # resolution before first response
            sla.SlaTarget("bronze", "high", 60, 600),
            sla.SlaTarget("bronze", "high", 30, 300),  # duplicate
        ]
        with pytest.raises(Invalid) as exc:
            sla.validate_targets(targets, ["bronze"])
        fields = [e.field for e in exc.value.errors]
        assert fields == [
            "targets[0].tier",
            "targets[1].severity",
            "targets[2].firstResponseMinutes",
            "targets[3].resolutionMinutes",
            "targets[5]",
            "targets",  # bronze x critical has no target
        ]
        assert "bronze x critical" in exc.value.errors[-1].message

    def test_an_empty_policy_is_refused(self) -> None:
        with pytest.raises(Invalid) as exc:
            sla.validate_targets([], ["bronze"])
        assert [e.field for e in exc.value.errors] == ["targets"]

    def test_over_a_year_is_a_typo(self) -> None:
        with pytest.raises(Invalid):
            sla.validate_targets(
                [sla.SlaTarget("*", s, 60, sla.MAX_TARGET_MINUTES + 1) for s in ("low", "medium", "high", "critical")],
                [],
            )


class TestClocks:
    def test_time_left_counts_down_and_goes_negative(self) -> None:
        c = clock()
        assert sla.first_response_time_left(c, T0 + 15 * M) == 45 * 60
        assert sla.first_response_time_left(c, T0 + H) == 0
        assert sla.first_response_time_left(c, T0 + H + dt.timedelta(seconds=1)) == -1
        assert sla.resolution_time_left(c, T0 + 10 * H) == -2 * 3600

    def test_partial_seconds_round_down_so_negative_means_late(self) -> None:
        c = clock()
        half_late = T0 + H + dt.timedelta(milliseconds=500)
        assert sla.first_response_time_left(c, half_late) == -1
        assert sla.first_response_time_left(c, T0 + H - dt.timedelta(milliseconds=500)) == 0

    def test_a_stopped_clock_has_no_time_left(self) -> None:
        answered_late = clock(first_responded_at=T0 + 2 * H)
        later = T0 + 100 * H
        assert sla.first_response_time_left(answered_late, later) is None
        resolved = clock(first_responded_at=T0 + M, resolved_at=T0 + 7 * H)
        assert sla.resolution_time_left(resolved, later) is None

    def test_without_targets_there_is_no_clock(self) -> None:
        c = clock(first_response_due_at=None, resolution_due_at=None)
        assert sla.first_response_time_left(c, T0 + 1000 * H) is None
        assert sla.resolution_time_left(c, T0 + 1000 * H) is None


class TestPauses:
    def test_waiting_on_the_customer_freezes_time_left_and_moves_the_deadline(self) -> None:
        # answered at 0:30, waiting on the customer from 2:00 to 5:00, then resolved at 10:00
        c = sla.pause(clock(first_responded_at=T0 + 30 * M), T0 + 2 * H)
        assert c.paused_since == T0 + 2 * H
        assert sla.pause(c, T0 + 3 * H) == c  # pausing twice changes nothing
        for now in (T0 + 2 * H, T0 + 4 * H, T0 + 30 * H):
            assert sla.resolution_time_left(c, now) == 6 * 3600  # frozen at 8 h - 2 h
        assert sla.effective_resolution_due(c, T0 + 4 * H) == T0 + 10 * H
        assert sla.paused_total_seconds(c, T0 + 4 * H) == 2 * 3600

        resumed = sla.resume(c, T0 + 5 * H)
        assert resumed.paused_since is None
        assert resumed.paused_seconds == 3 * 3600
        assert resumed.resolution_due_at == T0 + 11 * H  # 8 h of work + 3 h waiting
        assert sla.resume(resumed, T0 + 6 * H) == resumed
        assert sla.resolution_time_left(resumed, T0 + 9 * H) == 2 * 3600
        assert sla.effective_resolution_due(resumed, T0 + 9 * H) == T0 + 11 * H

        done = sla.Clock(**{**resumed.__dict__, "resolved_at": T0 + 10 * H})
        assert sla.resolution_work_seconds(done) == 7 * 3600  # 10 h open, 3 h waiting
        assert sla.first_response_seconds(done) == 30 * 60

    def test_a_pause_after_the_deadline_keeps_the_time_left_negative(self) -> None:
        c = sla.pause(clock(first_responded_at=T0 + M), T0 + 9 * H)  # late by 1 h when it paused
        assert sla.resolution_time_left(c, T0 + 20 * H) == -3600
        resumed = sla.resume(c, T0 + 10 * H)  # the deadline moves by the hour waited: still 1 h late
        assert resumed.resolution_due_at == T0 + 9 * H
        assert sla.resolution_time_left(resumed, T0 + 10 * H) == -3600

    def test_a_pause_across_the_deadline_moves_it_past_the_resume(self) -> None:
        c = sla.pause(clock(first_responded_at=T0 + M), T0 + 7 * H)  # 1 h left when it paused
        resumed = sla.resume(c, T0 + 12 * H)  # waited 5 h, across the 8 h deadline
        assert resumed.resolution_due_at == T0 + 13 * H
        assert sla.resolution_time_left(resumed, T0 + 12 * H) == 3600  # the hour left is still there

    def test_pauses_count_whole_seconds_truncated_and_the_deadline_moves_by_as_much(self) -> None:
        start = clock(first_responded_at=T0 + M)
        resumed = sla.resume(sla.pause(start, T0 + H), T0 + H + dt.timedelta(seconds=1, milliseconds=900))
        assert resumed.paused_seconds == 1  # 1.9 s counts 1 s, not 2 (rounding would credit 0.1 s unearned)
        assert resumed.resolution_due_at == T0 + 8 * H + dt.timedelta(seconds=1)
        # the invariant: deadline - opened - paused = the target, whatever the fractions
        assert (resumed.resolution_due_at - T0).total_seconds() - resumed.paused_seconds == 8 * 3600

    def test_sub_second_pauses_count_nothing_however_many(self) -> None:
        c = clock(first_responded_at=T0 + M)
        at = T0 + H
        for _ in range(5):  # five pauses of 0.999 s each
            c = sla.resume(sla.pause(c, at), at + dt.timedelta(milliseconds=999))
            at += dt.timedelta(seconds=10)
        assert c.paused_seconds == 0
        assert c.resolution_due_at == T0 + 8 * H

    def test_multiple_pauses_add_up(self) -> None:
        c = clock(first_responded_at=T0 + M)
        c = sla.resume(sla.pause(c, T0 + H), T0 + 2 * H + dt.timedelta(milliseconds=600))  # 3600.6 s -> 3600
        c = sla.resume(sla.pause(c, T0 + 3 * H), T0 + 3 * H + dt.timedelta(seconds=30))  # 30 s
        assert c.paused_seconds == 3630
        assert c.resolution_due_at == T0 + 8 * H + dt.timedelta(seconds=3630)
        assert sla.paused_total_seconds(sla.pause(c, T0 + 4 * H), T0 + 4 * H + dt.timedelta(seconds=9.9)) == 3639

    def test_a_resume_before_the_pause_counts_nothing(self) -> None:
        c = sla.pause(clock(first_responded_at=T0 + M), T0 + H)  # clocks of two servers slightly apart
        resumed = sla.resume(c, T0 + H - dt.timedelta(milliseconds=5))
        assert (resumed.paused_seconds, resumed.resolution_due_at) == (0, T0 + 8 * H)

    def test_the_first_response_clock_never_pauses(self) -> None:
        c = sla.pause(clock(), T0 + 10 * M)  # not reachable through the state machine, but still
        assert sla.first_response_time_left(c, T0 + 2 * H) == -3600


class TestAutoClose:
    def test_auto_close_after_n_days_resolved(self) -> None:
        resolved = T0
        assert not sla.auto_close_due("resolved", resolved, T0 + dt.timedelta(days=7) - M, 7)
        assert sla.auto_close_due("resolved", resolved, T0 + dt.timedelta(days=7), 7)
        assert not sla.auto_close_due("open", resolved, T0 + dt.timedelta(days=70), 7)
        assert not sla.auto_close_due("resolved", None, T0 + dt.timedelta(days=70), 7)
