"""Thin resolvers of the work queues: read the arguments into a command, call one use-case
(api/usecases/queues.py), map the rows out through the caller's loaders and types."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.complaints.types import ComplaintConnection, ComplaintPayload, ComplaintType
from api.graphql.core.context import Context, context_of
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import enum_value, first_of, forget, mutate, query
from api.graphql.customers.types import CustomerType
from api.graphql.queues.inputs import (
    AddComplaintNoteInput,
    AssignComplaintInput,
    ChurnQueueFilter,
    ChurnQueueOrder,
    ComplaintQueueFilter,
    ComplaintQueueOrder,
)
from api.graphql.queues.teams import team_id
from api.graphql.queues.types import ChurnQueueConnection, ChurnQueueEntryType, CustomerSearchHitType
from api.usecases import queues as usecases


def _churn_query(f: ChurnQueueFilter, sort: str, first: int, after: str | None) -> usecases.ChurnQueueQuery:
    return usecases.ChurnQueueQuery(
        levels=[enum_value(v) for v in f.levels] if f.levels is not None else None,
        min_score=f.min_score,
        max_score=f.max_score,
        tiers=f.tiers,
        signals=f.signals,
        sort=sort,
        first=first,
        after=after,
    )


def _complaint_query(f: ComplaintQueueFilter, sort: str, first: int, after: str | None) -> usecases.ComplaintQueueQuery:
    return usecases.ComplaintQueueQuery(
        assigned_to_me=f.assigned_to_me,
        assignee=f.assignee,
        unassigned=f.unassigned,
        team=team_id(f.team) if f.team is not None else None,
        my_teams=f.my_teams,
        tiers=f.tiers,
        categories=f.categories,
        severities=[enum_value(v) for v in f.severities] if f.severities else None,
        statuses=[enum_value(v) for v in f.statuses] if f.statuses else None,
        due_within_hours=f.due_within_hours,
        breached=f.breached,
        sort=sort,
        first=first,
        after=after,
    )


def _prime(ctx: Context, rows: list[dict[str, Any]]) -> None:
    """Nested paths back to these customers cost nothing (the rows hold the caller's customer columns)."""
    for row in rows:
        ctx.loaders.customer.prime(row["id"], {k: v for k, v in row.items() if not k.startswith(("churn_", "_"))})


async def _read_back(info: Info[Context, None], complaint_id: UUID) -> ComplaintPayload:
    ctx = context_of(info)
    forget(ctx.loaders.complaint, complaint_id)
    forget(ctx.loaders.complaint_events, complaint_id)
    row = await ctx.loaders.complaint.load(complaint_id)
    return ComplaintPayload(complaint=ComplaintType.from_row(row) if row else None)


@strawberry.type
class QueueQuery:
    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Customers at churn risk to work on (red and yellow unless filtered), with their signals"
    )
    async def churn_queue(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: ChurnQueueFilter | None = None,
        order_by: ChurnQueueOrder = ChurnQueueOrder.SCORE_DESC,
    ) -> ChurnQueueConnection | None:
        ctx = context_of(info)
        q = _churn_query(filter or ChurnQueueFilter(), enum_value(order_by), first_of(info, first), after)

        async def run() -> Any:
            page = await usecases.churn_queue(ctx.db, ctx.caller, q, columns=ctx.loaders.customer_columns)
            _prime(ctx, page.rows)
            return ChurnQueueConnection.from_page(
                page,
                q.sort,
                None,
                lambda row: ChurnQueueEntryType.from_row(row, ctx.decisions),
                lambda: usecases.count_churn_queue(ctx.db, ctx.caller, q),
            )

        return await query(run)

    @strawberry.field(description="Complaints to work on (the active ones unless filtered), the next deadline first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def complaint_queue(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: ComplaintQueueFilter | None = None,
        order_by: ComplaintQueueOrder = ComplaintQueueOrder.DUE_AT,
    ) -> ComplaintConnection | None:
        ctx = context_of(info)

        async def run() -> Any:
            size = first_of(info, first)
            q = _complaint_query(filter or ComplaintQueueFilter(), enum_value(order_by), size, after)
            page = await usecases.complaint_queue(ctx.db, ctx.caller, q, columns=ctx.loaders.complaint_columns)
            for row in page.rows:
                ctx.loaders.complaint.prime(row["id"], {k: v for k, v in row.items() if k != "_sort"})
            return ComplaintConnection.from_page(
                page,
                q.sort,
                None,
                ComplaintType.from_row,
                lambda: usecases.count_complaint_queue(ctx.db, ctx.caller, q),
            )

        return await query(run)

    @strawberry.field(description="Customers whose name is close to the search (typos tolerated), best first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def search_customers(
        self, info: Info[Context, None], query: str, first: int = 20
    ) -> list[CustomerSearchHitType] | None:
        ctx = context_of(info)
        term = query

        async def run() -> list[CustomerSearchHitType]:
            rows = await usecases.search_customers(
                ctx.db, ctx.caller, term, first, columns=ctx.loaders.customer_columns
            )
            hits = []
            for row in rows:
                customer = {k: v for k, v in row.items() if k != "score"}
                ctx.loaders.customer.prime(customer["id"], customer)
                hits.append(CustomerSearchHitType(customer=CustomerType.from_row(customer), score=float(row["score"])))  # type: ignore[arg-type]
            return hits

        return await _query(run)


_query = query  # ``query`` is an argument name of searchCustomers


@strawberry.type
class QueueMutation:
    @strawberry.mutation(description="A note in the complaint's history, its status unchanged (audited)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def add_complaint_note(
        self, info: Info[Context, None], input: AddComplaintNoteInput
    ) -> ComplaintPayload | None:
        ctx = context_of(info)

        async def run() -> ComplaintPayload:
            cmd = usecases.AddComplaintNote(
                complaint_id=from_global_id(input.id, "Complaint", field="id")[1], note=input.note
            )
            return await _read_back(info, await usecases.add_complaint_note(ctx.db, ctx.caller, cmd))

        return await mutate(ComplaintPayload, run)

    @strawberry.mutation(description="Give an active complaint to someone, to yourself, or back to the queue (audited)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def assign_complaint(self, info: Info[Context, None], input: AssignComplaintInput) -> ComplaintPayload | None:
        ctx = context_of(info)

        async def run() -> ComplaintPayload:
            cmd = usecases.AssignComplaint(
                complaint_id=from_global_id(input.id, "Complaint", field="id")[1],
                expected_version=input.expected_version,
                assignee=input.assignee,
                to_me=input.to_me,
                team=usecases.KEEP_TEAM
                if input.team is strawberry.UNSET
                else (team_id(input.team) if input.team is not None else None),
                note=input.note,
            )
            return await _read_back(info, await usecases.assign_complaint(ctx.db, ctx.caller, cmd))

        return await mutate(ComplaintPayload, run)
