"""Query and Mutation: thin resolvers that read arguments, call one repository or use-case, and map
the result. Access checks are not here: api/graphql/core/guard.py installs them on the schema from the catalogue,
for fields and for the arguments that filter or sort by them (authz/catalogue.py, ARGUMENTS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, TypeVar
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from api.graphql.access.resolvers import AdminMutation, AdminQuery
from api.graphql.complaints.types import ComplaintConnection, ComplaintType, TaxonType
from api.graphql.core.context import Context
from api.graphql.core.enums import (
    ComplaintStatus,
    ContactChannel,
    LifecycleStage,
    QuestionKind,
    Severity,
    SurveyChannel,
    SurveyStatus,
    SurveyTrigger,
)
from api.graphql.core.guard import install_guards
from api.graphql.core.ids import from_global_id
from api.graphql.core.input_limits import install_length_checks
from api.graphql.core.relay import Node, UserError
from api.graphql.core.resolving import mutate, page_size, query
from api.graphql.customers.types import CustomerConnection, CustomerType, PurchaseType
from api.graphql.privacy.resolvers import PrivacyMutation, PrivacyQuery
from api.graphql.reports.resolvers import ReportMutation, ReportQuery
from api.graphql.surveys.types import SurveyConnection, SurveyResponseType, SurveyType
from api.graphql.tiers.resolvers import TierMutation, TierQuery
from api.graphql.tiers.types import TierPolicyType
from api.usecases import customers as usecases
from authz.catalogue import GUARDED
from domain.errors import NotFound, ValidationFailed
from infra.repos import complaints as complaints_repo
from infra.repos import surveys as surveys_repo
from infra.repos import tiers as tiers_repo

P = TypeVar("P")


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


def _page_size(info: Info[Context, None], first: int) -> int:
    return page_size(_ctx(info).settings.max_page_size, first)


async def _one(global_id: str, type_name: str, load: Callable[[UUID], Awaitable[Any]], build: Callable[[Any], P]) -> P:
    """One object by its global id through the caller's (scoped, guarded) loader; NOT_FOUND otherwise."""

    async def run() -> P:
        _, raw = from_global_id(global_id, type_name)
        row = await load(raw)
        if row is None:
            raise NotFound("no such object", field="id")
        return build(row)

    return await query(run)


# ---------------------------------------------------------------- viewer


@strawberry.enum
class Access(Enum):
    FULL = "FULL"
    CONSENTED = "CONSENTED"
    MASKED = "MASKED"
    DENIED = "DENIED"


@strawberry.type
class FieldAccess:
    field: str
    access: Access


@strawberry.type
class Viewer:
    subject: str
    kind: str
    roles: list[str]
    partner_id: strawberry.ID | None
    policy_version: int

    @strawberry.field(
        description="FULL, CONSENTED, MASKED or DENIED for every guarded field, so a UI can hide columns up front"
    )
    def field_access(
        self,
        info: Info[Context, None],
        type: Annotated[str | None, strawberry.argument(description="only this type, e.g. Customer")] = None,
    ) -> list[FieldAccess]:
        d = _ctx(info).decisions
        return [
            FieldAccess(field=k, access=Access(d.read(k).value))
            for k in sorted(GUARDED)
            if GUARDED[k].type_name not in ("Query", "Mutation") and (type is None or GUARDED[k].type_name == type)
        ]


# ---------------------------------------------------------------- inputs


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
    lifecycle_stages: list[LifecycleStage] | None = None  # type: ignore[valid-type]
    name_contains: str | None = None
    email: str | None = None
    phone: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    min_spend12m: Decimal | None = None


@strawberry.enum
class ComplaintOrder(Enum):
    OPENED_AT_DESC = "OPENED_AT_DESC"
    OPENED_AT = "OPENED_AT"
    UPDATED_AT_DESC = "UPDATED_AT_DESC"


@strawberry.input
class ComplaintFilter:
    statuses: list[ComplaintStatus] | None = None  # type: ignore[valid-type]
    severities: list[Severity] | None = None  # type: ignore[valid-type]
    categories: list[str] | None = None
    customer_id: strawberry.ID | None = None
    opened_after: dt.datetime | None = None
    opened_before: dt.datetime | None = None
    breached: bool | None = None


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
    lifecycle_stage: LifecycleStage | None = strawberry.UNSET  # type: ignore[valid-type]


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
    lifecycle_stage: LifecycleStage | None = strawberry.UNSET  # type: ignore[valid-type]


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


@strawberry.input
class OpenComplaintInput:
    customer_id: strawberry.ID
    subject: str
    description: str
    category: str
    severity: Severity = Severity.MEDIUM  # type: ignore[valid-type,attr-defined]
    channel: ContactChannel = ContactChannel.WEB  # type: ignore[valid-type,attr-defined]
    external_id: str | None = None
    follow_up_of: strawberry.ID | None = None


@strawberry.input
class TransitionComplaintInput:
    id: strawberry.ID
    expected_version: int
    to: ComplaintStatus  # type: ignore[valid-type]
    assignee: str | None = None
    resolution_code: str | None = None
    root_cause_code: str | None = None
    note: str | None = None


@strawberry.input
class SurveyQuestionInput:
    kind: QuestionKind  # type: ignore[valid-type]
    dimension: str
    prompt: str
    options: list[str] | None = None
    required: bool = True


@strawberry.input
class CreateSurveyInput:
    title: str
    channels: list[SurveyChannel]  # type: ignore[valid-type]
    questions: list[SurveyQuestionInput]
    description: str | None = None
    trigger: SurveyTrigger = SurveyTrigger.MANUAL  # type: ignore[valid-type,attr-defined]
    per_complaint: bool = False
    status: SurveyStatus = SurveyStatus.ACTIVE  # type: ignore[valid-type,attr-defined]


@strawberry.input
class AnswerInput:
    question_id: strawberry.ID
    score: int | None = None
    choices: list[str] | None = None
    text: str | None = None


@strawberry.input
class SubmitSurveyResponseInput:
    survey_id: strawberry.ID
    customer_id: strawberry.ID
    channel: SurveyChannel  # type: ignore[valid-type]
    answers: list[AnswerInput]
    complaint_id: strawberry.ID | None = None
    external_id: str | None = None


# ---------------------------------------------------------------- payloads


@strawberry.type
class CustomerPayload:
    customer: CustomerType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteCustomerPayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class RecordPurchasesPayload:
    purchases: list[PurchaseType] = strawberry.field(default_factory=list)
    inserted_count: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ComplaintPayload:
    complaint: ComplaintType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SurveyPayload:
    survey: SurveyType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class SurveyResponsePayload:
    response: SurveyResponseType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


# ---------------------------------------------------------------- root types


@strawberry.type
class Query(AdminQuery, TierQuery, ReportQuery, PrivacyQuery):
    @strawberry.field
    def viewer(self, info: Info[Context, None]) -> Viewer:
        ctx = _ctx(info)
        p = ctx.principal
        return Viewer(
            subject=p.subject,
            kind=p.kind.value,
            roles=list(p.roles),
            partner_id=strawberry.ID(str(p.partner_id)) if p.partner_id else None,
            policy_version=ctx.decisions.policy_version,
        )

    @strawberry.field(description="Any object by its global id; NOT_FOUND when unknown or not visible")
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        return await query(lambda: usecases.load_node(info, id))

    @strawberry.field
    async def customer(self, info: Info[Context, None], id: strawberry.ID) -> CustomerType | None:
        d = _ctx(info).decisions
        return await _one(id, "Customer", _ctx(info).loaders.customer.load, lambda r: CustomerType.from_row(r, d))

    @strawberry.field
    async def customers(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: CustomerFilter | None = None,
        order_by: CustomerOrder = CustomerOrder.CREATED_AT,
    ) -> CustomerConnection | None:  # type: ignore[valid-type]
        f = filter or CustomerFilter()
        return await query(lambda: usecases.customer_page(info, _page_size(info, first), after, f, order_by.value))

    @strawberry.field
    async def complaint(self, info: Info[Context, None], id: strawberry.ID) -> ComplaintType | None:
        d = _ctx(info).decisions
        return await _one(id, "Complaint", _ctx(info).loaders.complaint.load, lambda r: ComplaintType.from_row(r, d))

    @strawberry.field
    async def complaints(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        filter: ComplaintFilter | None = None,
        order_by: ComplaintOrder = ComplaintOrder.OPENED_AT_DESC,
    ) -> ComplaintConnection | None:  # type: ignore[valid-type]
        f = filter or ComplaintFilter()
        return await query(lambda: usecases.complaint_page(info, _page_size(info, first), after, f, order_by.value))

    @strawberry.field
    async def survey(self, info: Info[Context, None], id: strawberry.ID) -> SurveyType | None:
        return await _one(id, "Survey", _ctx(info).loaders.survey.load, SurveyType.from_row)

    @strawberry.field
    async def surveys(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: list[SurveyStatus] | None = None,  # type: ignore[valid-type]
    ) -> SurveyConnection | None:  # type: ignore[valid-type]
        n = _page_size(info, first)
        statuses = [s.value for s in status] if status else None

        async def run() -> Any:
            db = _ctx(info).db
            page = await surveys_repo.page(db, statuses=statuses, first=n, after=after)
            return SurveyConnection.from_page(
                page,
                "CREATED_AT_DESC",
                "created_at",
                SurveyType.from_row,
                lambda: surveys_repo.count(db, statuses=statuses),
            )

        return await query(run)

    @strawberry.field
    async def tier_policies(self, info: Info[Context, None]) -> list[TierPolicyType] | None:
        return [TierPolicyType.from_row(r) for r in await tiers_repo.policies(_ctx(info).db)]

    @strawberry.field
    async def active_tier_policy(self, info: Info[Context, None]) -> TierPolicyType | None:
        rows = await tiers_repo.policies(_ctx(info).db, ["active"])
        return TierPolicyType.from_row(rows[0]) if rows else None

    @strawberry.field
    async def complaint_categories(self, info: Info[Context, None]) -> list[TaxonType] | None:
        return [TaxonType(**t) for t in await complaints_repo.taxonomy(_ctx(info).db, "categories")]

    @strawberry.field
    async def root_causes(self, info: Info[Context, None]) -> list[TaxonType] | None:
        return [TaxonType(**t) for t in await complaints_repo.taxonomy(_ctx(info).db, "root_causes")]


@strawberry.type
class Mutation(AdminMutation, TierMutation, ReportMutation, PrivacyMutation):
    @strawberry.mutation
    async def create_customer(self, info: Info[Context, None], input: CreateCustomerInput) -> CustomerPayload | None:
        return await mutate(CustomerPayload, lambda: usecases.create_customer(info, input))

    @strawberry.mutation
    async def update_customer(self, info: Info[Context, None], input: UpdateCustomerInput) -> CustomerPayload | None:
        return await mutate(CustomerPayload, lambda: usecases.update_customer(info, input))

    @strawberry.mutation
    async def delete_customer(
        self, info: Info[Context, None], input: DeleteCustomerInput
    ) -> DeleteCustomerPayload | None:
        return await mutate(DeleteCustomerPayload, lambda: usecases.delete_customer(info, input))

    @strawberry.mutation(
        description="Idempotent on (partner, externalId): an item sent again with the same content has one "
        "effect and returns the stored purchase; with other content it is a CONFLICT and nothing is written"
    )
    async def record_purchases(
        self, info: Info[Context, None], input: RecordPurchasesInput
    ) -> RecordPurchasesPayload | None:
        return await mutate(RecordPurchasesPayload, lambda: usecases.record_purchases(info, input))

    @strawberry.mutation(
        description="Idempotent on (partner, externalId): the same content again returns the stored complaint "
        "(also to concurrent callers); other content under that id is a CONFLICT"
    )
    async def open_complaint(self, info: Info[Context, None], input: OpenComplaintInput) -> ComplaintPayload | None:
        return await mutate(ComplaintPayload, lambda: usecases.open_complaint(info, input))

    @strawberry.mutation
    async def transition_complaint(
        self, info: Info[Context, None], input: TransitionComplaintInput
    ) -> ComplaintPayload | None:
        return await mutate(ComplaintPayload, lambda: usecases.transition_complaint(info, input))

    @strawberry.mutation
    async def create_survey(self, info: Info[Context, None], input: CreateSurveyInput) -> SurveyPayload | None:
        return await mutate(SurveyPayload, lambda: usecases.create_survey(info, input))

    @strawberry.mutation(
        description="One response per customer and survey; idempotent on (partner, externalId): the same "
        "answers again return the stored response, other content under that id is a CONFLICT"
    )
    async def submit_survey_response(
        self, info: Info[Context, None], input: SubmitSurveyResponseInput
    ) -> SurveyResponsePayload | None:
        return await mutate(SurveyResponsePayload, lambda: usecases.submit_survey_response(info, input))


def build_schema(extensions: list[Any] | None = None) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[CustomerType, ComplaintType, SurveyType, PurchaseType, SurveyResponseType, TierPolicyType],
        extensions=extensions or [],
    )
    install_length_checks(schema._schema)  # before the guards: they then run first
    unclassified = install_guards(schema._schema)
    if unclassified:
        raise RuntimeError(f"fields or arguments missing from the field catalogue (authz/catalogue.py): {unclassified}")
    return schema


__all__ = ["GraphQLError", "ValidationFailed", "build_schema"]
