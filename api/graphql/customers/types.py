"""GraphQL types. Objects are built from repository rows through ``present``: a guarded value is
given in full, masked or not at all as the caller's decisions say. Field guards (api/graphql/core/guard.py)
then refuse denied fields with FORBIDDEN_FIELD at every path."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.ids import to_global_id
from authz.catalogue import CATALOGUE
from authz.policy import Decisions, Level, present, presenter
from domain import churn as churn_rules
from domain import enums
from domain import sla as sla_rules
from domain.complaints import COMPLAINT_EVENT_KINDS
from infra.pagination import encode_cursor
from infra.repos.base import Page

if TYPE_CHECKING:
    from api.graphql.tiers.resolvers import TierExplanationType


def _enum(name: str, values: tuple[str, ...], description: str) -> Any:
    return strawberry.enum(Enum(name, {v.upper(): v for v in values}), description=description)  # type: ignore[misc]


LifecycleStage = _enum("LifecycleStage", enums.LIFECYCLE_STAGES, "Where a customer is in its relationship")
ComplaintStatus = _enum("ComplaintStatus", enums.COMPLAINT_STATUSES, "Complaint lifecycle state")
Severity = _enum("Severity", enums.SEVERITIES, "How bad a complaint is")
ContactChannel = _enum("ContactChannel", enums.CHANNELS, "Where a complaint came in")
SurveyChannel = _enum("SurveyChannel", enums.SURVEY_CHANNELS, "Where a survey is answered")
SurveyStatus = _enum("SurveyStatus", enums.SURVEY_STATUSES, "Survey state")
SurveyTrigger = _enum("SurveyTrigger", enums.SURVEY_TRIGGERS, "What sends a survey")
QuestionKind = _enum("QuestionKind", enums.QUESTION_KINDS, "Kind of survey question")
ChangeType = _enum("TierChangeType", enums.TIER_CHANGE_TYPES, "Why a tier changed")
PolicyStatus = _enum("PolicyStatus", enums.POLICY_STATUSES, "Tier policy state")
ComplaintEventKind = _enum(
    "ComplaintEventKind", COMPLAINT_EVENT_KINDS, "A transition, or what the SLA sweep saw: a breach, an escalation"
)


@strawberry.type(description="A problem with the input of a mutation; nothing was changed.")
class UserError:
    field: str | None
    code: str
    message: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.interface(description="An object with a global id")
class Node:
    id: strawberry.ID


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


# ---------------------------------------------------------------- tiers


@strawberry.type(name="Tier")
class TierType:
    code: str
    name: str
    rank: int
    benefits: list[str]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TierType:
        return cls(code=row["code"], name=row["name"], rank=row["rank"], benefits=list(row.get("benefits") or []))


@strawberry.type(name="TierRule")
class TierRuleType:
    code: str
    entry_rule: JSON
    retain_rule: JSON
    name: str | None = None
    rank: int | None = None
    benefits: list[str] | None = None


@strawberry.type(name="TierPolicy")
class TierPolicyType(Node):
    db_id: strawberry.Private[UUID]
    version: int
    name: str
    status: PolicyStatus
    grace_days: int
    min_stay_days: int
    created_by: str | None
    created_at: dt.datetime
    activated_by: str | None
    activated_at: dt.datetime | None
    spend_window_days: int | None = None
    description: str | None = None
    revision: int = strawberry.field(default=1, description="Edit counter of a draft (expectedRevision)")
    updated_at: dt.datetime | None = None
    updated_by: str | None = None
    retired_at: dt.datetime | None = None
    retired_by: str | None = None

    @strawberry.field
    async def tiers(self, info: Info[Context, None]) -> list[TierRuleType] | None:
        rows = await _ctx(info).loaders.tier_policy_tiers.load(self.db_id)
        return [
            TierRuleType(
                code=r["code"],
                entry_rule=r["entry_rule"],
                retain_rule=r["retain_rule"],
                name=r["name"],
                rank=r["rank"],
                benefits=list(r["benefits"] or []),
            )
            for r in rows
        ]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TierPolicyType:
        return cls(
            id=strawberry.ID(to_global_id("TierPolicy", row["id"])),
            db_id=row["id"],
            version=row["version"],
            name=row["name"],
            status=PolicyStatus(row["status"]),
            grace_days=row["grace_days"],
            min_stay_days=row["min_stay_days"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            activated_by=row["activated_by"],
            activated_at=row["activated_at"],
            spend_window_days=row.get("spend_window_days"),
            description=row.get("description"),
            revision=row.get("revision", 1),
            updated_at=row.get("updated_at"),
            updated_by=row.get("updated_by"),
            retired_at=row.get("retired_at"),
            retired_by=row.get("retired_by"),
        )


@strawberry.type(name="TierChange")
class TierChangeType:
    customer_ref: strawberry.Private[UUID]
    id: strawberry.ID
    from_tier: str | None
    to_tier: str | None
    policy_version: int | None
    change_type: ChangeType | None  # type: ignore[valid-type]
    reason: str | None
    metrics: JSON | None
    actor: str | None
    changed_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TierChangeType:
        return cls(
            customer_ref=row["customer_id"],
            id=strawberry.ID(str(row["id"])),
            from_tier=row["from_tier"],
            to_tier=row["to_tier"],
            policy_version=row["policy_version"],
            change_type=ChangeType(row["change_type"]),
            reason=row["reason"],
            metrics=row["metrics"],
            actor=row["actor"],
            changed_at=row["changed_at"],
        )


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
    def from_row(cls, row: dict[str, Any], d: Decisions) -> CustomerMetricsType:
        now = dt.datetime.now(dt.UTC)
        return cls(
            customer_ref=row["customer_id"],
            lifetime_spend=present(d, "CustomerMetrics.lifetimeSpend", row.get("lifetime_spend")),  # type: ignore[arg-type]
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
        signals = list(row["signals"] or [])
        if d.read("CustomerMetrics.spend12m") is not Level.FULL:
            signals = churn_rules.without_money(signals)
        return cls(
            level=row["level"],
            score=row["score"],
            signals=signals,
            computed_at=row["computed_at"],
            model_version=row["model_version"],
        )


def _churn_loader(info: Info[Context, None]) -> Any:
    """One churn-score loader per request, kept in the request context."""
    from strawberry.dataloader import DataLoader

    from infra import churn

    ctx = _ctx(info)
    loader = ctx.extra.get("churn_loader")
    if loader is None:

        async def load(ids: list[UUID]) -> list[dict[str, Any] | None]:
            rows = await churn.scores_for(ctx.db, ids)
            return [rows.get(i) for i in ids]

        loader = ctx.extra["churn_loader"] = DataLoader(load)
    return loader


MAX_NESTED = 50


def _nested_first(first: int) -> int:
    from domain.errors import ValidationFailed

    if not 1 <= first <= MAX_NESTED:
        raise ValidationFailed(f"first must be between 1 and {MAX_NESTED}", field="first")
    return first


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
    lifecycle_stage: LifecycleStage | None  # type: ignore[valid-type]
    tier_since: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any], d: Decisions) -> CustomerType:
        email, phone, national_id, address_of, birth_date = _customer_presenters(d)
        birth = row.get("birth_date")
        address = address_of(row.get("address"), row)
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
            email=email(row.get("email"), row),
            phone=phone(row.get("phone"), row),
            national_id=national_id(row.get("national_id"), row),
            birth_date=birth_date(birth.isoformat() if isinstance(birth, dt.date) else birth, row),
            address=_address(address),
            locale=row.get("locale"),
            lifecycle_stage=LifecycleStage(stage) if stage else None,
            tier_since=row.get("tier_since"),
        )

    @strawberry.field
    async def tier(self, info: Info[Context, None]) -> TierType | None:
        code = self.row.get("tier_code")
        if code is None:
            return None
        tier = (await _ctx(info).loaders.active_tiers()).get(code)
        return TierType.from_row(tier) if tier else TierType(code=code, name=code.title(), rank=-1, benefits=[])

    @strawberry.field(
        description="Why the customer is in its tier, in words and numbers (which rule holds, actual against "
        "threshold), and what it would take to move up; metric values the caller may not read are left out"
    )
    async def tier_explanation(
        self, info: Info[Context, None]
    ) -> Annotated[TierExplanationType, strawberry.lazy("api.graphql.tiers.resolvers")] | None:
        from api.graphql.tiers.resolvers import explain_customer

        return await explain_customer(info, self.db_id)

    @strawberry.field
    async def metrics(self, info: Info[Context, None]) -> CustomerMetricsType | None:
        row = await _ctx(info).loaders.metrics.load(self.db_id)
        return CustomerMetricsType.from_row(row, _ctx(info).decisions) if row else None

    @strawberry.field(description="The churn warning; null until the customer is first scored")
    async def churn_risk(self, info: Info[Context, None]) -> ChurnRiskType | None:
        row = await _churn_loader(info).load(self.db_id)
        return ChurnRiskType.from_row(row, _ctx(info).decisions) if row else None

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
        row = await _ctx(info).loaders.partner.load(self.partner_ref)
        return PartnerType(id=strawberry.ID(to_global_id("Partner", row["id"])), name=row["name"]) if row else None

    @strawberry.field(description="Newest first")
    async def complaints(self, info: Info[Context, None], first: int = 10) -> ComplaintConnection | None:
        page = await _ctx(info).loaders.customer_complaints.load((self.db_id, _nested_first(first)))
        return ComplaintConnection.from_page(page, "OPENED_AT_DESC", "opened_at", _complaint_builder(info))

    @strawberry.field(description="Newest first")
    async def purchases(self, info: Info[Context, None], first: int = 10) -> PurchaseConnection | None:
        page = await _ctx(info).loaders.customer_purchases.load((self.db_id, _nested_first(first)))
        return PurchaseConnection.from_page(page, "PURCHASED_AT_DESC", "purchased_at", PurchaseType.from_row)

    @strawberry.field(description="Newest first")
    async def survey_responses(self, info: Info[Context, None], first: int = 10) -> SurveyResponseConnection | None:
        page = await _ctx(info).loaders.customer_responses.load((self.db_id, _nested_first(first)))
        return SurveyResponseConnection.from_page(
            page, "SUBMITTED_AT_DESC", "submitted_at", SurveyResponseType.from_row
        )

    @strawberry.field(description="Newest first")
    async def tier_history(self, info: Info[Context, None], first: int = 10) -> TierChangeConnection | None:
        page = await _ctx(info).loaders.customer_tier_history.load((self.db_id, _nested_first(first)))
        return TierChangeConnection.from_page(page, "CHANGED_AT_DESC", "changed_at", TierChangeType.from_row)


_Presenter = Callable[[Any, dict[str, Any]], Any]


def _presenter(d: Decisions, key: str, *, consent_aware: bool) -> _Presenter:
    """``present(d, key, value, consented=…)`` as ``(value, row) -> shown``, with the decision taken once
    per role set instead of once per value (a page of customers asks it hundreds of times).
    ``consent_aware``: whether the row's consent on the field's channel counts (as in ``from_row``)."""
    show = presenter(d, key)
    channel = CATALOGUE[key].consent
    if not consent_aware or channel is None:
        return lambda value, _row: show(value, False)
    column = f"consent_{channel}_at"
    return lambda value, row: show(value, row.get(column) is not None)


def _customer_presenters(d: Decisions) -> tuple[_Presenter, ...]:
    """E-mail, phone, national id, address (consent-aware) and birth date (not), for these decisions."""
    presenters: tuple[_Presenter, ...] | None = d.memo.get("customer_presenters")
    if presenters is None:
        presenters = d.memo["customer_presenters"] = (
            *(
                _presenter(d, key, consent_aware=True)
                for key in ("Customer.email", "Customer.phone", "Customer.nationalId", "Customer.address")
            ),
            _presenter(d, "Customer.birthDate", consent_aware=False),
        )
    return presenters


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
    row = await _ctx(info).loaders.customer.load(customer_id)
    return CustomerType.from_row(row, _ctx(info).decisions) if row else None


# ---------------------------------------------------------------- complaints


@strawberry.type(name="Taxon", description="An entry of a managed taxonomy (categories, root causes)")
class TaxonType:
    code: str
    label: str
    active: bool = strawberry.field(default=True, description="Retired entries stay on the complaints that use them")


@strawberry.type(name="ComplaintEvent")
class ComplaintEventType:
    customer_ref: strawberry.Private[UUID]
    id: strawberry.ID
    from_status: ComplaintStatus | None  # type: ignore[valid-type]
    to_status: ComplaintStatus | None  # type: ignore[valid-type]
    actor: str | None
    note: str | None
    at: dt.datetime | None
    kind: ComplaintEventKind | None = None  # type: ignore[valid-type]


@strawberry.type(name="Complaint")
class ComplaintType(Node):
    db_id: strawberry.Private[UUID]
    customer_ref: strawberry.Private[UUID]
    row: strawberry.Private[dict[str, Any]]
    version: int
    external_id: str | None
    subject: str | None
    description: str | None
    severity: Severity | None  # type: ignore[valid-type]
    channel: ContactChannel | None  # type: ignore[valid-type]
    status: ComplaintStatus | None  # type: ignore[valid-type]
    assignee: str | None
    resolution_code: str | None
    tier_at_open: str | None
    first_response_due_at: dt.datetime | None
    resolution_due_at: dt.datetime | None = strawberry.field(
        description="Moves later by the time spent waiting on the customer (while waiting: as if answered now)"
    )
    first_responded_at: dt.datetime | None
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    reopen_count: int | None
    opened_at: dt.datetime | None
    updated_at: dt.datetime
    sla_policy_version: int | None = strawberry.field(description="The SLA policy the deadlines come from")
    first_response_time_left: int | None = strawberry.field(
        description="Seconds until the first-response deadline, negative when late; null once answered"
    )
    resolution_time_left: int | None = strawberry.field(
        description="Seconds until the resolution deadline, negative when late, frozen while waiting on the "
        "customer; null once resolved"
    )
    first_response_breached: bool | None
    resolution_breached: bool | None
    breached: bool | None = strawberry.field(description="Either SLA clock breached")
    sla_paused: bool | None = strawberry.field(description="The resolution clock is stopped: waiting on the customer")
    paused_seconds: int | None = strawberry.field(description="Time spent waiting on the customer so far")
    escalated_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any], d: Decisions) -> ComplaintType:
        clock = sla_rules.Clock(**{f: row[f] for f in sla_rules.CLOCK_FIELDS})
        now = row["sla_now"]  # the instant the breach verdicts (infra/sla.clock_columns) were decided for
        return cls(
            id=strawberry.ID(to_global_id("Complaint", row["id"])),
            db_id=row["id"],
            customer_ref=row["customer_id"],
            row=row,
            version=row["version"],
            external_id=row["external_id"],
            subject=row["subject"],
            description=present(d, "Complaint.description", row.get("description")),  # type: ignore[arg-type]
            severity=Severity(row["severity"]),
            channel=ContactChannel(row["channel"]),
            status=ComplaintStatus(row["status"]),
            assignee=row["assignee"],
            resolution_code=row["resolution_code"],
            tier_at_open=row["tier_at_open"],
            first_response_due_at=row["first_response_due_at"],
            resolution_due_at=sla_rules.effective_resolution_due(clock, now),
            first_responded_at=row["first_responded_at"],
            resolved_at=row["resolved_at"],
            closed_at=row["closed_at"],
            reopen_count=row["reopen_count"],
            opened_at=row["opened_at"],
            updated_at=row["updated_at"],
            sla_policy_version=row["sla_policy_version"],
            first_response_time_left=sla_rules.first_response_time_left(clock, now),
            resolution_time_left=sla_rules.resolution_time_left(clock, now),
            first_response_breached=row["sla_first_response_breached"],
            resolution_breached=row["sla_resolution_breached"],
            breached=row["sla_first_response_breached"] or row["sla_resolution_breached"],
            sla_paused=row["paused_since"] is not None and row["resolved_at"] is None,
            paused_seconds=sla_rules.paused_total_seconds(clock, now),
            escalated_at=row["escalated_at"],
        )

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)

    @strawberry.field
    async def category(self, info: Info[Context, None]) -> TaxonType | None:
        t = await _ctx(info).loaders.taxon("categories", self.row["category_code"])
        return TaxonType(code=t["code"], label=t["label"], active=t.get("active", True)) if t else None

    @strawberry.field
    async def root_cause(self, info: Info[Context, None]) -> TaxonType | None:
        code = self.row["root_cause_code"]
        t = await _ctx(info).loaders.taxon("root_causes", code) if code else None
        return TaxonType(code=t["code"], label=t["label"], active=t.get("active", True)) if t else None

    @strawberry.field
    async def follow_up_of(self, info: Info[Context, None]) -> ComplaintType | None:
        prior = self.row["follow_up_of_id"]
        row = await _ctx(info).loaders.complaint.load(prior) if prior else None
        return ComplaintType.from_row(row, _ctx(info).decisions) if row else None

    @strawberry.field
    async def events(self, info: Info[Context, None]) -> list[ComplaintEventType] | None:
        rows = await _ctx(info).loaders.complaint_events.load(self.db_id)
        d = _ctx(info).decisions
        return [
            ComplaintEventType(
                customer_ref=self.customer_ref,
                id=strawberry.ID(str(r["id"])),
                from_status=ComplaintStatus(r["from_status"]) if r["from_status"] else None,
                to_status=ComplaintStatus(r["to_status"]),
                actor=r["actor"],
                note=present(d, "ComplaintEvent.note", r["note"]),
                at=r["at"],  # type: ignore[arg-type]
                kind=ComplaintEventKind(r.get("kind") or "transition"),
            )
            for r in rows
        ]


def _complaint_builder(info: Info[Context, None]) -> Any:
    d = _ctx(info).decisions
    return lambda row: ComplaintType.from_row(row, d)


# ---------------------------------------------------------------- surveys


@strawberry.type(name="SurveyQuestion")
class SurveyQuestionType(Node):
    position: int | None
    kind: QuestionKind | None  # type: ignore[valid-type]
    dimension: str | None
    prompt: str | None
    options: list[str] | None
    required: bool | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SurveyQuestionType:
        return cls(
            id=strawberry.ID(to_global_id("SurveyQuestion", row["id"])),
            position=row["position"],
            kind=QuestionKind(row["kind"]),
            dimension=row["dimension"],
            prompt=row["prompt"],
            options=list(row["options"] or []),
            required=row["required"],
        )


@strawberry.type(name="Survey")
class SurveyType(Node):
    db_id: strawberry.Private[UUID]
    version: int
    title: str | None
    description: str | None
    status: SurveyStatus | None  # type: ignore[valid-type]
    trigger: SurveyTrigger | None  # type: ignore[valid-type]
    channels: list[SurveyChannel] | None  # type: ignore[valid-type]
    per_complaint: bool | None
    created_at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SurveyType:
        return cls(
            id=strawberry.ID(to_global_id("Survey", row["id"])),
            db_id=row["id"],
            version=row["version"],
            title=row["title"],
            description=row["description"],
            status=SurveyStatus(row["status"]),
            trigger=SurveyTrigger(row["trigger"]),
            channels=[SurveyChannel(c) for c in row["channels"]],
            per_complaint=row["per_complaint"],
            created_at=row["created_at"],
        )

    @strawberry.field
    async def questions(self, info: Info[Context, None]) -> list[SurveyQuestionType] | None:
        return [SurveyQuestionType.from_row(r) for r in await _ctx(info).loaders.survey_questions.load(self.db_id)]


@strawberry.type(name="SurveyAnswer")
class SurveyAnswerType:
    customer_ref: strawberry.Private[UUID]
    question_ref: strawberry.Private[UUID]
    score: int | None
    choices: list[str] | None
    text: str | None

    @strawberry.field
    async def question(self, info: Info[Context, None]) -> SurveyQuestionType | None:
        row = await _ctx(info).loaders.question.load(self.question_ref)
        return SurveyQuestionType.from_row(row) if row else None


@strawberry.type
class SurveyLinks:
    """The survey, customer and (post-resolution) complaint a response or an invitation belongs to,
    each read through the caller's scoped, guarded loaders."""

    survey_ref: strawberry.Private[UUID]
    customer_ref: strawberry.Private[UUID]
    complaint_ref: strawberry.Private[UUID | None]

    @strawberry.field
    async def survey(self, info: Info[Context, None]) -> SurveyType | None:
        row = await _ctx(info).loaders.survey.load(self.survey_ref)
        return SurveyType.from_row(row) if row else None

    @strawberry.field
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        return await load_customer(info, self.customer_ref)

    @strawberry.field
    async def complaint(self, info: Info[Context, None]) -> ComplaintType | None:
        if self.complaint_ref is None:
            return None
        row = await _ctx(info).loaders.complaint.load(self.complaint_ref)
        return ComplaintType.from_row(row, _ctx(info).decisions) if row else None


@strawberry.type(name="SurveyResponse")
class SurveyResponseType(Node, SurveyLinks):
    db_id: strawberry.Private[UUID]
    external_id: str | None
    channel: SurveyChannel | None  # type: ignore[valid-type]
    tier_at_response: str | None
    submitted_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SurveyResponseType:
        return cls(
            id=strawberry.ID(to_global_id("SurveyResponse", row["id"])),
            db_id=row["id"],
            customer_ref=row["customer_id"],
            survey_ref=row["survey_id"],
            complaint_ref=row["complaint_id"],
            external_id=row["external_id"],
            channel=SurveyChannel(row["channel"]),
            tier_at_response=row["tier_at_response"],
            submitted_at=row["submitted_at"],
        )

    @strawberry.field
    async def answers(self, info: Info[Context, None]) -> list[SurveyAnswerType] | None:
        d = _ctx(info).decisions
        return [
            SurveyAnswerType(
                customer_ref=self.customer_ref,
                question_ref=r["question_id"],
                score=r["score"],
                choices=list(r["choices"]) if r["choices"] is not None else None,
                text=present(d, "SurveyAnswer.text", r.get("text")),  # type: ignore[arg-type]
            )
            for r in await _ctx(info).loaders.answers.load(self.db_id)
        ]


# ---------------------------------------------------------------- connections


@strawberry.type
class ConnectionBase:
    page_info: PageInfo
    count_fn: strawberry.Private[Any] = None

    @strawberry.field(description="Total matching rows (one extra count query, only when asked for)")
    async def total_count(self) -> int | None:
        return await self.count_fn() if self.count_fn is not None else None

    @classmethod
    def from_page(cls, page: Page, sort: str, sort_column: str | None, build: Any, count_fn: Any = None) -> Any:
        edge = cls._edge  # type: ignore[attr-defined]
        edges = [
            edge(cursor=encode_cursor(sort, row.get("_sort", row.get(sort_column or "")), row["id"]), node=build(row))
            for row in page.rows
        ]
        return cls(
            edges=edges,  # type: ignore[call-arg]
            page_info=PageInfo(has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None),
            count_fn=count_fn,
        )


def _connection(node_type: Any, name: str) -> Any:
    """A Relay connection type ``<name>Connection`` with edges ``<name>Edge``."""
    edge = strawberry.type(
        type(f"{name}Edge", (), {"__annotations__": {"cursor": str, "node": node_type}}), name=f"{name}Edge"
    )
    connection = type(f"{name}Connection", (ConnectionBase,), {"__annotations__": {"edges": list[edge]}, "_edge": edge})
    return strawberry.type(connection, name=f"{name}Connection")


CustomerConnection = _connection(CustomerType, "Customer")
ComplaintConnection = _connection(ComplaintType, "Complaint")
PurchaseConnection = _connection(PurchaseType, "Purchase")
SurveyConnection = _connection(SurveyType, "Survey")
SurveyResponseConnection = _connection(SurveyResponseType, "SurveyResponse")
TierChangeConnection = _connection(TierChangeType, "TierChange")


# ---------------------------------------------------------------- prefetching (api/graphql/fastpath.py)

_Prefetch = Callable[[Context, list[Any], dict[str, Any]], Any]


def _first_key(objects: list[Any], args: dict[str, Any]) -> list[tuple[UUID, int]]:
    first = _nested_first(args.get("first", 10))
    return [(o.db_id, first) for o in objects]


# What the compiled executor loads for a whole list before it completes the list's items, per field:
# the same loader keys the resolvers above ask for (so one batch per field, as before, and no statement
# more), after which each item's resolver finds its value loaded and finishes without waiting. A hook
# returns an awaitable, or None when no item needs anything.
PREFETCH: dict[str, _Prefetch] = {
    "Customer.tier": lambda ctx, cs, _a: (
        ctx.loaders.active_tiers() if any(c.row.get("tier_code") for c in cs) else None
    ),
    "Customer.metrics": lambda ctx, cs, _a: ctx.loaders.metrics.load_many([c.db_id for c in cs]),
    "Customer.complaints": lambda ctx, cs, a: ctx.loaders.customer_complaints.load_many(_first_key(cs, a)),
    "Customer.purchases": lambda ctx, cs, a: ctx.loaders.customer_purchases.load_many(_first_key(cs, a)),
    "Complaint.customer": lambda ctx, ks, _a: ctx.loaders.customer.load_many([k.customer_ref for k in ks]),
    "Complaint.events": lambda ctx, ks, _a: ctx.loaders.complaint_events.load_many([k.db_id for k in ks]),
    "Purchase.customer": lambda ctx, ps, _a: ctx.loaders.customer.load_many([p.customer_ref for p in ps]),
}
