"""GraphQL inputs of the work queues: filters and orders of the churn and complaint queues, a note, a
reassignment."""

from __future__ import annotations

from enum import Enum

import strawberry

from api.graphql.core.enums import ComplaintStatus, Severity, _enum
from domain.enums import CHURN_LEVELS

ChurnLevel = _enum("ChurnLevel", CHURN_LEVELS, "How likely a customer is to leave (domain/churn.py)")


@strawberry.enum
class ChurnQueueOrder(Enum):
    SCORE_DESC = "SCORE_DESC"
    TIER_DESC = "TIER_DESC"
    LAST_CONTACT = "LAST_CONTACT"


@strawberry.input(description="Which customers at churn risk; without levels, red and yellow ones")
class ChurnQueueFilter:
    levels: list[ChurnLevel] | None = None  # type: ignore[valid-type]
    min_score: int | None = None
    max_score: int | None = None
    tiers: list[str] | None = None
    signals: list[str] | None = strawberry.field(default=None, description="any of these signal codes fired")


@strawberry.enum
class ComplaintQueueOrder(Enum):
    DUE_AT = "DUE_AT"
    OPENED_AT = "OPENED_AT"


@strawberry.input(description="Which complaints to work on; without statuses, the active ones")
class ComplaintQueueFilter:
    assigned_to_me: bool | None = strawberry.field(
        default=None, description="assigned to the caller (its user id, the token's sub)"
    )
    assignee: str | None = None
    unassigned: bool | None = None
    team: strawberry.ID | None = strawberry.field(default=None, description="assigned to this team")
    my_teams: bool | None = strawberry.field(
        default=None, description="assigned to a team the caller is a member of (false: to none of them)"
    )
    tiers: list[str] | None = strawberry.field(default=None, description="the tier the complaint was opened at")
    categories: list[str] | None = None
    severities: list[Severity] | None = None
    statuses: list[ComplaintStatus] | None = None
    due_within_hours: int | None = strawberry.field(
        default=None, description="the next deadline falls between now and now + this many hours"
    )
    breached: bool | None = None


@strawberry.input
class AddComplaintNoteInput:
    id: strawberry.ID
    note: str


@strawberry.input(
    description="Give an active complaint to someone (assignee null and toMe false: to nobody) and, with team, "
    "to a team"
)
class AssignComplaintInput:
    id: strawberry.ID
    expected_version: int
    assignee: str | None = None
    to_me: bool = False
    team: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="the team it goes to; null: to no team; not given: its team stays"
    )
    note: str | None = None
