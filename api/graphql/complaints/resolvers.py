"""Thin resolvers of complaints, their SLA policies and taxonomy: read the arguments, call one use-case
(api/usecases/complaints.py), map the result."""

from __future__ import annotations

from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.complaints.inputs import (
    ComplaintFilter,
    ComplaintOrder,
    CreateSlaPolicyInput,
    OpenComplaintInput,
    TransitionComplaintInput,
)
from api.graphql.complaints.types import (
    ComplaintConnection,
    ComplaintPayload,
    ComplaintType,
    SlaPolicyPayload,
    SlaPolicyType,
    TaxonPayload,
    TaxonType,
)
from api.graphql.core.context import Context, context_of
from api.graphql.core.ids import from_global_id, to_global_id
from api.graphql.core.resolving import enum_value, first_of, forget, mutate, one, query
from api.usecases import complaints as usecases
from domain import sla as sla_rules
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


# ---------------------------------------------------------------- SLA policies


async def _policies(info: Info[Context, None], statuses: list[str] | None = None) -> list[SlaPolicyType]:
    found = await usecases.sla_policies(context_of(info).db, context_of(info).caller, statuses)
    return [SlaPolicyType.from_row(p.row, p.targets) for p in found]


async def _policy_by_id(info: Info[Context, None], policy_id: UUID) -> SlaPolicyType | None:
    found = [p for p in await _policies(info) if p.id == to_global_id("SlaPolicy", policy_id)]
    return found[0] if found else None


async def create_sla_policy(info: Info[Context, None], inp: CreateSlaPolicyInput) -> SlaPolicyPayload:
    ctx = context_of(info)
    targets = [
        sla_rules.SlaTarget(t.tier, enum_value(t.severity), t.first_response_minutes, t.resolution_minutes)
        for t in inp.targets
    ]
    cmd = usecases.CreateSlaPolicy(inp.name, targets)
    policy_id = await usecases.create_sla_policy(ctx.db, ctx.caller, cmd)
    return SlaPolicyPayload(sla_policy=await _policy_by_id(info, policy_id))


async def activate_sla_policy(info: Info[Context, None], global_id: str) -> SlaPolicyPayload:
    ctx = context_of(info)
    _, policy_id = from_global_id(global_id, "SlaPolicy", field="id")
    await usecases.activate_sla_policy(ctx.db, ctx.caller, policy_id)
    return SlaPolicyPayload(sla_policy=await _policy_by_id(info, policy_id))


# ---------------------------------------------------------------- taxonomy


async def _add_taxon(info: Info[Context, None], taxonomy: str, code: str, label: str) -> TaxonPayload:
    cmd = usecases.AddTaxon(taxonomy, code, label)
    return TaxonPayload(taxon=TaxonType(**await usecases.add_taxon(context_of(info).db, context_of(info).caller, cmd)))


async def _deactivate_taxon(info: Info[Context, None], taxonomy: str, code: str) -> TaxonPayload:
    taxon = await usecases.deactivate_taxon(context_of(info).db, context_of(info).caller, taxonomy, code)
    return TaxonPayload(taxon=TaxonType(**taxon))


@strawberry.type
class SlaQuery:
    """The SLA policies (listed in Query after the reports, as before)."""

    @strawberry.field(description="Every SLA policy, newest version first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def sla_policies(self, info: Info[Context, None]) -> list[SlaPolicyType] | None:
        return await _policies(info)

    @strawberry.field
    async def active_sla_policy(self, info: Info[Context, None]) -> SlaPolicyType | None:
        found = await _policies(info, ["active"])
        return found[0] if found else None


@strawberry.type
class SlaTaxonomyMutation:
    """SLA policies and the complaint taxonomy (listed in Mutation after the tier policies, as before)."""

    @strawberry.mutation(description="A draft SLA policy: targets by tier (or '*') and severity, validated")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def create_sla_policy(
        self, info: Info[Context, None], input: CreateSlaPolicyInput
    ) -> SlaPolicyPayload | None:
        return await mutate(SlaPolicyPayload, lambda: create_sla_policy(info, input))

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Activate a draft SLA policy (the active one retires); open complaints keep their deadlines"
    )
    async def activate_sla_policy(self, info: Info[Context, None], id: strawberry.ID) -> SlaPolicyPayload | None:
        return await mutate(SlaPolicyPayload, lambda: activate_sla_policy(info, id))

    @strawberry.mutation(description="Add a complaint category (or bring back a deactivated one)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def add_complaint_category(self, info: Info[Context, None], code: str, label: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _add_taxon(info, usecases.CATEGORIES, code, label))

    @strawberry.mutation(description="No new complaint can use it; complaints that do keep it")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def deactivate_complaint_category(self, info: Info[Context, None], code: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _deactivate_taxon(info, usecases.CATEGORIES, code))

    @strawberry.mutation(description="Add a root cause (or bring back a deactivated one)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def add_root_cause(self, info: Info[Context, None], code: str, label: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _add_taxon(info, usecases.ROOT_CAUSES, code, label))

    @strawberry.mutation(description="No new resolution can use it; complaints that do keep it")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def deactivate_root_cause(self, info: Info[Context, None], code: str) -> TaxonPayload | None:
        return await mutate(TaxonPayload, lambda: _deactivate_taxon(info, usecases.ROOT_CAUSES, code))
