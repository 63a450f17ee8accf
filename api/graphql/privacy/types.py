"""GraphQL types of privacy and data quality: duplicates, merge, erasure, consent, the data-quality report."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import ConnectionBase, Edge, UserError
from api.graphql.customers.types import CustomerType, load_customer


@strawberry.enum(description="How two customers were found to be the same person (equal blind indexes)")
class DuplicateCriterion(Enum):
    EMAIL = "email"
    PHONE = "phone"
    NATIONAL_ID = "national_id"
    NAME_DOB = "name_dob"


@strawberry.enum(description="A contact channel that needs the customer's consent")
class ConsentChannel(Enum):
    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"


@strawberry.type(name="DuplicatePair", description="Two live customers of the same partner that look like one")
class DuplicatePairType:
    a_ref: strawberry.Private[UUID]
    b_ref: strawberry.Private[UUID]
    reasons: list[DuplicateCriterion]
    dismissed: bool = strawberry.field(
        default=False,
        description='Marked "not a duplicate" by a data steward (dismissDuplicatePair) for every criterion it '
        "matches on; a pair that came to match on another criterion since is open again (false, with the old "
        "dismissal's who, when and why)",
    )
    dismissed_by: str | None = None
    dismissed_at: dt.datetime | None = None
    dismissal_reason: str | None = strawberry.field(default=None, description="The reason code given, if any")

    @classmethod
    def from_row(cls, r: dict[str, Any], dismissal: dict[str, Any] | None = None) -> DuplicatePairType:
        """From a row of quality_repo.duplicate_pairs (its dismissal columns), or a pair and its dismissal row."""
        if dismissal is None and r.get("dismissed_by") is not None:
            dismissal = {"dismissed_by": r["dismissed_by"], "dismissed_at": r["dismissed_at"]}
            dismissal["reason"] = r["dismissal_reason"]
        return cls(
            a_ref=r["a_id"],
            b_ref=r["b_id"],
            reasons=[DuplicateCriterion(x) for x in r["reasons"]],
            dismissed=bool(r["dismissed"]) if "dismissed" in r else dismissal is not None,
            dismissed_by=dismissal["dismissed_by"] if dismissal else None,
            dismissed_at=dismissal["dismissed_at"] if dismissal else None,
            dismissal_reason=dismissal["reason"] if dismissal else None,
        )

    @strawberry.field(description="The older-id customer of the pair, as the caller may see it")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def a(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.a_ref)

    @strawberry.field
    async def b(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.b_ref)


@strawberry.type(name="DuplicatePairConnection")
class DuplicatePairConnection(ConnectionBase):
    edges: list[Edge[DuplicatePairType]]


@strawberry.type(name="MissingField")
class MissingFieldType:
    field: str
    missing: int
    share: float = strawberry.field(description="missing / live customers, 0..1")


@strawberry.type(name="DuplicateCount")
class DuplicateCountType:
    criterion: DuplicateCriterion
    pairs: int


@strawberry.type(name="MonthCount")
class MonthCountType:
    month: str = strawberry.field(description="YYYY-MM (UTC)")
    merges: int


@strawberry.type(name="MetricsStaleness", description="Age of each live customer's metrics (now - computedAt)")
class MetricsStalenessType:
    customers: int
    without_metrics: int
    median_hours: float | None
    p90_hours: float | None
    p99_hours: float | None
    max_hours: float | None
    older_than_days: int
    stale_customers: int = strawberry.field(description="Customers whose metrics are older than olderThanDays")


@strawberry.type(name="DataQualityReport")
class DataQualityReportType:
    live_customers: int
    erased_customers: int
    merged_customers: int
    missing: list[MissingFieldType] = strawberry.field(
        description="Per required field (TIERWISE_QUALITY_REQUIRED_FIELDS): live customers without it"
    )
    duplicate_pairs: int = strawberry.field(
        description="Open candidate pairs (any criterion; pairs dismissed as not duplicates are not open)"
    )
    duplicates: list[DuplicateCountType] = strawberry.field(description="Open candidate pairs per criterion")
    merges_by_month: list[MonthCountType] = strawberry.field(description="The last 24 months")
    metrics_staleness: MetricsStalenessType


@strawberry.type(name="CustomerMerge")
class CustomerMergeType:
    id: strawberry.ID
    survivor_id: strawberry.ID
    duplicate_id: strawberry.ID
    reasons: list[str]
    filled_fields: list[str] = strawberry.field(description="Survivor fields that were empty, taken from the duplicate")
    moved: JSON = strawberry.field(description="Rows moved to the survivor, per kind")
    actor: str
    merged_at: dt.datetime

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> CustomerMergeType:
        return cls(
            id=strawberry.ID(str(r["id"])),
            survivor_id=strawberry.ID(to_global_id("Customer", r["survivor_id"])),
            duplicate_id=strawberry.ID(to_global_id("Customer", r["duplicate_id"])),
            reasons=list(r["reasons"]),
            filled_fields=list(r["filled_fields"]),
            moved=r["moved"],
            actor=r["actor"],
            merged_at=r["merged_at"],
        )


@strawberry.type
class MergeCustomersPayload:
    merge: CustomerMergeType | None = None
    survivor: CustomerType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DismissDuplicatePairPayload:
    pair: DuplicatePairType | None = None
    changed: bool = strawberry.field(default=False, description="False when the pair was dismissed already")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RestoreDuplicatePairPayload:
    pair: DuplicatePairType | None = None
    changed: bool = strawberry.field(default=False, description="False when the pair was not dismissed")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EraseCustomerPayload:
    erased_id: strawberry.ID | None = None
    erased_at: dt.datetime | None = None
    erased: JSON | None = strawberry.field(default=None, description="What was overwritten, per kind (counts)")
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ConsentPayload:
    customer: CustomerType | None = None
    changed: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)
