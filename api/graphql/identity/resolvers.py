"""verifyCustomerIdentity: arguments in, the use-case (api/usecases/identity.py), the payload out."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.ids import from_global_id
from api.graphql.core.relay import UserError
from api.graphql.core.resolving import mutate
from api.graphql.identity.types import IdentityAttribute, VerifyCustomerIdentityPayload
from api.usecases import identity

RATE_LIMITED = "RATE_LIMITED"


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Check a value a caller gives (e-mail, phone, national id or birth date) against the "
        "customer's, without seeing it: matched true or false, through the blind index. A few attempts per "
        "customer per caller and window (RATE_LIMITED user error beyond), each audited with its result "
        "(never the value). Invalid values are user errors and count no attempt"
    )
    async def verify_customer_identity(
        self, info: Info[Context, None], customer_id: strawberry.ID, attribute: IdentityAttribute, value: str
    ) -> VerifyCustomerIdentityPayload | None:
        ctx = info.context

        async def run() -> VerifyCustomerIdentityPayload:
            cmd = identity.VerifyIdentity(
                customer_id=from_global_id(customer_id, "Customer", field="customerId")[1],
                attribute=attribute.value,
                value=value,
            )
            done = await identity.verify_identity(ctx.db, ctx.caller, cmd, settings=ctx.settings)
            if done.matched is None:
                message = f"too many checks of this customer; try again in {done.retry_after_s} s"
                return VerifyCustomerIdentityPayload(
                    attempts_left=0,
                    retry_after_seconds=done.retry_after_s,
                    user_errors=[UserError(field="customerId", code=RATE_LIMITED, message=message)],
                )
            return VerifyCustomerIdentityPayload(matched=done.matched, attempts_left=done.attempts_left)

        return await mutate(VerifyCustomerIdentityPayload, run)


__all__ = ["IdentityMutation"]
