"""GraphQL types of refunds, benefits and their uses, and the economics of tiers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import UserError
from api.graphql.customers.types import CustomerType, load_customer


@strawberry.type(name="Refund", description="A refund or return of (part of) a purchase")
class RefundType:
    id: strawberry.ID
    external_id: str | None
    purchase_id: strawberry.ID
    amount: Decimal | None
    reason: str | None
    refunded_at: dt.datetime | None
    created_at: dt.datetime
    customer_ref: strawberry.Private[UUID]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RefundType:
        return cls(
            id=strawberry.ID(to_global_id("Refund", row["id"])),
            external_id=row["external_id"],
            purchase_id=strawberry.ID(to_global_id("Purchase", row["purchase_id"])),
            amount=row["amount"],
            reason=row["reason"],
            refunded_at=row["refunded_at"],
            created_at=row["created_at"],
            customer_ref=row["customer_id"],
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)


@strawberry.type
class RecordRefundsPayload:
    refunds: list[RefundType] = strawberry.field(default_factory=list)
    inserted_count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)
