"""Thin resolvers of refunds, benefits, their uses and the economics of tiers: decode the input into a
use-case command (api/usecases/refunds.py, benefits.py, economics.py), call it, map the result."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.benefits.inputs import RecordRefundsInput
from api.graphql.benefits.types import RecordRefundsPayload, RefundType
from api.graphql.core.context import Context
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import mutate
from api.usecases import refunds as refund_usecases
from domain.errors import Invalid, NotFound, ValidationFailed


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


@strawberry.type
class BenefitMutation:
    @strawberry.mutation(
        description="Refunds or returns of purchases, all or nothing: each at most what is left of its purchase; "
        "idempotent on (writer, externalId) like purchases; metrics, tier and churn follow at once"
    )
    async def record_refunds(self, info: Info[Context, None], input: RecordRefundsInput) -> RecordRefundsPayload | None:
        ctx = _ctx(info)

        async def run() -> RecordRefundsPayload:
            items, errors = [], []
            for n, r in enumerate(input.refunds):
                purchase_id = None
                if r.purchase_id is not None:
                    try:
                        purchase_id = from_global_id(r.purchase_id, "Purchase", field=f"refunds[{n}].purchaseId")[1]
                    except NotFound as exc:
                        errors.append(ValidationFailed("no such purchase", field=exc.field))
                        continue
                items.append(
                    refund_usecases.RefundItem(
                        purchase_id=purchase_id,
                        purchase_external_id=r.purchase_external_id,
                        external_id=r.external_id,
                        amount=r.amount,
                        reason=r.reason,
                        refunded_at=r.refunded_at,
                    )
                )
            if errors:
                for e in errors:
                    e.code = NotFound.code
                raise Invalid(errors)
            done = await refund_usecases.record_refunds(
                ctx.db, ctx.caller, refund_usecases.RecordRefunds(items), max_batch=ctx.settings.max_batch_size
            )
            return RecordRefundsPayload(
                refunds=[RefundType.from_row(r) for r in done.refunds], inserted_count=done.inserted
            )

        return await mutate(RecordRefundsPayload, run)
