"""Thin resolvers of customers: read the arguments, call one use-case (api/usecases/customers.py), map the
result (read back through the caller's loaders, so a mutation's result is guarded like a query)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.errors import user_errors
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import first_of, forget, mutate, one, query
from api.graphql.customers.inputs import (
    CreateCustomerInput,
    CustomerFilter,
    CustomerOrder,
    DeleteCustomerInput,
    PurchaseInput,
    RecordPurchasesInput,
    UpdateCustomerInput,
)
from api.graphql.customers.types import (
    CustomerConnection,
    CustomerPayload,
    CustomerType,
    DeleteCustomerPayload,
    DuplicateCandidateType,
    PurchaseType,
    RecordPurchasesPayload,
    load_customer,
)
from api.usecases import customers as usecases
from api.usecases.duplicates import Candidate, LikelyDuplicates
from domain.errors import NotFound


def _uuid(global_id: str, type_name: str, field: str) -> UUID:
    return from_global_id(global_id, type_name, field=field)[1]


def _filter(f: CustomerFilter) -> usecases.CustomerFilter:
    return usecases.CustomerFilter(
        tiers=f.tiers,
        lifecycle_stages=[s.value for s in f.lifecycle_stages] if f.lifecycle_stages else None,
        name_contains=f.name_contains,
        email=f.email,
        phone=f.phone,
        created_after=f.created_after,
        created_before=f.created_before,
        min_spend_12m=f.min_spend12m,
    )


def _given(inp: CreateCustomerInput | UpdateCustomerInput) -> dict[str, Any]:
    """The attributes the input gives (UNSET: not given), as plain values."""
    given: dict[str, Any] = {}
    for attr in usecases.CUSTOMER_INPUT_FIELDS:
        value = getattr(inp, attr, strawberry.UNSET)
        if value is strawberry.UNSET:
            continue
        if attr == "address" and value is not None:
            value = {k: v for k, v in strawberry.asdict(value).items() if v is not None}
        elif attr == "lifecycle_stage" and value is not None:
            value = value.value
        given[attr] = value
    return given


def _candidates(found: list[Candidate]) -> list[DuplicateCandidateType]:
    return [DuplicateCandidateType.of(d.customer_id, d.reasons) for d in found]


def _purchase(n: int, p: PurchaseInput) -> usecases.NewPurchase:
    customer_id, unknown = None, False
    if p.customer_id is not None:
        try:
            customer_id = _uuid(p.customer_id, "Customer", f"purchases[{n}].customerId")
        except NotFound:
            unknown = True  # reported by the use-case with the batch's other problems
    return usecases.NewPurchase(
        amount=p.amount,
        customer_id=customer_id,
        customer_external_ref=p.customer_external_ref,
        external_id=p.external_id,
        currency=p.currency,
        channel=p.channel,
        purchased_at=p.purchased_at,
        unknown_customer_id=unknown,
    )


async def _read_back(info: Info[Context, None], customer_id: UUID) -> CustomerType | None:
    forget(context_of(info).loaders.customer, customer_id)
    return await load_customer(info, customer_id)


@strawberry.type
class CustomerQuery:
    @strawberry.field
    async def customer(self, info: Info[Context, None], id: strawberry.ID) -> CustomerType | None:
        return await one(id, "Customer", context_of(info).loaders.customer.load, CustomerType.from_row)

    @strawberry.field
    async def customers(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: CustomerFilter | None = None,
        order_by: CustomerOrder = CustomerOrder.CREATED_AT,
    ) -> CustomerConnection | None:
        ctx, n, sort = context_of(info), first_of(info, first), order_by.value

        async def run() -> Any:
            done = await usecases.customer_page(
                ctx.db,
                ctx.caller,
                _filter(filter or CustomerFilter()),
                columns=ctx.loaders.customer_columns,
                sort=sort,
                first=n,
                after=after,
                settings=ctx.settings,
            )
            for row in done.page.rows:  # prime the loader: nested paths back to these customers cost nothing
                ctx.loaders.customer.prime(row["id"], row)
            return CustomerConnection.from_page(done.page, sort, None, CustomerType.from_row, done.count)

        return await query(run)


@strawberry.type
class CustomerMutation:
    @strawberry.mutation
    async def create_customer(self, info: Info[Context, None], input: CreateCustomerInput) -> CustomerPayload | None:
        ctx = context_of(info)

        async def run() -> CustomerPayload:
            cmd = usecases.CreateCustomer(_given(input), stop_on_duplicate=input.on_duplicate.value == "STOP")
            try:
                done = await usecases.create_customer(ctx.db, ctx.caller, cmd, settings=ctx.settings)
            except LikelyDuplicates as exc:  # onDuplicate: STOP, nothing created: the candidates and why
                return CustomerPayload(duplicates=_candidates(exc.candidates), user_errors=user_errors(exc))
            return CustomerPayload(
                customer=await _read_back(info, done.customer_id), duplicates=_candidates(done.duplicates)
            )

        return await mutate(CustomerPayload, run)

    @strawberry.mutation
    async def update_customer(self, info: Info[Context, None], input: UpdateCustomerInput) -> CustomerPayload | None:
        ctx = context_of(info)

        async def run() -> CustomerPayload:
            cmd = usecases.UpdateCustomer(_uuid(input.id, "Customer", "id"), input.expected_version, _given(input))
            customer_id = await usecases.update_customer(ctx.db, ctx.caller, cmd, settings=ctx.settings)
            return CustomerPayload(customer=await _read_back(info, customer_id))

        return await mutate(CustomerPayload, run)

    @strawberry.mutation
    async def delete_customer(
        self, info: Info[Context, None], input: DeleteCustomerInput
    ) -> DeleteCustomerPayload | None:
        ctx = context_of(info)

        async def run() -> DeleteCustomerPayload:
            cmd = usecases.DeleteCustomer(_uuid(input.id, "Customer", "id"), input.expected_version)
            await usecases.delete_customer(ctx.db, ctx.caller, cmd)
            return DeleteCustomerPayload(deleted_id=input.id)

        return await mutate(DeleteCustomerPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Idempotent on (partner, externalId): an item sent again with the same content has one "
        "effect and returns the stored purchase; with other content it is a CONFLICT and nothing is written"
    )
    async def record_purchases(
        self, info: Info[Context, None], input: RecordPurchasesInput
    ) -> RecordPurchasesPayload | None:
        ctx = context_of(info)

        async def run() -> RecordPurchasesPayload:
            cmd = usecases.RecordPurchases([_purchase(n, p) for n, p in enumerate(input.purchases)])
            done = await usecases.record_purchases(ctx.db, ctx.caller, cmd, settings=ctx.settings)
            return RecordPurchasesPayload(
                purchases=[PurchaseType.from_row(r) for r in done.rows], inserted_count=done.inserted
            )

        return await mutate(RecordPurchasesPayload, run)
