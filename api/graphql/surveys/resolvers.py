"""Thin resolvers of surveys: read the arguments, call one repository read or use-case, map the result."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.enums import SurveyStatus
from api.graphql.core.resolving import first_of, mutate, one, query
from api.graphql.surveys.inputs import CreateSurveyInput, SubmitSurveyResponseInput
from api.graphql.surveys.types import SurveyConnection, SurveyPayload, SurveyResponsePayload, SurveyType
from api.usecases import surveys as usecases
from infra.repos import surveys as surveys_repo


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


@strawberry.type
class SurveyQuery:
    @strawberry.field
    async def survey(self, info: Info[Context, None], id: strawberry.ID) -> SurveyType | None:
        return await one(id, "Survey", _ctx(info).loaders.survey.load, SurveyType.from_row)

    @strawberry.field
    async def surveys(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: list[SurveyStatus] | None = None,  # type: ignore[valid-type]
    ) -> SurveyConnection | None:  # type: ignore[valid-type]
        n = first_of(info, first)
        statuses = [s.value for s in status] if status else None

        async def run() -> Any:
            db = _ctx(info).db
            page = await surveys_repo.page(db, statuses=statuses, first=n, after=after)
            return SurveyConnection.from_page(
                page,
                "CREATED_AT_DESC",
                "created_at",
                SurveyType.from_row,
                lambda: surveys_repo.count(db, statuses=statuses),
            )

        return await query(run)


@strawberry.type
class SurveyMutation:
    @strawberry.mutation
    async def create_survey(self, info: Info[Context, None], input: CreateSurveyInput) -> SurveyPayload | None:
        return await mutate(SurveyPayload, lambda: usecases.create_survey(info, input))

    @strawberry.mutation(
        description="One response per customer and survey; idempotent on (partner, externalId): the same "
        "answers again return the stored response, other content under that id is a CONFLICT"
    )
    async def submit_survey_response(
        self, info: Info[Context, None], input: SubmitSurveyResponseInput
    ) -> SurveyResponsePayload | None:
        return await mutate(SurveyResponsePayload, lambda: usecases.submit_survey_response(info, input))
