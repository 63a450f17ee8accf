"""GraphQL inputs of complaints: filter and order, open and transition."""

from __future__ import annotations

import datetime as dt
from enum import Enum

import strawberry

from api.graphql.core.enums import (
    ComplaintStatus,
    ContactChannel,
    Severity,
)


@strawberry.enum
class ComplaintOrder(Enum):
    OPENED_AT_DESC = "OPENED_AT_DESC"
    OPENED_AT = "OPENED_AT"
    UPDATED_AT_DESC = "UPDATED_AT_DESC"


@strawberry.input
class ComplaintFilter:
    statuses: list[ComplaintStatus] | None = None
    severities: list[Severity] | None = None
    categories: list[str] | None = None
    customer_id: strawberry.ID | None = None
    opened_after: dt.datetime | None = None
    opened_before: dt.datetime | None = None
    breached: bool | None = None


@strawberry.input
class OpenComplaintInput:
    customer_id: strawberry.ID
    subject: str
    description: str
    category: str
    severity: Severity = Severity.MEDIUM
    channel: ContactChannel = ContactChannel.WEB
    external_id: str | None = None
    follow_up_of: strawberry.ID | None = None


@strawberry.input
class TransitionComplaintInput:
    id: strawberry.ID
    expected_version: int
    to: ComplaintStatus
    assignee: str | None = None
    resolution_code: str | None = None
    root_cause_code: str | None = None
    note: str | None = None


@strawberry.input
class SlaTargetInput:
    tier: str
    severity: Severity
    first_response_minutes: int
    resolution_minutes: int


@strawberry.input
class CreateSlaPolicyInput:
    name: str
    targets: list[SlaTargetInput]
