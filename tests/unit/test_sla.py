"""SLA clock math (domain/sla.py), by hand: deadlines from targets, pause and resume, time left,
breaches at the boundary, escalation, auto-close, and the validation of SLA policies."""

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

    def test_partial_seconds_round_down_so_negative_means_breached(self) -> None:
        c = clock()
        half_late = T0 + H + dt.timedelta(milliseconds=500)
        assert sla.first_response_time_left(c, half_late) == -1
        assert sla.first_response_breached(c, half_late)
        assert sla.first_response_time_left(c, T0 + H - dt.timedelta(milliseconds=500)) == 0
        assert not sla.first_response_breached(c, T0 + H - dt.timedelta(milliseconds=500))

    def test_breach_is_strictly_after_the_deadline(self) -> None:
        c = clock()
        assert not sla.first_response_breached(c, T0 + H)
        assert sla.first_response_breached(c, T0 + H + dt.timedelta(microseconds=1))
        assert not sla.resolution_breached(c, T0 + 8 * H)
        assert sla.resolution_breached(c, T0 + 8 * H + dt.timedelta(microseconds=1))

    def test_a_stopped_clock_has_no_time_left_and_keeps_its_verdict(self) -> None:
        answered_late = clock(first_responded_at=T0 + 2 * H)
        later = T0 + 100 * H
        assert sla.first_response_time_left(answered_late, later) is None
        assert sla.first_response_breached(answered_late, later)
        answered_in_time = clock(first_responded_at=T0 + 30 * M)
        assert not sla.first_response_breached(answered_in_time, later)
        resolved = clock(first_responded_at=T0 + M, resolved_at=T0 + 7 * H)
        assert sla.resolution_time_left(resolved, later) is None
        assert not sla.resolution_breached(resolved, later)
        assert not sla.breached(resolved, later)

    def test_stored_flags_are_sticky(self) -> None:
        c = clock(first_responded_at=T0 + M, resolution_breached=True, resolved_at=T0 + 2 * H)
        assert sla.resolution_breached(c, T0 + 3 * H)
        assert sla.breached(c, T0 + 3 * H)

    def test_without_targets_there_is_no_clock(self) -> None:
        c = clock(first_response_due_at=None, resolution_due_at=None)
        assert sla.first_response_time_left(c, T0 + 1000 * H) is None
        assert sla.resolution_time_left(c, T0 + 1000 * H) is None
        assert not sla.breached(c, T0 + 1000 * H)


class TestPauses:
    def test_waiting_on_the_customer_freezes_time_left_and_moves_the_deadline(self) -> None:
        # answered at 0:30, waiting on the customer from 2:00 to 5:00, then resolved at 10:00
        c = sla.pause(clock(first_responded_at=T0 + 30 * M), T0 + 2 * H)
        assert c.paused_since == T0 + 2 * H
        assert sla.pause(c, T0 + 3 * H) == c  # pausing twice changes nothing
        for now in (T0 + 2 * H, T0 + 4 * H, T0 + 30 * H):
            assert sla.resolution_time_left(c, now) == 6 * 3600  # frozen at 8 h - 2 h
            assert not sla.resolution_breached(c, now)  # no breach while waiting, however long
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
        assert not sla.resolution_breached(done, T0 + 50 * H)
        assert sla.resolution_work_seconds(done) == 7 * 3600  # 10 h open, 3 h waiting
        assert sla.first_response_seconds(done) == 30 * 60

    def test_a_breach_before_the_pause_is_still_a_breach(self) -> None:
        c = sla.pause(clock(first_responded_at=T0 + M), T0 + 9 * H)  # late by 1 h when it paused
        assert sla.resolution_breached(c, T0 + 9 * H)
        assert sla.resolution_time_left(c, T0 + 20 * H) == -3600

    def test_the_first_response_clock_never_pauses(self) -> None:
        c = sla.pause(clock(), T0 + 10 * M)  # not reachable through the state machine, but still
        assert sla.first_response_time_left(c, T0 + 2 * H) == -3600


class TestSweeps:
    def reason(self, c: sla.Clock, now: dt.datetime, severity: str = "medium", status: str = "open") -> str | None:
        return sla.escalation_reason(
            c, status=status, severity=severity, escalated=False, now=now, critical_fraction=0.5
        )

    def test_breaches_escalate_whatever_the_severity(self) -> None:
        assert self.reason(clock(), T0 + 2 * H, "low", "new") == sla.FIRST_RESPONSE_BREACHED
        assert self.reason(clock(first_responded_at=T0 + M), T0 + 9 * H) == sla.RESOLUTION_BREACHED
        assert self.reason(clock(first_responded_at=T0 + M), T0 + 7 * H) is None

    def test_critical_complaints_escalate_at_half_their_time(self) -> None:
        assert self.reason(clock(), T0 + 29 * M, "critical", "new") is None
        assert self.reason(clock(), T0 + 30 * M, "critical", "new") == sla.CRITICAL_FIRST_RESPONSE_AT_RISK
        answered = clock(first_responded_at=T0 + M)
        assert self.reason(answered, T0 + 3 * H, "critical") is None
        assert self.reason(answered, T0 + 4 * H, "critical") == sla.CRITICAL_RESOLUTION_AT_RISK
        # 2 h of waiting on the customer do not count as used time
        waited = clock(first_responded_at=T0 + M, paused_seconds=7200, resolution_due_at=T0 + 10 * H)
        assert self.reason(waited, T0 + 5 * H, "critical") is None
        assert self.reason(waited, T0 + 6 * H, "critical") == sla.CRITICAL_RESOLUTION_AT_RISK

    def test_done_or_escalated_complaints_do_not_escalate(self) -> None:
        late = clock()
        for status in ("resolved", "closed"):
            assert self.reason(late, T0 + 50 * H, status=status) is None
        assert (
            sla.escalation_reason(
                late, status="open", severity="low", escalated=True, now=T0 + 50 * H, critical_fraction=0.5
            )
            is None
        )

    def test_auto_close_after_n_days_resolved(self) -> None:
        resolved = T0
        assert not sla.auto_close_due("resolved", resolved, T0 + dt.timedelta(days=7) - M, 7)
        assert sla.auto_close_due("resolved", resolved, T0 + dt.timedelta(days=7), 7)
        assert not sla.auto_close_due("open", resolved, T0 + dt.timedelta(days=70), 7)
        assert not sla.auto_close_due("resolved", None, T0 + dt.timedelta(days=70), 7)
