"""GraphQL inputs of customers: filters and order, create/update/delete, purchases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import Enum

import strawberry

from api.graphql.core.enums import (
    LifecycleStage,
)


@strawberry.enum
class CustomerOrder(Enum):
    CREATED_AT = "CREATED_AT"
    CREATED_AT_DESC = "CREATED_AT_DESC"
    UPDATED_AT_DESC = "UPDATED_AT_DESC"
    NAME = "NAME"
    SPEND_12M_DESC = "SPEND_12M_DESC"
    LIFETIME_SPEND_DESC = "LIFETIME_SPEND_DESC"


@strawberry.input
class CustomerFilter:
    tiers: list[str] | None = None
    lifecycle_stages: list[LifecycleStage] | None = None
    name_contains: str | None = None
    email: str | None = None
    phone: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    min_spend12m: Decimal | None = None


@strawberry.input
class AddressInput:
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None


LOCALE_DESCRIPTION = (
    "A BCP 47 language tag (en-GB, zh-Hant-TW, es-419; _ is accepted for -), stored and returned in CLDR's "
    "normal form: en_GB, zh_Hant_TW, es_419"
)


@strawberry.enum(description="What createCustomer does when existing customers look like the new one")
class OnDuplicate(Enum):
    CREATE = "CREATE"  # create it, and list the likely duplicates in the payload
    STOP = "STOP"  # create nothing, list them, and answer with a DUPLICATE user error


@strawberry.input
class CreateCustomerInput:
    name: str
    external_ref: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    national_id: str | None = strawberry.UNSET
    birth_date: dt.date | None = strawberry.UNSET
    address: AddressInput | None = strawberry.UNSET
    locale: str | None = strawberry.field(default=strawberry.UNSET, description=LOCALE_DESCRIPTION)
    lifecycle_stage: LifecycleStage | None = strawberry.UNSET
    on_duplicate: OnDuplicate = strawberry.field(
        default=OnDuplicate.CREATE,
        description="Likely duplicates (same e-mail, phone, national id, or name and birth date, among the "
        "caller's own customers, on the fields the caller reads in full) are listed in the payload; STOP "
        "creates nothing when there are any",
    )


@strawberry.input
class UpdateCustomerInput:
    id: strawberry.ID
    expected_version: int
    name: str | None = strawberry.UNSET
    external_ref: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    national_id: str | None = strawberry.UNSET
    birth_date: dt.date | None = strawberry.UNSET
    address: AddressInput | None = strawberry.UNSET
    locale: str | None = strawberry.field(default=strawberry.UNSET, description=LOCALE_DESCRIPTION)
    lifecycle_stage: LifecycleStage | None = strawberry.UNSET


@strawberry.input
class DeleteCustomerInput:
    id: strawberry.ID
    expected_version: int


@strawberry.input
class PurchaseInput:
    customer_id: strawberry.ID | None = None
    customer_external_ref: str | None = None
    external_id: str | None = None
    amount: Decimal
    currency: str | None = None
    channel: str | None = None
    purchased_at: dt.datetime | None = None


@strawberry.input
class RecordPurchasesInput:
    purchases: list[PurchaseInput]
