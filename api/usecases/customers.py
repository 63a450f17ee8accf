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

from api.graphql.complaints.types import ComplaintConnection, ComplaintType
from api.graphql.core.ids import from_global_id
from api.graphql.core.relay import Node
from api.graphql.core.resolving import enum_value, forget
from api.graphql.customers.types import CustomerConnection, CustomerType, PurchaseType, load_customer
from api.graphql.surveys.types import SurveyResponseType, SurveyType
from api.graphql.tiers.types import TierPolicyType
from authz.policy import Level
from domain import customers as customer_rules
from domain.complaints import Transition
from domain.errors import Conflict, Forbidden, Invalid, NotFound, ValidationFailed
from domain.idempotency import check_replay, differences, key_reused
from domain.surveys import Answer, Question, validate_answers
from infra.after_change import after_change
from infra.repos import complaints as complaints_repo
from infra.repos import customers as customers_repo
from infra.repos import purchases as purchases_repo
from infra.repos import surveys as surveys_repo
from infra.repos import tiers as tiers_repo

if TYPE_CHECKING:
    from api.graphql.core.context import Context
    from api.graphql.schema import (
        ComplaintFilter,
        CreateCustomerInput,
        CreateSurveyInput,
        CustomerFilter,
        DeleteCustomerInput,
        OpenComplaintInput,
        RecordPurchasesInput,
        SubmitSurveyResponseInput,
        TransitionComplaintInput,
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
        lambda row: CustomerType.from_row(row, ctx.decisions),
        lambda: customers_repo.count(ctx.db, scope=ctx.scope, f=filt),
    )


async def complaint_page(
    info: Info[Context, None], first: int, after: str | None, f: ComplaintFilter, sort: str
) -> Any:
    ctx = _ctx(info)
    filt = complaints_repo.ComplaintFilter(
        statuses=[s.value for s in f.statuses] if f.statuses else None,
        severities=[s.value for s in f.severities] if f.severities else None,
        categories=f.categories,
        customer_id=_uuid(f.customer_id, "Customer", "filter.customerId") if f.customer_id else None,
        opened_after=f.opened_after,
        opened_before=f.opened_before,
        breached=f.breached,
    )
    page = await complaints_repo.page(
        ctx.db, columns=ctx.loaders.complaint_columns, scope=ctx.scope, f=filt, sort=sort, first=first, after=after
    )
    column = complaints_repo.SORTS[sort].column.key
    return ComplaintConnection.from_page(
        page,
        sort,
        column,
        lambda row: ComplaintType.from_row(row, ctx.decisions),
        lambda: complaints_repo.count(ctx.db, scope=ctx.scope, f=filt),
    )


# ``node(id)`` reaches an object only where the matching root query would: the same operation grant.
NODE_OPERATIONS = {
    "Customer": "Query.customer",
    "Complaint": "Query.complaint",
    "Survey": "Query.survey",
    "SurveyResponse": "Query.survey",
    "TierPolicy": "Query.tierPolicies",
}


async def load_node(info: Info[Context, None], global_id: str) -> Node | None:
    ctx = _ctx(info)
    type_name, raw = from_global_id(global_id)
    operation = NODE_OPERATIONS.get(type_name)
    if operation is None or ctx.decisions.read(operation) is Level.DENIED:
        raise NotFound("no such object", field="id")
    node: Node | None = None
    if type_name == "Customer":
        node = await load_customer(info, raw)
    elif type_name == "Complaint":
        row = await ctx.loaders.complaint.load(raw)
        node = ComplaintType.from_row(row, ctx.decisions) if row else None
    elif type_name == "Survey":
        row = await ctx.loaders.survey.load(raw)
        node = SurveyType.from_row(row) if row else None
    elif type_name == "SurveyResponse":
        row = await ctx.loaders.response.load(raw)
        node = SurveyResponseType.from_row(row) if row else None
    elif type_name == "TierPolicy":
        rows = [r for r in await tiers_repo.policies(ctx.db) if r["id"] == raw]
        node = TierPolicyType.from_row(rows[0]) if rows else None
    if node is None:
        raise NotFound("no such object", field="id")
    return node


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
    from api.graphql.schema import CustomerPayload

    ctx = _ctx(info)
    values = _customer_fields(info, inp)
    if "name" not in values:
        raise ValidationFailed("a name is required", field="name")
    async with ctx.db.unit_of_work() as uow:
        created = await customers_repo.create(uow, values, partner_id=ctx.principal.partner_id)
        await after_change(uow.conn, [created["id"]], actor=ctx.actor)  # the initial tier, at once
        uow.commit()
    return CustomerPayload(customer=await _read_back_customer(info, created["id"]))


async def update_customer(info: Info[Context, None], inp: UpdateCustomerInput) -> Any:
    from api.graphql.schema import CustomerPayload

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
    from api.graphql.schema import DeleteCustomerPayload

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
    from api.graphql.schema import RecordPurchasesPayload

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


# ---------------------------------------------------------------- complaints


async def open_complaint(info: Info[Context, None], inp: OpenComplaintInput) -> Any:
    from api.graphql.schema import ComplaintPayload

    ctx = _ctx(info)
    customer_id = _uuid(inp.customer_id, "Customer", "customerId")
    errors = []
    if not inp.subject.strip() or len(inp.subject) > 300:
        errors.append(ValidationFailed("a subject has 1 to 300 characters", field="subject"))
    if not inp.description.strip() or len(inp.description) > 10_000:
        errors.append(ValidationFailed("a description has 1 to 10000 characters", field="description"))
    if inp.external_id is not None and not 0 < len(inp.external_id) <= 100:
        errors.append(ValidationFailed("externalId has 1 to 100 characters", field="externalId"))
    if errors:
        raise Invalid(errors)
    follow_up = _uuid(inp.follow_up_of, "Complaint", "followUpOf") if inp.follow_up_of else None
    values = {
        "customer_id": customer_id,
        "subject": " ".join(inp.subject.split()),
        "description": inp.description.strip(),
        "category_code": inp.category,
        "severity": enum_value(inp.severity),
        "channel": enum_value(inp.channel),
        "follow_up_of_id": follow_up,
    }
    partner_id = ctx.principal.partner_id
    async with ctx.db.unit_of_work() as uow:
        complaint_id = None
        if inp.external_id:
            complaint_id = await _replayed_complaint(uow, partner_id, inp.external_id, values)
        if complaint_id is None:
            if not await customers_repo.exists(uow, customer_id, ctx.scope):
                raise NotFound("no such customer", field="customerId")
            complaint_id = await complaints_repo.open_complaint(
                uow, {**values, "partner_id": partner_id, "external_id": inp.external_id}, actor=ctx.actor
            )
            if complaint_id is None:  # another request opened it meanwhile: the same rules as a replay
                complaint_id = await _replayed_complaint(uow, partner_id, inp.external_id or "", values)
                if complaint_id is None:  # (the insert waited for that request's commit: not expected)
                    raise Conflict("externalId is being used by another request; retry", field="externalId")
            else:
                await after_change(uow.conn, [customer_id], actor=ctx.actor)
                uow.commit()
    return ComplaintPayload(complaint=await _read_back_complaint(info, complaint_id))


# openComplaint's input names of the columns a replay is compared on (complaints_repo.CREATED_WITH)
_COMPLAINT_INPUT_NAMES = {
    "customer_id": "customerId",
    "subject": "subject",
    "description": "description",
    "category_code": "category",
    "severity": "severity",
    "channel": "channel",
    "follow_up_of_id": "followUpOf",
}


async def _replayed_complaint(
    uow: Any, partner_id: UUID | None, external_id: str, values: dict[str, Any]
) -> UUID | None:
    """The complaint already opened with this external id (None: none is), if ``values`` are what it
    was opened with; a CONFLICT if not (domain/idempotency.py)."""
    stored = await complaints_repo.by_external_id(uow, partner_id, external_id)
    if stored is None:
        return None
    check_replay(
        "externalId",
        {_COMPLAINT_INPUT_NAMES[k]: stored[k] for k in complaints_repo.CREATED_WITH},
        {_COMPLAINT_INPUT_NAMES[k]: values[k] for k in complaints_repo.CREATED_WITH},
    )
    complaint_id: UUID = stored["id"]
    return complaint_id


async def _read_back_complaint(info: Info[Context, None], complaint_id: UUID) -> ComplaintType | None:
    ctx = _ctx(info)
    forget(ctx.loaders.complaint, complaint_id)
    row = await ctx.loaders.complaint.load(complaint_id)
    return ComplaintType.from_row(row, ctx.decisions) if row else None


async def transition_complaint(info: Info[Context, None], inp: TransitionComplaintInput) -> Any:
    from api.graphql.schema import ComplaintPayload

    ctx = _ctx(info)
    complaint_id = _uuid(inp.id, "Complaint", "id")
    t = Transition(
        to=inp.to.value,
        assignee=inp.assignee,
        resolution_code=inp.resolution_code,
        root_cause_code=inp.root_cause_code,
        note=inp.note,
    )
    async with ctx.db.unit_of_work() as uow:
        done = await complaints_repo.transition(
            uow, complaint_id, inp.expected_version, t, actor=ctx.actor, scope=ctx.scope
        )
        if done.outcome.to_status == "resolved":  # the post-resolution survey, if one is active
            await surveys_repo.invite_after_resolution(
                uow,
                complaint_id=complaint_id,
                throttle_days=ctx.settings.survey_throttle_days,
                periodic_days=ctx.settings.survey_periodic_days,
            )
        if done.outcome.changes_customer_facts or done.breached:
            await after_change(uow.conn, [done.customer_id], actor=ctx.actor)
        uow.commit()
    return ComplaintPayload(complaint=await _read_back_complaint(info, complaint_id))


# ---------------------------------------------------------------- surveys


async def create_survey(info: Info[Context, None], inp: CreateSurveyInput) -> Any:
    from api.graphql.schema import SurveyPayload

    ctx = _ctx(info)
    errors = []
    if not inp.title.strip():
        errors.append(ValidationFailed("a title is required", field="title"))
    if not inp.channels:
        errors.append(ValidationFailed("at least one channel", field="channels"))
    if not inp.questions:
        errors.append(ValidationFailed("at least one question", field="questions"))
    questions = []
    for n, q in enumerate(inp.questions):
        options = [o.strip() for o in (q.options or []) if o.strip()]
        if q.kind.value in ("single_choice", "multiple_choice") and len(options) < 2:
            errors.append(ValidationFailed("a choice question needs two or more options", field=f"questions[{n}]"))
        if not q.prompt.strip() or not q.dimension.strip():
            errors.append(ValidationFailed("prompt and dimension are required", field=f"questions[{n}]"))
        questions.append(
            {
                "kind": q.kind.value,
                "dimension": q.dimension.strip().lower(),
                "prompt": q.prompt.strip(),
                "options": options,
                "required": q.required,
            }
        )
    if errors:
        raise Invalid(errors)
    async with ctx.db.unit_of_work() as uow:
        survey_id = await surveys_repo.create(
            uow,
            {
                "title": inp.title.strip(),
                "description": inp.description,
                "status": enum_value(inp.status),
                "trigger": enum_value(inp.trigger),
                "channels": sorted({c.value for c in inp.channels}),
                "per_complaint": inp.per_complaint,
            },
            questions,
        )
        uow.commit()
    row = await ctx.loaders.survey.load(survey_id)
    return SurveyPayload(survey=SurveyType.from_row(row) if row else None)


def _answer_content(question_id: Any, score: int | None, choices: Any, text: str | None) -> tuple[Any, ...]:
    return (str(question_id), score, tuple(choices) if choices is not None else None, text)


def _by_question(answer: tuple[Any, ...]) -> str:
    return str(answer[0])


async def _replayed_response(
    uow: Any, partner_id: UUID | None, external_id: str | None, requested: dict[str, Any]
) -> UUID | None:
    """The response already submitted with this external id (None: none is), if ``requested`` is what
    it was submitted with; a CONFLICT if not (domain/idempotency.py)."""
    if external_id is None:
        return None
    stored = await surveys_repo.response_by_external_id(uow, partner_id, external_id)
    if stored is None:
        return None
    check_replay(
        "externalId",
        {
            "surveyId": stored["survey_id"],
            "customerId": stored["customer_id"],
            "complaintId": stored["complaint_id"],
            "channel": stored["channel"],
            "answers": sorted(
                (_answer_content(x["question_id"], x["score"], x["choices"], x["text"]) for x in stored["answers"]),
                key=_by_question,
            ),
        },
        requested,
    )
    response_id: UUID = stored["id"]
    return response_id


async def submit_survey_response(info: Info[Context, None], inp: SubmitSurveyResponseInput) -> Any:
    from api.graphql.schema import SurveyResponsePayload

    ctx = _ctx(info)
    survey_id = _uuid(inp.survey_id, "Survey", "surveyId")
    customer_id = _uuid(inp.customer_id, "Customer", "customerId")
    complaint_id = _uuid(inp.complaint_id, "Complaint", "complaintId") if inp.complaint_id else None
    answers = []
    for n, a in enumerate(inp.answers):
        try:
            qid = str(_uuid(a.question_id, "SurveyQuestion", f"answers[{n}].questionId"))
        except NotFound:
            qid = f"invalid:{n}"
        answers.append(Answer(question_id=qid, score=a.score, choices=a.choices, text=a.text))
    requested = {
        "surveyId": survey_id,
        "customerId": customer_id,
        "complaintId": complaint_id,
        "channel": inp.channel.value,
        "answers": sorted(
            (_answer_content(a.question_id, a.score, a.choices, a.text) for a in answers), key=_by_question
        ),
    }
    partner_id = ctx.principal.partner_id
    async with ctx.db.unit_of_work() as uow:
        survey, questions = await surveys_repo.survey_with_questions(uow, survey_id)
        existing = await _replayed_response(uow, partner_id, inp.external_id, requested)
        if existing is None:
            # Scope first: another partner's customer or complaint answers exactly like an unknown one.
            if not await customers_repo.exists(uow, customer_id, ctx.scope):
                raise NotFound("no such customer", field="customerId")
            if complaint_id is not None:
                found = await complaints_repo.by_ids(uow, [complaint_id], columns=(), scope=ctx.scope)
                if complaint_id not in found or found[complaint_id]["customer_id"] != customer_id:
                    raise NotFound("no such complaint of this customer", field="complaintId")
            slot = {"survey_id": survey_id, "customer_id": customer_id, "complaint_id": complaint_id}
            if await surveys_repo.answered(uow, **slot):
                raise Invalid([ValidationFailed("this customer has answered this survey already", field="surveyId")])
            if survey["status"] != "active":
                raise ValidationFailed("the survey is not active", field="surveyId")
            if inp.channel.value not in survey["channels"]:
                raise ValidationFailed("the survey is not sent on this channel", field="channel")
            if survey["per_complaint"] and complaint_id is None:
                raise ValidationFailed("this survey is answered per complaint: give complaintId", field="complaintId")
            validate_answers(
                [Question(str(q["id"]), q["kind"], q["options"], q["required"]) for q in questions], answers
            )
            existing = await surveys_repo.insert_response(
                uow,
                {**slot, "partner_id": partner_id, "external_id": inp.external_id, "channel": inp.channel.value},
                [
                    {"question_id": UUID(a.question_id), "score": a.score, "choices": a.choices, "text": a.text}
                    for a in answers
                ],
            )
            if existing is None:  # another request took the slot meanwhile (its insert waited for it)
                existing = await _replayed_response(uow, partner_id, inp.external_id, requested)
                if existing is None:  # not by this external id: the customer has answered
                    raise Invalid(
                        [ValidationFailed("this customer has answered this survey already", field="surveyId")]
                    )
            else:
                await after_change(uow.conn, [customer_id], actor=ctx.actor)
                uow.commit()
    row = await ctx.loaders.response.load(existing)
    if row is None:
        raise Forbidden("not allowed to read this response")
    return SurveyResponsePayload(response=SurveyResponseType.from_row(row))
