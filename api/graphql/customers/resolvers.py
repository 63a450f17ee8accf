"""Thin resolvers of customers: read the arguments, call one repository read or use-case, map the result."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.errors import user_errors
from api.graphql.core.resolving import first_of, mutate, one, query
from api.graphql.customers.inputs import (
    CreateCustomerInput,
    CustomerFilter,
    CustomerOrder,
    DeleteCustomerInput,
    RecordPurchasesInput,
    UpdateCustomerInput,
)
from api.graphql.customers.types import (
    CustomerConnection,
    CustomerPayload,
    CustomerType,
    DeleteCustomerPayload,
    DuplicateCandidateType,
    RecordPurchasesPayload,
)
from api.usecases import customers as usecases
from api.usecases.duplicates import LikelyDuplicates


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


@strawberry.type
class CustomerQuery:
    @strawberry.field
    async def customer(self, info: Info[Context, None], id: strawberry.ID) -> CustomerType | None:
        return await one(id, "Customer", _ctx(info).loaders.customer.load, CustomerType.from_row)

    @strawberry.field
    async def customers(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: CustomerFilter | None = None,
        order_by: CustomerOrder = CustomerOrder.CREATED_AT,
    ) -> CustomerConnection | None:  # type: ignore[valid-type]
        f = filter or CustomerFilter()
        return await query(lambda: usecases.customer_page(info, first_of(info, first), after, f, order_by.value))


@strawberry.type
class CustomerMutation:
    @strawberry.mutation
    async def create_customer(self, info: Info[Context, None], input: CreateCustomerInput) -> CustomerPayload | None:
        async def run() -> CustomerPayload:
            try:
                return await usecases.create_customer(info, input)  # type: ignore[no-any-return]
            except LikelyDuplicates as exc:  # onDuplicate: STOP, nothing created: the candidates and why
                return CustomerPayload(
                    duplicates=[DuplicateCandidateType.of(d.customer_id, d.reasons) for d in exc.candidates],
                    user_errors=user_errors(exc),
                )

        return await mutate(CustomerPayload, run)

    @strawberry.mutation
    async def update_customer(self, info: Info[Context, None], input: UpdateCustomerInput) -> CustomerPayload | None:
        return await mutate(CustomerPayload, lambda: usecases.update_customer(info, input))

    @strawberry.mutation
    async def delete_customer(
        self, info: Info[Context, None], input: DeleteCustomerInput
    ) -> DeleteCustomerPayload | None:
        return await mutate(DeleteCustomerPayload, lambda: usecases.delete_customer(info, input))

    @strawberry.mutation(
        description="Idempotent on (partner, externalId): an item sent again with the same content has one "
        "effect and returns the stored purchase; with other content it is a CONFLICT and nothing is written"
    )
    async def record_purchases(
        self, info: Info[Context, None], input: RecordPurchasesInput
    ) -> RecordPurchasesPayload | None:
        return await mutate(RecordPurchasesPayload, lambda: usecases.record_purchases(info, input))
