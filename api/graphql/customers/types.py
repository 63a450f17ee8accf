"""GraphQL types of customers: the customer, its address, consent, partner, metrics, churn risk and
purchases. Objects are built from repository rows as they are read (``from_row`` never masks): the field
guards (api/graphql/core/guard.py) give each guarded value in full, masked by the catalogue's mask, or
refuse it with FORBIDDEN_FIELD, at every path, as the caller's decisions say. The customer's links to
other slices (complaints, survey responses, tiers) name their types with ``strawberry.lazy``: other
slices import this one, never the other way round."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.enums import LifecycleStage
from api.graphql.core.ids import to_global_id
from api.graphql.core.relay import ConnectionBase, Edge, Node, UserError, _nested_first, lazy
from api.usecases.queues import visible_signals
from authz.policy import Decisions

if TYPE_CHECKING:
    from api.graphql.complaints.types import ComplaintConnection
    from api.graphql.surveys.types import SurveyResponseConnection
    from api.graphql.tiers.types import TierChangeConnection, TierExplanationType, TierType

_COMPLAINTS = "api.graphql.complaints.types"
_SURVEYS = "api.graphql.surveys.types"
_TIERS = "api.graphql.tiers.types"


# ---------------------------------------------------------------- customers


@strawberry.type(name="Address")
class AddressType:
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None


@strawberry.type(name="Consent", description="When the customer consented to contact on each channel")
class ConsentType:
    email: dt.datetime | None
    sms: dt.datetime | None
    phone: dt.datetime | None


@strawberry.type(name="Partner")
class PartnerType(Node):
    name: str | None


@strawberry.type(name="CustomerMetrics")
class CustomerMetricsType:
    customer_ref: strawberry.Private[UUID]
    lifetime_spend: Decimal | None
    order_count: int | None
    spend12m: Decimal | None
    orders12m: int | None
    first_purchase_at: dt.datetime | None
    last_purchase_at: dt.datetime | None
    tenure_days: int | None
    open_complaints: int | None
    latest_nps: int | None
    latest_csat: int | None
    computed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CustomerMetricsType:
        now = dt.datetime.now(dt.UTC)
        return cls(
            customer_ref=row["customer_id"],
            lifetime_spend=row.get("lifetime_spend"),
            order_count=row["order_count"],
            spend12m=row["spend_12m"],
            orders12m=row["orders_12m"],
            first_purchase_at=row["first_purchase_at"],
            last_purchase_at=row["last_purchase_at"],
            tenure_days=(now - row["customer_created_at"]).days,
            open_complaints=row["open_complaints"],
            latest_nps=row["latest_nps"],
            latest_csat=row["latest_csat"],
            computed_at=row["computed_at"],
        )


@strawberry.type(name="ChurnRisk", description="An explainable churn warning (domain/churn.py)")
class ChurnRiskType:
    level: str | None = strawberry.field(description="green, yellow or red")
    score: int | None = strawberry.field(description="0-100: the sum of the weights of the signals that fired")
    signals: JSON | None = strawberry.field(
        description="The signals that fired, strongest first: [{code, weight, message, values}]; monetary values "
        "only for callers who may read spend figures"
    )
    computed_at: dt.datetime | None
    model_version: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any], d: Decisions) -> ChurnRiskType:
        signals = visible_signals(d, list(row["signals"] or []))
        return cls(
            level=row["level"],
            score=row["score"],
            signals=JSON(signals),
            computed_at=row["computed_at"],
            model_version=row["model_version"],
        )


def _churn_loader(info: Info[Context, None]) -> Any:
    """One churn-score loader per request, kept in the request context."""
    from strawberry.dataloader import DataLoader

    from infra import churn

    ctx = context_of(info)
    loader = ctx.churn_loader
    if loader is None:

        async def load(ids: list[UUID]) -> list[dict[str, Any] | None]:
            rows = await churn.scores_for(ctx.db, ids)
            return [rows.get(i) for i in ids]

        loader = ctx.churn_loader = DataLoader(load)
    return loader


@strawberry.type(name="Customer")
class CustomerType(Node):
    db_id: strawberry.Private[UUID]
    partner_ref: strawberry.Private[UUID | None]
    row: strawberry.Private[dict[str, Any]]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    external_ref: str | None
    name: str | None
    email: str | None
    phone: str | None
    national_id: str | None
    birth_date: str | None = strawberry.field(description="YYYY-MM-DD; masked: the year only")
    address: AddressType | None
    locale: str | None
    lifecycle_stage: LifecycleStage | None
    tier_since: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CustomerType:
        """Full values, as read: the field guard masks or refuses them for the caller."""
        birth = row.get("birth_date")
        address = row.get("address")
        # A value that fails its integrity check is an exception (infra/crypto.py): left as the field's
        # value, it is reported at its path (DATA_INTEGRITY) and the field is null.
        stage = row.get("lifecycle_stage")
        return cls(
            id=strawberry.ID(to_global_id("Customer", row["id"])),
            db_id=row["id"],
            partner_ref=row["partner_id"],
            row=row,
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            external_ref=row.get("external_ref"),
            name=row.get("name"),
            email=row.get("email"),
            phone=row.get("phone"),
            national_id=row.get("national_id"),
            birth_date=birth.isoformat() if isinstance(birth, dt.date) else birth,
            address=_address(address),
            locale=row.get("locale"),
            lifecycle_stage=LifecycleStage(stage) if stage else None,
            tier_since=row.get("tier_since"),
        )

    @strawberry.field
    async def tier(self, info: Info[Context, None]) -> Annotated[TierType, strawberry.lazy(_TIERS)] | None:
        code = self.row.get("tier_code")
        if code is None:
            return None
        tier = (await context_of(info).loaders.active_tiers()).get(code)
        tier_type: type[TierType] = lazy(_TIERS, "TierType")
        return tier_type.from_row(tier) if tier else tier_type(code=code, name=code.title(), rank=-1, benefits=[])

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Why the customer is in its tier, in words and numbers (which rule holds, actual against "
        "threshold), and what it would take to move up; metric values the caller may not read are left out"
    )
    async def tier_explanation(
        self, info: Info[Context, None]
    ) -> Annotated[TierExplanationType, strawberry.lazy(_TIERS)] | None:
        explain: Callable[[Info[Context, None], UUID], Awaitable[TierExplanationType | None]]
        explain = lazy("api.graphql.tiers.resolvers", "explain_customer")
        return await explain(info, self.db_id)

    @strawberry.field
    async def metrics(self, info: Info[Context, None]) -> CustomerMetricsType | None:
        row = await context_of(info).loaders.metrics.load(self.db_id)
        return CustomerMetricsType.from_row(row) if row else None

    @strawberry.field(description="The churn warning; null until the customer is first scored")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def churn_risk(self, info: Info[Context, None]) -> ChurnRiskType | None:
        row = await _churn_loader(info).load(self.db_id)
        return ChurnRiskType.from_row(row, context_of(info).decisions) if row else None

    @strawberry.field
    def consent(self) -> ConsentType | None:
        r = self.row
        if "consent_email_at" not in r:
            return None
        return ConsentType(email=r["consent_email_at"], sms=r["consent_sms_at"], phone=r["consent_phone_at"])

    @strawberry.field
    async def partner(self, info: Info[Context, None]) -> PartnerType | None:
        if self.partner_ref is None:
            return None
        row = await context_of(info).loaders.partner.load(self.partner_ref)
        return PartnerType(id=strawberry.ID(to_global_id("Partner", row["id"])), name=row["name"]) if row else None

    @strawberry.field(description="Newest first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def complaints(
        self, info: Info[Context, None], first: int = 10
    ) -> Annotated[ComplaintConnection, strawberry.lazy(_COMPLAINTS)] | None:
        page = await context_of(info).loaders.customer_complaints.load((self.db_id, _nested_first(first)))
        connection: type[ComplaintConnection] = lazy(_COMPLAINTS, "ComplaintConnection")
        complaint = lazy(_COMPLAINTS, "ComplaintType")
        return connection.from_page(page, "OPENED_AT_DESC", "opened_at", complaint.from_row)

    @strawberry.field(description="Newest first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def purchases(self, info: Info[Context, None], first: int = 10) -> PurchaseConnection | None:
        page = await context_of(info).loaders.customer_purchases.load((self.db_id, _nested_first(first)))
        return PurchaseConnection.from_page(page, "PURCHASED_AT_DESC", "purchased_at", PurchaseType.from_row)

    @strawberry.field(description="Newest first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def survey_responses(
        self, info: Info[Context, None], first: int = 10
    ) -> Annotated[SurveyResponseConnection, strawberry.lazy(_SURVEYS)] | None:
        page = await context_of(info).loaders.customer_responses.load((self.db_id, _nested_first(first)))
        connection: type[SurveyResponseConnection] = lazy(_SURVEYS, "SurveyResponseConnection")
        response = lazy(_SURVEYS, "SurveyResponseType")
        return connection.from_page(page, "SUBMITTED_AT_DESC", "submitted_at", response.from_row)

    @strawberry.field(description="Newest first")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def tier_history(
        self, info: Info[Context, None], first: int = 10
    ) -> Annotated[TierChangeConnection, strawberry.lazy(_TIERS)] | None:
        page = await context_of(info).loaders.customer_tier_history.load((self.db_id, _nested_first(first)))
        connection: type[TierChangeConnection] = lazy(_TIERS, "TierChangeConnection")
        change = lazy(_TIERS, "TierChangeType")
        return connection.from_page(page, "CHANGED_AT_DESC", "changed_at", change.from_row)


def _address(address: Any) -> Any:
    if isinstance(address, dict) and address:
        return AddressType(**{_camel_to_snake(k): v for k, v in address.items()})
    return address if isinstance(address, Exception) else None


def _camel_to_snake(key: str) -> str:
    return "postal_code" if key in ("postalCode", "postal_code") else key


# ---------------------------------------------------------------- purchases


@strawberry.type(name="Purchase")
class PurchaseType(Node):
    customer_ref: strawberry.Private[UUID]
    external_id: str | None
    amount: Decimal | None
    currency: str | None
    channel: str | None
    purchased_at: dt.datetime | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PurchaseType:
        return cls(
            id=strawberry.ID(to_global_id("Purchase", row["id"])),
            customer_ref=row["customer_id"],
            external_id=row["external_id"],
            amount=row["amount"],
            currency=row["currency"],
            channel=row["channel"],
            purchased_at=row["purchased_at"],
            created_at=row["created_at"],
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)


async def load_customer(info: Info[Context, None], customer_id: UUID) -> CustomerType | None:
    row = await context_of(info).loaders.customer.load(customer_id)
    return CustomerType.from_row(row) if row else None


# ---------------------------------------------------------------- connections


@strawberry.type(name="CustomerConnection")
class CustomerConnection(ConnectionBase):
    edges: list[Edge[CustomerType]]


@strawberry.type(name="PurchaseConnection")
class PurchaseConnection(ConnectionBase):
    edges: list[Edge[PurchaseType]]


@strawberry.type(
    name="DuplicateCandidate",
    description="An existing customer a new one likely duplicates; its fields follow the caller's read access",
)
class DuplicateCandidateType:
    id: strawberry.ID
    reasons: list[str] = strawberry.field(
        description="EMAIL, PHONE, NATIONAL_ID, NAME_DOB (same name and birth date) or SIMILAR_NAME_DOB"
    )
    customer_ref: strawberry.Private[UUID]

    @classmethod
    def of(cls, customer_id: UUID, reasons: Any) -> DuplicateCandidateType:
        return cls(
            id=strawberry.ID(to_global_id("Customer", customer_id)), reasons=list(reasons), customer_ref=customer_id
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)


@strawberry.type
class CustomerPayload:
    customer: CustomerType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
    duplicates: list[DuplicateCandidateType] | None = strawberry.field(
        default=None, description="createCustomer: the existing customers the new one likely duplicates"
    )


@strawberry.type
class DeleteCustomerPayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RecordPurchasesPayload:
    purchases: list[PurchaseType] = strawberry.field(default_factory=list)
    inserted_count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)
