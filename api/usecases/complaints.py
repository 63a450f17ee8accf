"""Use-cases of complaints: the page of complaints, open and transition (see api/usecases/customers.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from strawberry.types import Info

from api.graphql.complaints.types import ComplaintConnection, ComplaintType
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import enum_value, forget
from domain.complaints import Transition
from domain.errors import Conflict, Invalid, NotFound, ValidationFailed
from domain.idempotency import check_replay
from infra.after_change import after_change
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import surveys as surveys_repo

if TYPE_CHECKING:
    from api.graphql.complaints.inputs import ComplaintFilter, OpenComplaintInput, TransitionComplaintInput
    from api.graphql.core.context import Context


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


def _uuid(global_id: str, type_name: str, field: str) -> UUID:
    return from_global_id(global_id, type_name, field=field)[1]


async def complaint_page(
    info: Info[Context, None], first: int, after: str | None, f: ComplaintFilter, sort: str
) -> Any:
    ctx = _ctx(info)
    filt = complaints_repo.ComplaintFilter(
        statuses=[s.value for s in f.statuses] if f.statuses else None,
        severities=[s.value for s in f.severities] if f.severities else None,
        categories=f.categories,
        customer_id=_uuid(f.customer_id, "Customer", "filter.customerId") if f.customer_id else None,
        opened_after=f.opened_after,
        opened_before=f.opened_before,
        breached=f.breached,
    )
    page = await complaints_repo.page(
        ctx.db, columns=ctx.loaders.complaint_columns, scope=ctx.scope, f=filt, sort=sort, first=first, after=after
    )
    column = complaints_repo.SORTS[sort].column.key
    return ComplaintConnection.from_page(
        page,
        sort,
        column,
        lambda row: ComplaintType.from_row(row, ctx.decisions),
        lambda: complaints_repo.count(ctx.db, scope=ctx.scope, f=filt),
    )


async def _read_back_complaint(info: Info[Context, None], complaint_id: UUID) -> ComplaintType | None:
    ctx = _ctx(info)
    forget(ctx.loaders.complaint, complaint_id)
    row = await ctx.loaders.complaint.load(complaint_id)
    return ComplaintType.from_row(row, ctx.decisions) if row else None


async def transition_complaint(info: Info[Context, None], inp: TransitionComplaintInput) -> Any:
    from api.graphql.complaints.types import ComplaintPayload

    ctx = _ctx(info)
    complaint_id = _uuid(inp.id, "Complaint", "id")
    t = Transition(
        to=inp.to.value,
        assignee=inp.assignee,
        resolution_code=inp.resolution_code,
        root_cause_code=inp.root_cause_code,
        note=inp.note,
    )
    async with ctx.db.unit_of_work() as uow:
        done = await complaints_repo.transition(
            uow, complaint_id, inp.expected_version, t, actor=ctx.actor, scope=ctx.scope
        )
        if done.outcome.to_status == "resolved":  # the post-resolution survey, if one is active
            await surveys_repo.invite_after_resolution(
                uow,
                complaint_id=complaint_id,
                throttle_days=ctx.settings.survey_throttle_days,
                periodic_days=ctx.settings.survey_periodic_days,
            )
        if done.outcome.changes_customer_facts or done.breached:
            await after_change(uow.conn, [done.customer_id], actor=ctx.actor)
        uow.commit()
    return ComplaintPayload(complaint=await _read_back_complaint(info, complaint_id))


async def open_complaint(info: Info[Context, None], inp: OpenComplaintInput) -> Any:
    from api.graphql.complaints.types import ComplaintPayload

    ctx = _ctx(info)
    customer_id = _uuid(inp.customer_id, "Customer", "customerId")
    errors = []
    if not inp.subject.strip() or len(inp.subject) > 300:
        errors.append(ValidationFailed("a subject has 1 to 300 characters", field="subject"))
    if not inp.description.strip() or len(inp.description) > 10_000:
        errors.append(ValidationFailed("a description has 1 to 10000 characters", field="description"))
    if inp.external_id is not None and not 0 < len(inp.external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field="externalId"))
    if errors:
        raise Invalid(errors)
    follow_up = _uuid(inp.follow_up_of, "Complaint", "followUpOf") if inp.follow_up_of else None
    values = {
        "customer_id": customer_id,
        "subject": " ".join(inp.subject.split()),
        "description": inp.description.strip(),
        "category_code": inp.category,
        "severity": enum_value(inp.severity),
        "channel": enum_value(inp.channel),
        "follow_up_of_id": follow_up,
    }
    partner_id = ctx.principal.partner_id
    async with ctx.db.unit_of_work() as uow:
        complaint_id = None
        if inp.external_id:
            complaint_id = await _replayed_complaint(uow, partner_id, inp.external_id, values)
        if complaint_id is None:
            if not await customers_repo.exists(uow, customer_id, ctx.scope):
                raise NotFound("no such customer", field="customerId")
            complaint_id = await complaints_repo.open_complaint(
                uow, {**values, "partner_id": partner_id, "external_id": inp.external_id}, actor=ctx.actor
            )
            if complaint_id is None:  # another request opened it meanwhile: the same rules as a replay
                complaint_id = await _replayed_complaint(uow, partner_id, inp.external_id or "", values)
                if complaint_id is None:  # (the insert waited for that request's commit: not expected)
                    raise Conflict("externalId is being used by another request; retry", field="externalId")
            else:
                await after_change(uow.conn, [customer_id], actor=ctx.actor)
                uow.commit()
    return ComplaintPayload(complaint=await _read_back_complaint(info, complaint_id))


# openComplaint's input names of the columns a replay is compared on (complaints_repo.CREATED_WITH)
_COMPLAINT_INPUT_NAMES = {
    "customer_id": "customerId",
    "subject": "subject",
    "description": "description",
    "category_code": "category",
    "severity": "severity",
    "channel": "channel",
    "follow_up_of_id": "followUpOf",
}


async def _replayed_complaint(
    uow: Any, partner_id: UUID | None, external_id: str, values: dict[str, Any]
) -> UUID | None:
    """The complaint already opened with this external id (None: none is), if ``values`` are what it
    was opened with; a CONFLICT if not (domain/idempotency.py)."""
    stored = await complaints_repo.by_external_id(uow, partner_id, external_id)
    if stored is None:
        return None
    check_replay(
        "externalId",
        {_COMPLAINT_INPUT_NAMES[k]: stored[k] for k in complaints_repo.CREATED_WITH},
        {_COMPLAINT_INPUT_NAMES[k]: values[k] for k in complaints_repo.CREATED_WITH},
    )
    complaint_id: UUID = stored["id"]
    return complaint_id
