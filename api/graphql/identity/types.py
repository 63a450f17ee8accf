"""GraphQL types of identity checks (verifyCustomerIdentity, api/usecases/identity.py)."""

from __future__ import annotations

from enum import Enum

import strawberry

from api.graphql.core.relay import UserError


@strawberry.enum(description="A customer value a caller can be asked for (each has a blind index)")
class IdentityAttribute(Enum):
    EMAIL = "email"
    PHONE = "phone"
    NATIONAL_ID = "national_id"
    BIRTH_DATE = "birth_date"


@strawberry.type(description="The answer of verifyCustomerIdentity")
class VerifyCustomerIdentityPayload:
    matched: bool | None = strawberry.field(
        default=None,
        description="Whether the value given is the customer's; null when nothing was checked (see userErrors)",
    )
    attempts_left: int | None = strawberry.field(
        default=None, description="Checks of this customer left to the caller in the current window"
    )
    retry_after_seconds: int | None = strawberry.field(
        default=None, description="When the allowance is spent: seconds until the next check is allowed"
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)
