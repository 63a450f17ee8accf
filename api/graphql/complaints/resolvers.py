"""Thin resolvers of complaints: read the arguments, call one repository read or use-case, map the result."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.complaints.inputs import (
    ComplaintFilter,
    ComplaintOrder,
    OpenComplaintInput,
    TransitionComplaintInput,
)
from api.graphql.complaints.types import ComplaintConnection, ComplaintPayload, ComplaintType, TaxonType
from api.graphql.core.context import Context
from api.graphql.core.resolving import first_of, mutate, one, query
from api.usecases import complaints as usecases
from infra.repos import complaints as complaints_repo


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


@strawberry.type
class ComplaintQuery:
    @strawberry.field
    async def complaint(self, info: Info[Context, None], id: strawberry.ID) -> ComplaintType | None:
        d = _ctx(info).decisions
        return await one(id, "Complaint", _ctx(info).loaders.complaint.load, lambda r: ComplaintType.from_row(r, d))

    @strawberry.field
    async def complaints(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: ComplaintFilter | None = None,
        order_by: ComplaintOrder = ComplaintOrder.OPENED_AT_DESC,
    ) -> ComplaintConnection | None:  # type: ignore[valid-type]
        f = filter or ComplaintFilter()
        return await query(lambda: usecases.complaint_page(info, first_of(info, first), after, f, order_by.value))


@strawberry.type
class TaxonomyQuery:
    """The complaint taxonomies (after the tier policies in Query, as before the split)."""

    @strawberry.field
    async def complaint_categories(self, info: Info[Context, None]) -> list[TaxonType] | None:
        return [TaxonType(**t) for t in await complaints_repo.taxonomy(_ctx(info).db, "categories")]

    @strawberry.field
    async def root_causes(self, info: Info[Context, None]) -> list[TaxonType] | None:
        return [TaxonType(**t) for t in await complaints_repo.taxonomy(_ctx(info).db, "root_causes")]


@strawberry.type
class ComplaintMutation:
    @strawberry.mutation(
        description="Idempotent on (partner, externalId): the same content again returns the stored complaint "
        "(also to concurrent callers); other content under that id is a CONFLICT"
    )
    async def open_complaint(self, info: Info[Context, None], input: OpenComplaintInput) -> ComplaintPayload | None:
        return await mutate(ComplaintPayload, lambda: usecases.open_complaint(info, input))

    @strawberry.mutation
    async def transition_complaint(
        self, info: Info[Context, None], input: TransitionComplaintInput
    ) -> ComplaintPayload | None:
        return await mutate(ComplaintPayload, lambda: usecases.transition_complaint(info, input))
