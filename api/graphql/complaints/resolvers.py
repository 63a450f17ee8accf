"""Thin resolvers of complaints: read the arguments, call one use-case (api/usecases/complaints.py), map the result."""

from __future__ import annotations

from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.complaints.inputs import (
    ComplaintFilter,
    ComplaintOrder,
    OpenComplaintInput,
    TransitionComplaintInput,
)
from api.graphql.complaints.types import ComplaintConnection, ComplaintPayload, ComplaintType, TaxonType
from api.graphql.core.context import Context, context_of
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import enum_value, first_of, forget, mutate, one, query
from api.usecases import complaints as usecases
from domain.complaints import Transition


def _uuid(global_id: str, type_name: str, field: str) -> UUID:
    return from_global_id(global_id, type_name, field=field)[1]


def _filter(f: ComplaintFilter) -> usecases.ComplaintFilter:
    return usecases.ComplaintFilter(
        statuses=[s.value for s in f.statuses] if f.statuses else None,
        severities=[s.value for s in f.severities] if f.severities else None,
        categories=f.categories,
        customer_id=_uuid(f.customer_id, "Customer", "filter.customerId") if f.customer_id else None,
        opened_after=f.opened_after,
        opened_before=f.opened_before,
        breached=f.breached,
    )


def _open_command(inp: OpenComplaintInput) -> usecases.OpenComplaint:
    customer_id = _uuid(inp.customer_id, "Customer", "customerId")
    usecases.check_complaint_text(inp.subject, inp.description, inp.external_id)  # before followUpOf, as ever
    return usecases.OpenComplaint(
        customer_id=customer_id,
        subject=inp.subject,
        description=inp.description,
        category=inp.category,
        severity=enum_value(inp.severity),
        channel=enum_value(inp.channel),
        external_id=inp.external_id,
        follow_up_of=_uuid(inp.follow_up_of, "Complaint", "followUpOf") if inp.follow_up_of else None,
    )


def _transition_command(inp: TransitionComplaintInput) -> usecases.TransitionComplaint:
    return usecases.TransitionComplaint(
        complaint_id=_uuid(inp.id, "Complaint", "id"),
        expected_version=inp.expected_version,
        transition=Transition(
            to=inp.to.value,
            assignee=inp.assignee,
            resolution_code=inp.resolution_code,
            root_cause_code=inp.root_cause_code,
            note=inp.note,
        ),
    )


async def _read_back(info: Info[Context, None], complaint_id: UUID) -> ComplaintPayload:
    """A mutation's complaint, read fresh through the caller's (scoped, guarded) loader."""
    ctx = context_of(info)
    forget(ctx.loaders.complaint, complaint_id)
    row = await ctx.loaders.complaint.load(complaint_id)
    return ComplaintPayload(complaint=ComplaintType.from_row(row) if row else None)


@strawberry.type
class ComplaintQuery:
    @strawberry.field
    async def complaint(self, info: Info[Context, None], id: strawberry.ID) -> ComplaintType | None:
        return await one(id, "Complaint", context_of(info).loaders.complaint.load, ComplaintType.from_row)

    @strawberry.field
    async def complaints(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: ComplaintFilter | None = None,
        order_by: ComplaintOrder = ComplaintOrder.OPENED_AT_DESC,
    ) -> ComplaintConnection | None:
        ctx, n, sort = context_of(info), first_of(info, first), order_by.value

        async def run() -> ComplaintConnection:
            f = _filter(filter or ComplaintFilter())
            page = await usecases.complaint_page(
                ctx.db, ctx.caller, columns=ctx.loaders.complaint_columns, f=f, sort=sort, first=n, after=after
            )
            return ComplaintConnection.from_page(
                page,
                sort,
                usecases.sort_column(sort),
                ComplaintType.from_row,
                lambda: usecases.count_complaints(ctx.db, ctx.caller, f),
            )

        return await query(run)


@strawberry.type
class TaxonomyQuery:
    """The complaint taxonomies (after the tier policies in Query, as before the split)."""

    @strawberry.field
    async def complaint_categories(self, info: Info[Context, None]) -> list[TaxonType] | None:
        found = await usecases.taxonomy(context_of(info).db, context_of(info).caller, usecases.CATEGORIES)
        return [TaxonType(**t) for t in found]

    @strawberry.field
    async def root_causes(self, info: Info[Context, None]) -> list[TaxonType] | None:
        found = await usecases.taxonomy(context_of(info).db, context_of(info).caller, usecases.ROOT_CAUSES)
        return [TaxonType(**t) for t in found]


@strawberry.type
class ComplaintMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Idempotent on (partner, externalId): the same content again returns the stored complaint "
        "(also to concurrent callers); other content under that id is a CONFLICT"
    )
    async def open_complaint(self, info: Info[Context, None], input: OpenComplaintInput) -> ComplaintPayload | None:
        ctx = context_of(info)

        async def run() -> ComplaintPayload:
            cmd = _open_command(input)
            complaint_id = await usecases.open_complaint(ctx.db, ctx.caller, cmd)
            return await _read_back(info, complaint_id)

        return await mutate(ComplaintPayload, run)

    @strawberry.mutation
    async def transition_complaint(
        self, info: Info[Context, None], input: TransitionComplaintInput
    ) -> ComplaintPayload | None:
        ctx = context_of(info)

        async def run() -> ComplaintPayload:
            complaint_id = await usecases.transition_complaint(
                ctx.db, ctx.caller, _transition_command(input), settings=ctx.settings
            )
            return await _read_back(info, complaint_id)

        return await mutate(ComplaintPayload, run)
