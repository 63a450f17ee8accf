"""GraphQL inputs of reports: SLA policies, survey invitations."""

from __future__ import annotations

import strawberry

from api.graphql.core.enums import Severity, SurveyChannel


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


@strawberry.input
class InviteToSurveyInput:
    survey_id: strawberry.ID
    customer_ids: list[strawberry.ID]
    channel: SurveyChannel | None = None
