"""Use-cases of customers: the page of customers, create, update and delete a customer, record purchases.

Free of GraphQL (issue 13, item 2): each takes the request's database, the caller (api/usecases/caller.py:
who, for audit rows, the rows they reach, the fields they may write) and a plain command, returns ids or
rows, and raises domain errors; the resolvers in ``api/graphql/customers/resolvers.py`` map arguments in
(global ids decoded, enums to their values) and results out (read back through the caller's loaders, so
what a mutation returns is guarded exactly like a query).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from api.usecases import duplicates
from api.usecases.caller import Caller
from domain import customers as customer_rules
from domain.batches import checked_batch
from domain.errors import Invalid, ValidationFailed
from domain.idempotency import differences, key_reused
from infra.after_change import after_change
from infra.db import RequestDb, retrying
from infra.repos import customers as customers_repo
from infra.repos import purchases as purchases_repo
from infra.repos.base import Page
from infra.settings import Settings

CustomerFilter = customers_repo.CustomerFilter

# The customer's writable attributes and their catalogue (GraphQL) names: a write needs Customer.<name>.
CUSTOMER_INPUT_FIELDS = {
    "name": "name",
    "external_ref": "externalRef",
    "email": "email",
    "phone": "phone",
    "national_id": "nationalId",
    "birth_date": "birthDate",
    "address": "address",
    "locale": "locale",
    "lifecycle_stage": "lifecycleStage",
}
MAX_AMOUNT = Decimal("1000000000")
EARLIEST_PURCHASE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # older dates are typos or epoch defaults


# ---------------------------------------------------------------- reads


@dataclass(frozen=True)
class CustomerPage:
    page: Page
    count: Callable[[], Awaitable[int]]  # the total under the same filter, run only when awaited


async def customer_page(
    db: RequestDb,
    caller: Caller,
    f: CustomerFilter,
    *,
    columns: Sequence[str],
    sort: str,
    first: int,
    after: str | None,
    settings: Settings,
) -> CustomerPage:
    """One page of the customers the caller's scope reaches, with ``columns`` (the fields it may read); the
    e-mail and phone of the filter are matched in their stored (normalised) form."""
    filt = dataclasses.replace(
        f,
        email=customer_rules.normalize_email(f.email) if f.email else None,
        phone=customer_rules.normalize_phone(f.phone, settings.default_phone_region) if f.phone else None,
    )
    page = await customers_repo.page(
        db, columns=columns, scope=caller.scope, f=filt, sort=sort, first=first, after=after
    )
    return CustomerPage(page, lambda: customers_repo.count(db, scope=caller.scope, f=filt))


# ---------------------------------------------------------------- customers


@dataclass(frozen=True)
class CreateCustomer:
    """The attributes given (keys of ``CUSTOMER_INPUT_FIELDS``; an attribute not given is absent, ``None``
    clears it): plain values, an address as a dict of its given parts, the lifecycle stage's value.
    ``stop_on_duplicate``: refuse (``LikelyDuplicates``, nothing created) when likely duplicates exist."""

    fields: Mapping[str, Any]
    stop_on_duplicate: bool = False


@dataclass(frozen=True)
class CreatedCustomer:
    customer_id: UUID
    duplicates: list[duplicates.Candidate]  # likely duplicates among the caller's customers (issue 16)


@dataclass(frozen=True)
class UpdateCustomer:
    customer_id: UUID
    expected_version: int
    fields: Mapping[str, Any]  # as CreateCustomer's


@dataclass(frozen=True)
class DeleteCustomer:
    customer_id: UUID
    expected_version: int


def _customer_fields(caller: Caller, given: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The given attributes, checked against the caller's write grants, normalised as they are stored."""
    denied = [
        ValidationFailed(f"not allowed to set {gql}", field=attr)
        for attr, gql in CUSTOMER_INPUT_FIELDS.items()
        if attr in given and not caller.can_write(f"Customer.{gql}")
    ]
    if denied:
        for e in denied:
            e.code = "FORBIDDEN"
        raise Invalid(denied)
    values = {attr: given[attr] for attr in CUSTOMER_INPUT_FIELDS if attr in given}
    return customer_rules.normalize_customer(
        values, default_region=settings.default_phone_region, today=dt.datetime.now(dt.UTC).date(), creating=False
    )


async def create_customer(db: RequestDb, caller: Caller, cmd: CreateCustomer, *, settings: Settings) -> CreatedCustomer:
    """Create a customer of the caller's partner (none for staff) and place it in its initial tier in the
    same transaction; with it, its likely duplicates on the criteria whose fields the caller reads in full
    (``cmd.stop_on_duplicate``: refused instead, nothing created)."""
    values = _customer_fields(caller, cmd.fields, settings)
    if "name" not in values:
        raise ValidationFailed("a name is required", field="name")
    read = caller.decisions.read if caller.decisions is not None else None
    criteria = duplicates.allowed_criteria(read)  # the duplicate warning (issue 16)
    found = await duplicates.likely_duplicates(db, values, scope=caller.scope, criteria=criteria)
    if found and cmd.stop_on_duplicate:
        raise duplicates.LikelyDuplicates(found)
    async with db.unit_of_work() as uow:
        created = await customers_repo.create(uow, values, scope=caller.scope)
        await after_change(uow.conn, [created["id"]], actor=caller.actor)  # the initial tier, at once
        uow.commit()
    return CreatedCustomer(customer_id=created["id"], duplicates=found)


async def update_customer(db: RequestDb, caller: Caller, cmd: UpdateCustomer, *, settings: Settings) -> UUID:
    """Change the given attributes of a customer the caller's scope reaches, if it is still at
    ``expected_version`` (else a Conflict). Returns its id."""
    values = _customer_fields(caller, cmd.fields, settings)
    if not values:
        raise ValidationFailed("nothing to change", field="input")
    async with db.unit_of_work() as uow:
        await customers_repo.update_fields(uow, cmd.customer_id, cmd.expected_version, values, scope=caller.scope)
        uow.commit()
    return cmd.customer_id


async def delete_customer(db: RequestDb, caller: Caller, cmd: DeleteCustomer) -> None:
    """Soft-delete a customer the caller's scope reaches, if it is still at ``expected_version``."""
    async with db.unit_of_work() as uow:
        await customers_repo.soft_delete(uow, cmd.customer_id, cmd.expected_version, scope=caller.scope)
        uow.commit()


# ---------------------------------------------------------------- purchases


@dataclass(frozen=True)
class NewPurchase:
    """One purchase of a batch: its customer by id or by the partner's external reference (exactly one)."""

    amount: Decimal | str
    customer_id: UUID | None = None
    customer_external_ref: str | None = None
    external_id: str | None = None
    currency: str | None = None  # None: the configured currency
    channel: str | None = None
    purchased_at: dt.datetime | None = None  # None: now
    # a customer id was given that names no customer (a malformed id): reported with the batch's problems
    unknown_customer_id: bool = False


@dataclass(frozen=True)
class RecordPurchases:
    purchases: Sequence[NewPurchase]


@dataclass(frozen=True)
class RecordedPurchases:
    rows: list[dict[str, Any]]  # each item's purchase row, in the order given (a replay: the stored one)
    inserted: int


def _purchase_item(
    n: int, p: NewPurchase, currency: str, now: dt.datetime
) -> tuple[dict[str, Any], list[ValidationFailed]]:
    errors: list[ValidationFailed] = []
    where = f"purchases[{n}]"
    try:
        amount = Decimal(p.amount)
        if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or amount != round(amount, 2):
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors.append(
            ValidationFailed("amount must be positive, at most 1e9, with 2 decimals", field=f"{where}.amount")
        )
        amount = Decimal(0)
    cur = (p.currency or currency).upper()
    if len(cur) != 3 or not cur.isalpha():
        errors.append(ValidationFailed("currency is an ISO 4217 code such as EUR", field=f"{where}.currency"))
    at = p.purchased_at or now
    if at.tzinfo is None:
        errors.append(ValidationFailed("purchasedAt needs a time zone", field=f"{where}.purchasedAt"))
    elif at > now + dt.timedelta(minutes=5):
        errors.append(ValidationFailed("purchasedAt is in the future", field=f"{where}.purchasedAt"))
    elif at < EARLIEST_PURCHASE:
        errors.append(ValidationFailed("purchasedAt is before 1970", field=f"{where}.purchasedAt"))
    by_id = p.customer_id is not None or p.unknown_customer_id
    if by_id == (p.customer_external_ref is not None):
        errors.append(ValidationFailed("give customerId or customerExternalRef", field=f"{where}.customerId"))
    if p.external_id is not None and not 0 < len(p.external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field=f"{where}.externalId"))
    item = {"external_id": p.external_id, "amount": amount, "currency": cur, "channel": p.channel, "purchased_at": at}
    return item, errors


def _purchase_content(values: dict[str, Any], given: NewPurchase) -> dict[str, Any]:
    """What a purchase was recorded with, by input name; its time only when the caller gave one (else
    it is the time of the first request, which a replay can't repeat)."""
    content = {
        "customerId": values["customer_id"],
        "amount": values["amount"],
        "currency": values["currency"],
        "channel": values["channel"],
    }
    if given.purchased_at is not None:
        content["purchasedAt"] = values["purchased_at"]
    return content


async def record_purchases(
    db: RequestDb, caller: Caller, cmd: RecordPurchases, *, settings: Settings
) -> RecordedPurchases:
    """Record a batch of purchases of customers the caller's scope reaches, all or none: ``Invalid`` lists
    every problem of the batch and nothing is written. Idempotent per item on the partner and
    ``external_id`` (the same content again returns the stored purchase, other content is a CONFLICT). The
    after-change step runs in the same transaction for the customers of new purchases (churn deferred)."""
    purchases = cmd.purchases
    now = dt.datetime.now(dt.UTC)
    items, errors = checked_batch(
        purchases,
        lambda n, p: _purchase_item(n, p, settings.currency, now),
        field="purchases",
        max_batch=settings.max_batch_size,
    )

    async def attempt() -> RecordedPurchases:  # run again if PostgreSQL cancels it (infra.db.retrying)
        async with db.unit_of_work() as uow:
            refs = [p.customer_external_ref for p in purchases if not _by_id(p) and p.customer_external_ref]
            by_ref = await purchases_repo.resolve_external_refs(uow.conn, refs, caller.scope)  # one statement
            for n, (p, item) in enumerate(zip(purchases, items, strict=True)):
                if p.unknown_customer_id:
                    errors.append(ValidationFailed("no such object", field=f"purchases[{n}].customerId"))
                    item["customer_id"] = None
                elif p.customer_id is not None:
                    item["customer_id"] = p.customer_id
                elif p.customer_external_ref is not None:
                    found = by_ref.get(p.customer_external_ref)
                    if found is None:
                        errors.append(ValidationFailed("no such customer", field=f"purchases[{n}].customerExternalRef"))
                    item["customer_id"] = found
            if errors:
                raise Invalid(errors)
            rows, inserted = await purchases_repo.record(uow.conn, items, scope=caller.scope)
            # A repeated external id (sent before, by a request meanwhile, or twice in this batch) names the
            # stored purchase: it must have been recorded with this item's content (domain/idempotency.py).
            conflicts = [
                key_reused("externalId", differing, where=f"purchases[{n}].externalId")
                for n, (p, item, row) in enumerate(zip(purchases, items, rows, strict=True))
                if item["external_id"] is not None
                and (differing := differences(_purchase_content(row, p), _purchase_content(item, p)))
            ]
            if conflicts:
                raise Invalid(conflicts)  # rolls back the batch: none of it is written
            if inserted:  # set-based whatever the batch size; the churn re-score is a job queued here (issue 7)
                await after_change(uow.conn, [i["customer_id"] for i in items], actor=caller.actor, churn_mode="defer")
            uow.commit()
        return RecordedPurchases(rows=rows, inserted=inserted)

    return await retrying(attempt)


def _by_id(p: NewPurchase) -> bool:
    return p.customer_id is not None or p.unknown_customer_id
