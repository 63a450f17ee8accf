"""Confirming a caller's identity without showing more (issue 17, F4).

A support agent sees contact fields masked (authz/masking.py): too little to rebuild them, and too
little to check what a caller says. ``verify_identity`` answers the one question the agent has — does
this value match the customer's? — with match / no match, computed through the customer's blind index
(infra/repos/customers.py ``matches_on_file``: nothing is decrypted, the stored value never leaves
PostgreSQL). Each attempt is charged against an allowance per (caller, customer)
(``TIERWISE_VERIFY_ATTEMPTS`` per ``TIERWISE_VERIFY_WINDOW_S``, in the shared rate-limit buckets, so
every instance counts alike) and audited with its result, never with the value supplied. The operation
has its own grant (``Mutation.verifyCustomerIdentity``, migration 0014) and the caller's row scope: a
partner token verifies only its own customers. Free of GraphQL: (database, caller, command) → result, the
caller of api/usecases/caller.py.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from domain import customers as customer_rules
from domain.errors import Invalid, NotFound, ValidationFailed
from infra.repos import customers as customers_repo
from infra.repos import ratelimit as ratelimit_repo
from infra.repos.authz import write_audit
from infra.settings import Settings

AUDIT_ACTION = "identity_verified"
# The attributes a caller can be asked for (each has a blind index) and the catalogue field of each.
ATTRIBUTES = {
    "email": "Customer.email",
    "phone": "Customer.phone",
    "national_id": "Customer.nationalId",
    "birth_date": "Customer.birthDate",
}


@dataclass(frozen=True)
class VerifyIdentity:
    customer_id: UUID
    attribute: str  # a key of ATTRIBUTES
    value: str  # as the person gave it (normalised here as a write stores it)


@dataclass(frozen=True)
class Verification:
    matched: bool | None  # None: not checked, the allowance is spent
    attempts_left: int
    retry_after_s: int | None = None  # when refused: seconds until the next check is allowed


def normalized(attribute: str, value: str, *, default_region: str, today: dt.date) -> Any:
    """The value normalised exactly as a write stores it (so that equal values have equal blind indexes),
    or ``ValidationFailed`` at ``value``."""
    given: Any = value
    if attribute == "birth_date":
        try:
            given = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValidationFailed("a birth date is written YYYY-MM-DD", field="value") from None
    try:
        out = customer_rules.normalize_customer(
            {attribute: given}, default_region=default_region, today=today, creating=False
        )[attribute]
    except Invalid as exc:
        raise ValidationFailed(exc.message, field="value") from None
    if out is None:
        raise ValidationFailed("a value is required", field="value")
    return out


async def verify_identity(db: Any, caller: Caller, cmd: VerifyIdentity, *, settings: Settings) -> Verification:
    """Check ``cmd.value`` against the customer's ``cmd.attribute`` in one unit of work:
    invalid values and unknown customers raise (nothing charged, nothing audited); otherwise one attempt is
    taken and one audit row written, whatever the answer."""
    customer_id, attribute, scope = cmd.customer_id, cmd.attribute, caller.scope
    wanted = normalized(
        attribute, cmd.value, default_region=settings.default_phone_region, today=dt.datetime.now(dt.UTC).date()
    )
    async with db.unit_of_work() as uow:
        if not await customers_repo.exists(uow.conn, customer_id, scope):
            raise NotFound("no such customer", field="customerId")
        attempt = await ratelimit_repo.take_attempt(
            uow.conn,
            key=f"verify:{caller.actor}:{customer_id}",
            limit=settings.verify_attempts,
            window_s=settings.verify_window_s,
        )
        matched = (
            await customers_repo.matches_on_file(uow.conn, customer_id, scope, attribute, wanted)
            if attempt.allowed
            else None
        )
        if attempt.allowed and matched is None:  # gone meanwhile: nothing charged, nothing audited
            raise NotFound("no such customer", field="customerId")
        result = "rate_limited" if matched is None else ("match" if matched else "no_match")
        await write_audit(
            uow.conn,
            actor=caller.actor,
            action=AUDIT_ACTION,
            request_id=caller.request_id,
            target_type="Customer",
            target_ids=[str(customer_id)],
            fields=[ATTRIBUTES[attribute]],
            after={"attribute": attribute, "result": result},
        )
        uow.commit()
    if matched is None:
        return Verification(None, 0, max(math.ceil(attempt.retry_after_s), 1))
    return Verification(matched, attempt.left)
