"""SLA clocks of a complaint: deadlines, pauses, time left, breaches, escalation and auto-close.

Pure functions over a ``Clock`` (the SLA columns of one complaint). One authority per rule:

- **pause and resume** are decided here only: the complaints repository calls ``pause``/``resume``
  with the transaction's ``now()`` and writes what they return;
- **breach** (and escalation) is decided in SQL only (infra/sla.py): the sweep, the ``breached``
  filter, the reports and the API's ``breached`` fields (selected with every complaint row) all use
  those expressions; nothing here re-decides it.

**Rounding**: a pause counts in whole seconds, truncated (1.9 s of waiting counts 1 s), and the
resolution deadline moves by exactly the seconds counted, so ``resolution_due_at - opened_at -
paused_seconds`` stays the target. Truncating never credits waiting time that did not happen: the
business side loses at most a second per pause, never the customer. Time left is truncated towards
minus infinity (floor) for the same reason: -0.4 s shows as -1, never as 0 once late.

- **First-response clock**: runs from ``opened_at`` until ``first_responded_at`` (the first
  transition out of ``new``), against ``first_response_due_at``. It never pauses: a complaint can
  only wait on the customer after someone answered it.
- **Resolution clock**: runs from ``opened_at`` until ``resolved_at``, against
  ``resolution_due_at``. It stops while the complaint waits on the customer (``pending_customer``,
  ``paused_since`` set); on resume the pause is added to ``paused_seconds`` and the deadline moves
  later by as much. ``on_hold`` is our side: the clock keeps running. A reopen starts it again from
  where it was: the time a wrongly resolved complaint spent in ``resolved`` counts.
- **Breached** (decided in infra/sla.py): the stored flag, or the clock stopped (or *now*, while
  running; the start of the pause, while paused) strictly after its deadline. Flags are sticky.
- **Time left**: deadline - now (- the running pause), in whole seconds rounded down; negative when
  late; ``None`` once the clock stopped, or without a target.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from domain.enums import SEVERITIES
from domain.errors import Invalid, ValidationFailed

ANY_TIER = "*"
ACTIVE_STATUSES = frozenset({"new", "open", "pending_customer", "on_hold"})
MAX_TARGET_MINUTES = 366 * 24 * 60  # a year: anything longer is a typo, not a target

# Why a complaint was escalated: stable codes (stored in the event note through ESCALATION_NOTES).
FIRST_RESPONSE_BREACHED = "first_response_breached"
RESOLUTION_BREACHED = "resolution_breached"
CRITICAL_FIRST_RESPONSE_AT_RISK = "critical_first_response_at_risk"
CRITICAL_RESOLUTION_AT_RISK = "critical_resolution_at_risk"
ESCALATION_NOTES = {
    FIRST_RESPONSE_BREACHED: "escalated: first-response SLA breached",
    RESOLUTION_BREACHED: "escalated: resolution SLA breached",
    CRITICAL_FIRST_RESPONSE_AT_RISK: "escalated: critical complaint, first-response deadline at risk",
    CRITICAL_RESOLUTION_AT_RISK: "escalated: critical complaint, resolution deadline at risk",
}
BREACH_NOTES = {
    "first_response": "first-response SLA breached",
    "resolution": "resolution SLA breached",
}


@dataclass(frozen=True)
class SlaTarget:
    tier: str  # a tier code, or '*' for any tier without its own target
    severity: str
    first_response_minutes: int
    resolution_minutes: int


@dataclass(frozen=True)
class Clock:
    opened_at: dt.datetime
    first_response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None
    first_responded_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None
    paused_since: dt.datetime | None = None
    paused_seconds: int = 0
    first_response_breached: bool = False
    resolution_breached: bool = False


CLOCK_FIELDS = tuple(Clock.__dataclass_fields__)


# ---------------------------------------------------------------- targets


def target_for(targets: Iterable[SlaTarget], tier: str | None, severity: str) -> SlaTarget | None:
    """The target of a tier and severity: the tier's own wins over the '*' one."""
    fallback = None
    for t in targets:
        if t.severity != severity:
            continue
        if tier is not None and t.tier == tier:
            return t
        if t.tier == ANY_TIER:
            fallback = t
    return fallback


def deadlines(opened_at: dt.datetime, target: SlaTarget) -> tuple[dt.datetime, dt.datetime]:
    return (
        opened_at + dt.timedelta(minutes=target.first_response_minutes),
        opened_at + dt.timedelta(minutes=target.resolution_minutes),
    )


def missing_coverage(targets: Iterable[SlaTarget], tiers: Sequence[str]) -> list[tuple[str, str]]:
    """(tier, severity) pairs no target covers, for the tiers given."""
    items = list(targets)
    return [(tier, sev) for tier in tiers for sev in SEVERITIES if target_for(items, tier, sev) is None]


def validate_targets(targets: Sequence[SlaTarget], tiers: Sequence[str]) -> None:
    """Raise ``Invalid`` listing every problem: unknown tier or severity, bad or inverted minutes,
    duplicates, and (tier, severity) pairs of ``tiers`` left without a target."""
    errors: list[ValidationFailed] = []
    seen: set[tuple[str, str]] = set()
    if not targets:
        errors.append(ValidationFailed("an SLA policy needs targets", field="targets"))
    for n, t in enumerate(targets):
        where = f"targets[{n}]"
        if t.tier != ANY_TIER and t.tier not in tiers:
            known = ", ".join([*tiers, ANY_TIER])
            errors.append(ValidationFailed(f"unknown tier '{t.tier}' (known: {known})", field=f"{where}.tier"))
        if t.severity not in SEVERITIES:
            errors.append(ValidationFailed(f"unknown severity '{t.severity}'", field=f"{where}.severity"))
        for name, minutes in (
            ("firstResponseMinutes", t.first_response_minutes),
            ("resolutionMinutes", t.resolution_minutes),
        ):
            if not 1 <= minutes <= MAX_TARGET_MINUTES:
                errors.append(ValidationFailed(f"{name} must be 1 to {MAX_TARGET_MINUTES}", field=f"{where}.{name}"))
        if t.resolution_minutes < t.first_response_minutes:
            errors.append(
                ValidationFailed(
                    "resolution cannot be due before the first response", field=f"{where}.resolutionMinutes"
                )
            )
        key = (t.tier, t.severity)
        if key in seen:
            errors.append(ValidationFailed(f"a second target for {t.tier} x {t.severity}", field=where))
        seen.add(key)
    if targets:
        gaps = missing_coverage(targets, tiers)
        if gaps:
            listed = ", ".join(f"{tier} x {sev}" for tier, sev in gaps)
            errors.append(ValidationFailed(f"no target for {listed} (add them, or a '*' target)", field="targets"))
    if errors:
        raise Invalid(errors)


# ---------------------------------------------------------------- clocks


def _seconds(delta: dt.timedelta) -> int:
    return math.floor(delta.total_seconds())


def pause(clock: Clock, now: dt.datetime) -> Clock:
    """Waiting on the customer: the resolution clock stops at ``now``."""
    return clock if clock.paused_since is not None else replace(clock, paused_since=now)


def resume(clock: Clock, now: dt.datetime) -> Clock:
    """The customer answered: the pause is counted and the resolution deadline moves by as much."""
    if clock.paused_since is None:
        return clock
    paused = max(_seconds(now - clock.paused_since), 0)
    due = clock.resolution_due_at + dt.timedelta(seconds=paused) if clock.resolution_due_at else None
    return replace(clock, paused_since=None, paused_seconds=clock.paused_seconds + paused, resolution_due_at=due)


def paused(clock: Clock) -> bool:
    """The resolution clock is stopped: waiting on the customer (and not resolved since)."""
    return clock.paused_since is not None and clock.resolved_at is None


def paused_total_seconds(clock: Clock, now: dt.datetime) -> int:
    """Time spent waiting on the customer so far, the running pause included."""
    running = max(_seconds(now - clock.paused_since), 0) if clock.paused_since is not None else 0
    return clock.paused_seconds + running


def effective_resolution_due(clock: Clock, now: dt.datetime) -> dt.datetime | None:
    """The resolution deadline as it stands now: while paused it moves on with the pause."""
    if clock.resolution_due_at is None or clock.paused_since is None or clock.resolved_at is not None:
        return clock.resolution_due_at
    return clock.resolution_due_at + max(now - clock.paused_since, dt.timedelta(0))


def first_response_time_left(clock: Clock, now: dt.datetime) -> int | None:
    if clock.first_response_due_at is None or clock.first_responded_at is not None:
        return None
    return _seconds(clock.first_response_due_at - now)


def resolution_time_left(clock: Clock, now: dt.datetime) -> int | None:
    if clock.resolution_due_at is None or clock.resolved_at is not None:
        return None
    return _seconds(clock.resolution_due_at - (clock.paused_since or now))


def first_response_seconds(clock: Clock) -> int | None:
    """How long the first response took (None until there is one)."""
    return None if clock.first_responded_at is None else _seconds(clock.first_responded_at - clock.opened_at)


def resolution_work_seconds(clock: Clock) -> int | None:
    """How long the resolution took, the time waiting on the customer excluded (None until resolved)."""
    if clock.resolved_at is None:
        return None
    return _seconds(clock.resolved_at - clock.opened_at) - clock.paused_seconds


# ---------------------------------------------------------------- auto-close


def auto_close_due(status: str, resolved_at: dt.datetime | None, now: dt.datetime, days: int) -> bool:
    """A resolved complaint nobody reopened for ``days`` closes by itself."""
    return status == "resolved" and resolved_at is not None and resolved_at <= now - dt.timedelta(days=days)
