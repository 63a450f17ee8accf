"""Use-cases behind the resolvers: each validates its input through domain/, runs its statements in
one unit of work, and returns GraphQL objects read back through the caller's loaders (so what a
mutation returns is guarded exactly like a query)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import forget
from api.graphql.customers.types import (
    CustomerConnection,
    CustomerType,
    DuplicateCandidateType,
    PurchaseType,
    load_customer,
)
from api.usecases import duplicates
from domain import customers as customer_rules
from domain.errors import Invalid, NotFound, ValidationFailed
from domain.idempotency import differences, key_reused
from infra.after_change import after_change
from infra.repos import customers as customers_repo
from infra.repos import purchases as purchases_repo

if TYPE_CHECKING:
    from api.graphql.core.context import Context
    from api.graphql.customers.inputs import (
        CreateCustomerInput,
        CustomerFilter,
        DeleteCustomerInput,
        RecordPurchasesInput,
        UpdateCustomerInput,
    )

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


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


def _uuid(global_id: str, type_name: str, field: str) -> UUID:
    return from_global_id(global_id, type_name, field=field)[1]


# ---------------------------------------------------------------- reads


async def customer_page(info: Info[Context, None], first: int, after: str | None, f: CustomerFilter, sort: str) -> Any:
    ctx = _ctx(info)
    filt = customers_repo.CustomerFilter(
        tiers=f.tiers,
        lifecycle_stages=[s.value for s in f.lifecycle_stages] if f.lifecycle_stages else None,
        name_contains=f.name_contains,
        email=customer_rules.normalize_email(f.email) if f.email else None,
        phone=customer_rules.normalize_phone(f.phone, ctx.settings.default_phone_region) if f.phone else None,
        created_after=f.created_after,
        created_before=f.created_before,
        min_spend_12m=f.min_spend12m,
    )
    page = await customers_repo.page(
        ctx.db, columns=ctx.loaders.customer_columns, scope=ctx.scope, f=filt, sort=sort, first=first, after=after
    )
    for row in page.rows:  # prime the loader: nested paths back to these customers cost nothing
        ctx.loaders.customer.prime(row["id"], row)
    return CustomerConnection.from_page(
        page,
        sort,
        None,
        CustomerType.from_row,
        lambda: customers_repo.count(ctx.db, scope=ctx.scope, f=filt),
    )


# ---------------------------------------------------------------- customers


def _customer_fields(info: Info[Context, None], inp: Any) -> dict[str, Any]:
    """The input fields actually given, checked against the caller's write grants."""
    ctx = _ctx(info)
    given: dict[str, Any] = {}
    denied: list[ValidationFailed] = []
    for attr, gql in CUSTOMER_INPUT_FIELDS.items():
        value = getattr(inp, attr, strawberry.UNSET)
        if value is strawberry.UNSET:
            continue
        if not ctx.decisions.can_write(f"Customer.{gql}"):
            denied.append(ValidationFailed(f"not allowed to set {gql}", field=attr))
            continue
        if attr == "address" and value is not None:
            value = {k: v for k, v in strawberry.asdict(value).items() if v is not None}
        elif attr == "lifecycle_stage" and value is not None:
            value = value.value
        given[attr] = value
    if denied:
        for e in denied:
            e.code = "FORBIDDEN"
        raise Invalid(denied)
    return customer_rules.normalize_customer(
        given, default_region=ctx.settings.default_phone_region, today=dt.datetime.now(dt.UTC).date(), creating=False
    )


async def _read_back_customer(info: Info[Context, None], customer_id: UUID) -> CustomerType | None:
    forget(_ctx(info).loaders.customer, customer_id)
    return await load_customer(info, customer_id)


async def create_customer(info: Info[Context, None], inp: CreateCustomerInput) -> Any:
    from api.graphql.customers.types import CustomerPayload

    ctx = _ctx(info)
    values = _customer_fields(info, inp)
    if "name" not in values:
        raise ValidationFailed("a name is required", field="name")
    criteria = duplicates.allowed_criteria(ctx.decisions.read)  # the duplicate warning (issue 16)
    found = await duplicates.likely_duplicates(ctx.db, values, partner_id=ctx.principal.partner_id, criteria=criteria)
    if found and inp.on_duplicate.value == "STOP":
        raise duplicates.LikelyDuplicates(found)
    async with ctx.db.unit_of_work() as uow:
        created = await customers_repo.create(uow, values, partner_id=ctx.principal.partner_id)
        await after_change(uow.conn, [created["id"]], actor=ctx.actor)  # the initial tier, at once
        uow.commit()
    return CustomerPayload(
        customer=await _read_back_customer(info, created["id"]),
        duplicates=[DuplicateCandidateType.of(d.customer_id, d.reasons) for d in found],
    )


async def update_customer(info: Info[Context, None], inp: UpdateCustomerInput) -> Any:
    from api.graphql.customers.types import CustomerPayload

    ctx = _ctx(info)
    customer_id = _uuid(inp.id, "Customer", "id")
    values = _customer_fields(info, inp)
    if not values:
        raise ValidationFailed("nothing to change", field="input")
    async with ctx.db.unit_of_work() as uow:
        await customers_repo.update_fields(uow, customer_id, inp.expected_version, values, scope=ctx.scope)
        uow.commit()
    return CustomerPayload(customer=await _read_back_customer(info, customer_id))


async def delete_customer(info: Info[Context, None], inp: DeleteCustomerInput) -> Any:
    from api.graphql.customers.types import DeleteCustomerPayload

    ctx = _ctx(info)
    customer_id = _uuid(inp.id, "Customer", "id")
    async with ctx.db.unit_of_work() as uow:
        await customers_repo.soft_delete(uow, customer_id, inp.expected_version, scope=ctx.scope)
        uow.commit()
    return DeleteCustomerPayload(deleted_id=inp.id)


# ---------------------------------------------------------------- purchases


def _purchase_item(n: int, p: Any, currency: str, now: dt.datetime) -> tuple[dict[str, Any], list[ValidationFailed]]:
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
    if (p.customer_id is None) == (p.customer_external_ref is None):
        errors.append(ValidationFailed("give customerId or customerExternalRef", field=f"{where}.customerId"))
    if p.external_id is not None and not 0 < len(p.external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field=f"{where}.externalId"))
    item = {"external_id": p.external_id, "amount": amount, "currency": cur, "channel": p.channel, "purchased_at": at}
    return item, errors


# ---------------------------------------------------------------- complaints

# ---------------------------------------------------------------- surveys


def _purchase_content(values: dict[str, Any], given: Any) -> dict[str, Any]:
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


async def record_purchases(info: Info[Context, None], inp: RecordPurchasesInput) -> Any:
    from api.graphql.customers.types import RecordPurchasesPayload

    ctx = _ctx(info)
    if not inp.purchases:
        raise ValidationFailed("no purchases given", field="purchases")
    if len(inp.purchases) > ctx.settings.max_batch_size:
        raise ValidationFailed(f"at most {ctx.settings.max_batch_size} purchases per batch", field="purchases")
    now = dt.datetime.now(dt.UTC)
    items: list[dict[str, Any]] = []
    errors: list[ValidationFailed] = []
    for n, p in enumerate(inp.purchases):
        item, problems = _purchase_item(n, p, ctx.settings.currency, now)
        errors += problems
        items.append(item)
    async with ctx.db.unit_of_work() as uow:
        refs = [p.customer_external_ref for p in inp.purchases if p.customer_id is None and p.customer_external_ref]
        by_ref = await purchases_repo.resolve_external_refs(uow.conn, ctx.principal.partner_id, refs)  # one statement
        for n, (p, item) in enumerate(zip(inp.purchases, items, strict=True)):
            if p.customer_id is not None:
                try:
                    item["customer_id"] = _uuid(p.customer_id, "Customer", f"purchases[{n}].customerId")
                except NotFound as exc:
                    errors.append(ValidationFailed(exc.message, field=exc.field))
            elif p.customer_external_ref is not None:
                found = by_ref.get(p.customer_external_ref)
                if found is None:
                    errors.append(ValidationFailed("no such customer", field=f"purchases[{n}].customerExternalRef"))
                item["customer_id"] = found
        if errors:
            raise Invalid(errors)
        rows, inserted = await purchases_repo.record(
            uow.conn, items, partner_id=ctx.principal.partner_id, scope=ctx.scope
        )
        # A repeated external id (sent before, by a request meanwhile, or twice in this batch) names the
        # stored purchase: it must have been recorded with this item's content (domain/idempotency.py).
        conflicts = [
            key_reused("externalId", differing, where=f"purchases[{n}].externalId")
            for n, (p, item, row) in enumerate(zip(inp.purchases, items, rows, strict=True))
            if item["external_id"] is not None
            and (differing := differences(_purchase_content(row, p), _purchase_content(item, p)))
        ]
        if conflicts:
            raise Invalid(conflicts)  # rolls back the batch: none of it is written
        if inserted:  # set-based whatever the batch size; the churn re-score is a job queued here (issue 7)
            await after_change(uow.conn, [i["customer_id"] for i in items], actor=ctx.actor, churn_mode="defer")
        uow.commit()
    return RecordPurchasesPayload(purchases=[PurchaseType.from_row(r) for r in rows], inserted_count=inserted)
