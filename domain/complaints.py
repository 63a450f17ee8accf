"""The complaint lifecycle as a state machine.

new → open → pending_customer | on_hold → (back to) open → resolved → closed;
resolved → open is a reopen (counted); nothing returns to new; closed is final.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import IllegalTransition, Invalid, ValidationFailed

TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "resolved"}),
    "open": frozenset({"pending_customer", "on_hold", "resolved"}),
    "pending_customer": frozenset({"open", "resolved"}),
    "on_hold": frozenset({"open", "resolved"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset(),
}
PAUSED = frozenset({"pending_customer"})  # the SLA clock stops while waiting on the customer
# What an event row records: a transition, what the SLA sweep saw (a breach, an escalation), or work on the
# complaint that leaves its status as it is (a note, a reassignment: domain/queues.py).
COMPLAINT_EVENT_KINDS = ("transition", "sla_breach", "escalation", "note", "assignment")


@dataclass(frozen=True)
class ComplaintState:
    status: str
    assignee: str | None


@dataclass(frozen=True)
class Transition:
    to: str
    assignee: str | None = None
    resolution_code: str | None = None
    root_cause_code: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class TransitionOutcome:
    from_status: str
    to_status: str
    is_reopen: bool
    is_first_response: bool
    pauses: bool
    resumes: bool

    @property
    def changes_customer_facts(self) -> bool:
        """Whether the customer's metrics move: a complaint stops (resolved) or starts again (reopened)
        counting as open. Other moves (answered, waiting, on hold, closed after resolved) change no metric;
        a breach they reveal is reported by the transition itself."""
        return self.to_status == "resolved" or self.is_reopen


def check_transition(state: ComplaintState, t: Transition) -> TransitionOutcome:
    """Decide whether a transition is legal; raise a domain error (and change nothing) if not."""
    if t.to not in TRANSITIONS:
        raise ValidationFailed(f"unknown status '{t.to}'", field="to")
    if t.to not in TRANSITIONS[state.status]:
        allowed = ", ".join(sorted(TRANSITIONS[state.status])) or (
            "none (closed is final: a new contact opens a follow-up complaint, openComplaint with followUpOf)"
        )
        raise IllegalTransition(f"cannot go from {state.status} to {t.to}; allowed: {allowed}", field="to")
    if t.to == "resolved":
        errors = []
        if not (t.assignee or state.assignee):
            errors.append(ValidationFailed("resolving needs an assignee", field="assignee"))
        if not t.resolution_code:
            errors.append(ValidationFailed("resolving needs a resolution code", field="resolutionCode"))
        if not t.root_cause_code:
            errors.append(ValidationFailed("resolving needs a root-cause code", field="rootCauseCode"))
        if errors:
            raise Invalid(errors)
    return TransitionOutcome(
        from_status=state.status,
        to_status=t.to,
        is_reopen=state.status == "resolved" and t.to == "open",
        is_first_response=state.status == "new",
        pauses=t.to in PAUSED and state.status not in PAUSED,
        resumes=state.status in PAUSED and t.to not in PAUSED,
    )


def check_follow_up(prior_status: str) -> None:
    """A follow-up complaint links a new contact to a *closed* one; anything still open is reopened
    (resolved → open) or worked on instead."""
    if prior_status == "closed":
        return
    hint = "reopen it (transition to open)" if prior_status == "resolved" else "add to it instead"
    raise ValidationFailed(
        f"only a closed complaint gets a follow-up; this one is {prior_status}: {hint}", field="followUpOf"
    )
