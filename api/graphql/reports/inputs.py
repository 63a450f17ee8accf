"""GraphQL inputs of reports: SLA policies, survey invitations."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.enums import Severity, SurveyChannel


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


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
