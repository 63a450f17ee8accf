"""Rules of the work queues and the name search (issue 16): what a queue filter, a search term, a note
and an assignee may be. Pure: the use-cases (api/usecases/queues.py) check their commands here before
any SQL runs, and every problem comes back at once (``Invalid``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

from domain import limits
from domain.churn import MODEL
from domain.enums import CHURN_LEVELS
from domain.errors import Conflict, Invalid, ValidationFailed

# The churn queue: customers at risk unless the caller asks for other levels.
AT_RISK = ("red", "yellow")
SIGNAL_CODES = frozenset(MODEL.weights)
MAX_DUE_WITHIN_HOURS = 24 * 90
SEARCH_MIN, SEARCH_MAX = 2, 100
MAX_SEARCH_RESULTS = 50
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_NOTE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\ufeff]")  # newlines and tabs are fine


def churn_filter_problems(
    levels: Sequence[str] | None,
    min_score: int | None,
    max_score: int | None,
    signals: Sequence[str] | None,
) -> list[ValidationFailed]:
    errors = []
    for level in levels or ():
        if level not in CHURN_LEVELS:
            errors.append(ValidationFailed(f"a level is one of {', '.join(CHURN_LEVELS)}", field="filter.levels"))
    for name, score in (("minScore", min_score), ("maxScore", max_score)):
        if score is not None and not 0 <= score <= 100:
            errors.append(ValidationFailed("a churn score is 0 to 100", field=f"filter.{name}"))
    if min_score is not None and max_score is not None and min_score > max_score:
        errors.append(ValidationFailed("minScore is above maxScore", field="filter.minScore"))
    unknown = sorted(set(signals or ()) - SIGNAL_CODES)
    if unknown:
        errors.append(
            ValidationFailed(
                f"unknown signal {', '.join(unknown)}; known: {', '.join(sorted(SIGNAL_CODES))}",
                field="filter.signals",
            )
        )
    return errors


def check_churn_filter(
    levels: Sequence[str] | None, min_score: int | None, max_score: int | None, signals: Sequence[str] | None
) -> None:
    errors = churn_filter_problems(levels, min_score, max_score, signals)
    if errors:
        raise Invalid(errors)


def check_due_within(hours: int | None) -> None:
    if hours is not None and not 1 <= hours <= MAX_DUE_WITHIN_HOURS:
        raise ValidationFailed(f"dueWithinHours is 1 to {MAX_DUE_WITHIN_HOURS}", field="filter.dueWithinHours")


def search_term(value: str) -> str:
    """The term of a name search: whitespace collapsed, 2 to 100 characters, no control characters."""
    term = " ".join(value.split())
    if _CONTROL.search(term):
        raise ValidationFailed("a search term cannot contain control characters", field="query")
    if not SEARCH_MIN <= len(term) <= SEARCH_MAX:
        raise ValidationFailed(f"a search term has {SEARCH_MIN} to {SEARCH_MAX} characters", field="query")
    return term


def search_size(first: int) -> int:
    if not 1 <= first <= MAX_SEARCH_RESULTS:
        raise ValidationFailed(f"first must be between 1 and {MAX_SEARCH_RESULTS}", field="first")
    return first


def note_text(value: str) -> str:
    """A note on a complaint: 1 to 2000 characters once trimmed, line breaks kept, no control characters."""
    note = value.strip()
    if not note:
        raise ValidationFailed("a note needs some text", field="note")
    if len(note) > limits.SHORT_TEXT:
        raise ValidationFailed(f"a note has at most {limits.SHORT_TEXT} characters", field="note")
    if _NOTE_CONTROL.search(note):
        raise ValidationFailed("a note cannot contain control characters", field="note")
    return note


def assignee_name(value: str | None) -> str | None:
    """Who a complaint goes to (None: back to the unassigned queue): 1 to 200 characters, no control ones."""
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > limits.NAME or _CONTROL.search(name):
        raise ValidationFailed(f"an assignee has 1 to {limits.NAME} characters", field="assignee")
    return name


def team_name(value: str) -> str:
    """A team's name: 1 to 200 characters once trimmed, no control ones (unique: the database decides)."""
    name = value.strip()
    if not name or len(name) > limits.NAME or _CONTROL.search(name):
        raise ValidationFailed(f"a team name has 1 to {limits.NAME} characters", field="name")
    return name


def team_takes_complaints(name: str, archived_at: dt.datetime | None) -> None:
    """Whether a complaint may be handed to this team: not once it is archived (retired). What it holds
    already stays (its queue still lists it, a reassignment that names no team keeps it); the rule is about
    a complaint moving *into* the team, so the reassignment (infra/repos/complaint_work.py) asks only then."""
    if archived_at is not None:
        raise Conflict(f"team {name} is archived: it takes no new complaints", field="team")


def member_id(value: str) -> str:
    """A team member: a staff user's id as its token names it (``sub``), the value "assigned to me" and
    ``assignee`` hold; 1 to 200 characters, no ':' (not a Casbin subject like ``user:bob``), no control ones."""
    user = value.strip()
    if not user or len(user) > limits.NAME or ":" in user or _CONTROL.search(user):
        raise ValidationFailed(f"a user id has 1 to {limits.NAME} characters, without ':'", field="user")
    return user
