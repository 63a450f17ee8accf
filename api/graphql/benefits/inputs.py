"""GraphQL inputs of refunds, benefits and their uses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import strawberry


@strawberry.input
class RefundInput:
    purchase_id: strawberry.ID | None = strawberry.field(default=None, description="the purchase refunded, or:")
    purchase_external_id: str | None = strawberry.field(
        default=None, description="the external id the purchase was recorded with by the same writer"
    )
    external_id: str | None = strawberry.field(default=None, description="idempotency key of the refund")
    amount: Decimal | None = strawberry.field(
        default=None, description="at most what is left of the purchase; omitted: all that is left"
    )
    reason: str | None = None
    refunded_at: dt.datetime | None = None


@strawberry.input
class RecordRefundsInput:
    refunds: list[RefundInput]
