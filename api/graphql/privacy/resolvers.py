"""Data quality and the rights of the data subject (issue 8): duplicate candidates and merges, the
data-quality report, consent per channel, erasure and export. Every operation is granted like any
other (authz/catalogue.py, migration 0008); merges, consent changes, erasures and exports are audited
by infra/repos/quality.py in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.errors import FORBIDDEN, coded
from api.graphql.core.ids import from_global_id
from api.graphql.core.relay import PageInfo
from api.graphql.core.resolving import forget, mutate, page_size, query
from api.graphql.customers.types import load_customer
from api.graphql.privacy.types import (
    ConsentChannel,
    ConsentPayload,
    CustomerMergeType,
    DataQualityReportType,
    DismissDuplicatePairPayload,
    DuplicateCountType,
    DuplicateCriterion,
    DuplicatePairConnection,
    DuplicatePairType,
    EraseCustomerPayload,
    MergeCustomersPayload,
    MetricsStalenessType,
    MissingFieldType,
    MonthCountType,
    RestoreDuplicatePairPayload,
)
from authz.catalogue import CATALOGUE
from authz.policy import Decisions, Level
from domain import quality as rules
from domain.errors import ValidationFailed
from infra.after_change import after_change
from infra.pagination import decode_cursor, encode_cursor
from infra.repos import authz as authz_repo
from infra.repos import quality as quality_repo

PAIR_SORT = "DUPLICATE_PAIR"
# The catalogue types whose data an export hands out decrypted. The export is one JSON value that the
# field guards cannot look into, so it is refused unless the caller may read every field of these in full.
_EXPORTED = (
    "Customer CustomerMetrics ChurnRisk TierChange Purchase Refund BenefitRedemption Complaint ComplaintEvent"
    " SurveyInvitation SurveyResponse SurveyAnswer CustomerMerge AuditEntry"
)
EXPORTED_TYPES = frozenset(_EXPORTED.split())


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


def _criteria(info: Info[Context, None]) -> tuple[str, ...]:
    s = _ctx(info).settings
    return rules.parse_names(s.duplicate_criteria, rules.DUPLICATE_CRITERIA, "TIERWISE_DUPLICATE_CRITERIA")


def _export_gaps(decisions: Decisions) -> list[str]:
    """The exported fields this caller may not read in full (memoised per role set)."""
    gaps: list[str] | None = decisions.memo.get("export_gaps")
    if gaps is None:
        gaps = decisions.memo["export_gaps"] = sorted(
            key
            for key, spec in CATALOGUE.items()
            if spec.type_name in EXPORTED_TYPES and decisions.read(key) is not Level.FULL
        )
    return gaps


def _customer_id(global_id: str, field: str) -> UUID:
    return from_global_id(global_id, "Customer", field=field)[1]


# ---------------------------------------------------------------- root fields


@strawberry.type
class PrivacyQuery:
    @strawberry.field(
        description="Candidate duplicate pairs by the configured criteria (TIERWISE_DUPLICATE_CRITERIA), "
        "matched on blind indexes; tombstones, erased and deleted customers are left out, and so are pairs "
        'dismissed as "not a duplicate" unless includeDismissed (totalCount counts what is listed)'
    )
    async def customer_duplicates(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        criteria: list[DuplicateCriterion] | None = None,
        include_dismissed: Annotated[
            bool | None, strawberry.argument(description="List dismissed pairs too (flagged dismissed)")
        ] = False,
    ) -> DuplicatePairConnection | None:  # type: ignore[valid-type]
        ctx = _ctx(info)
        page_size(ctx.settings.max_page_size, first)
        configured = _criteria(info)
        wanted = [c for c in configured if criteria is None or c in {x.value for x in criteria}]
        dismissed = bool(include_dismissed)

        async def run() -> Any:
            cursor = None
            if after is not None:
                a, b = decode_cursor(after, PAIR_SORT)
                try:
                    cursor = (UUID(str(a)), UUID(str(b)))
                except ValueError:
                    raise ValidationFailed("not a cursor of this list", field="after") from None
            rows, has_next = await quality_repo.duplicate_pairs(
                ctx.db, criteria=wanted, scope=ctx.scope, first=first, after=cursor, include_dismissed=dismissed
            )
            edge = DuplicatePairConnection._edge
            edges = [
                edge(cursor=encode_cursor(PAIR_SORT, str(r["a_id"]), r["b_id"]), node=DuplicatePairType.from_row(r))
                for r in rows
            ]

            async def total() -> int:
                counts = await quality_repo.duplicate_counts(
                    ctx.db, criteria=wanted, scope=ctx.scope, include_dismissed=dismissed
                )
                return counts[0]

            return DuplicatePairConnection(
                edges=edges,
                page_info=PageInfo(has_next_page=has_next, end_cursor=edges[-1].cursor if edges else None),
                count_fn=total,
            )

        return await query(run)

    @strawberry.field(
        description="Share of live customers missing each required field, open duplicate candidates, merges "
        "per month, and how stale customer metrics are (computed without decrypting anything)"
    )
    async def data_quality_report(self, info: Info[Context, None]) -> DataQualityReportType | None:
        ctx = _ctx(info)
        s = ctx.settings
        required = rules.parse_names(
            s.quality_required_fields, rules.REPORTABLE_FIELDS, "TIERWISE_QUALITY_REQUIRED_FIELDS"
        )

        async def run() -> DataQualityReportType:
            r = await quality_repo.report(
                ctx.db, required=required, criteria=_criteria(info), stale_days=s.metrics_stale_days, scope=ctx.scope
            )
            st = r["staleness"]
            return DataQualityReportType(
                live_customers=r["live"],
                erased_customers=r["erased"],
                merged_customers=r["merged"],
                missing=[MissingFieldType(**m) for m in r["missing"]],
                duplicate_pairs=r["duplicate_pairs"],
                duplicates=[
                    DuplicateCountType(criterion=DuplicateCriterion(d["criterion"]), pairs=d["pairs"])
                    for d in r["duplicates"]
                ],
                merges_by_month=[MonthCountType(**m) for m in r["merges_by_month"]],
                metrics_staleness=MetricsStalenessType(**st),
            )

        return await query(run)

    @strawberry.field(
        description="Everything tierwise holds about one customer (and the duplicates merged into it), "
        "decrypted, for an access request; audited"
    )
    async def export_customer_data(self, info: Info[Context, None], id: strawberry.ID) -> JSON | None:
        ctx = _ctx(info)
        gaps = _export_gaps(ctx.decisions)
        if gaps:
            raise coded(f"an export needs full read of every customer field; not granted: {', '.join(gaps)}", FORBIDDEN)

        async def run() -> Any:
            customer_id = _customer_id(id, "id")
            async with ctx.db.unit_of_work() as uow:
                data = await quality_repo.export(uow.conn, customer_id, scope=ctx.scope)
                await authz_repo.write_audit(
                    uow.conn,
                    actor=ctx.actor,
                    action="customer_exported",
                    request_id=ctx.request_id,
                    target_type="Customer",
                    target_ids=[str(customer_id)],
                    fields=["*"],
                )
                uow.commit()
            return data

        return await query(run)


async def _pair_mutation(
    info: Info[Context, None],
    payload: Any,
    customer_id: strawberry.ID,
    other_id: strawberry.ID,
    change: Callable[[Any, UUID, UUID, Context], Awaitable[dict[str, Any]]],
) -> Any:
    """Dismiss or restore a duplicate pair: both ids checked, the change in one transaction, the pair back."""
    ctx = _ctx(info)

    async def run() -> Any:
        one = _customer_id(customer_id, "customerId")
        other = _customer_id(other_id, "otherId")
        async with ctx.db.unit_of_work() as uow:
            done = await change(uow.conn, one, other, ctx)
            uow.commit()
        return payload(pair=DuplicatePairType.from_row(done, done["dismissal"]), changed=done["changed"])

    return await mutate(payload, run)


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(
        description="Merge a duplicate into a survivor in one transaction: purchases, complaints, survey "
        "invitations and answers, tier history and consent history move to the survivor; the survivor's empty "
        "fields are filled from the duplicate; metrics, tier and churn score are recomputed; the duplicate "
        "stays as a tombstone (mergedInto) that partner writes with its external ref follow; audited"
    )
    async def merge_customers(
        self,
        info: Info[Context, None],
        survivor_id: strawberry.ID,
        duplicate_id: strawberry.ID,
        expected_survivor_version: int | None = None,
        expected_duplicate_version: int | None = None,
    ) -> MergeCustomersPayload | None:
        ctx = _ctx(info)

        async def run() -> MergeCustomersPayload:
            survivor = _customer_id(survivor_id, "survivorId")
            duplicate = _customer_id(duplicate_id, "duplicateId")
            async with ctx.db.unit_of_work() as uow:
                record = await quality_repo.merge(
                    uow.conn,
                    survivor,
                    duplicate,
                    scope=ctx.scope,
                    actor=ctx.actor,
                    request_id=ctx.request_id,
                    survivor_version=expected_survivor_version,
                    duplicate_version=expected_duplicate_version,
                )
                # the survivor now holds the duplicate's purchases, complaints and answers
                await after_change(uow.conn, [survivor], actor=ctx.actor)
                uow.commit()
            forget(ctx.loaders.customer, survivor)
            forget(ctx.loaders.customer, duplicate)
            return MergeCustomersPayload(
                merge=CustomerMergeType.from_row(record), survivor=await load_customer(info, survivor)
            )

        return await mutate(MergeCustomersPayload, run)

    @strawberry.mutation(
        description='Mark a candidate pair "not a duplicate" (two people sharing a phone, a family e-mail...): '
        "it leaves customerDuplicates (unless includeDismissed) and the open candidates of dataQualityReport. "
        "Both customers must be live, of the same partner, and match on at least one duplicate criterion. "
        "reason: a code (shared_email, shared_phone, same_name_and_birth_date, family_member, different_person, "
        "test_data, other), not free text. Dismissing a dismissed pair changes nothing (changed: false). Audited"
    )
    async def dismiss_duplicate_pair(
        self,
        info: Info[Context, None],
        customer_id: strawberry.ID,
        other_id: strawberry.ID,
        reason: str | None = None,
    ) -> DismissDuplicatePairPayload | None:
        return await _pair_mutation(
            info,
            DismissDuplicatePairPayload,
            customer_id,
            other_id,
            lambda conn, one, other, ctx: quality_repo.dismiss_pair(
                conn, one, other, reason=reason, scope=ctx.scope, actor=ctx.actor, request_id=ctx.request_id
            ),
        )

    @strawberry.mutation(
        description="Undo dismissDuplicatePair: the pair is an open candidate again (while it still matches). "
        "Restoring a pair that is not dismissed changes nothing (changed: false). Audited"
    )
    async def restore_duplicate_pair(
        self, info: Info[Context, None], customer_id: strawberry.ID, other_id: strawberry.ID
    ) -> RestoreDuplicatePairPayload | None:
        return await _pair_mutation(
            info,
            RestoreDuplicatePairPayload,
            customer_id,
            other_id,
            lambda conn, one, other, ctx: quality_repo.restore_pair(
                conn, one, other, scope=ctx.scope, actor=ctx.actor, request_id=ctx.request_id
            ),
        )

    @strawberry.mutation(
        description="Irreversibly remove every sensitive value of a customer everywhere (profile, blind indexes, "
        "external ref, complaint and survey free text, audit payloads quoting it, job arguments); purchases, "
        "tiers and scores stay for the aggregates. A second erase is refused (CONFLICT). Audited"
    )
    async def erase_customer(self, info: Info[Context, None], id: strawberry.ID) -> EraseCustomerPayload | None:
        ctx = _ctx(info)

        async def run() -> EraseCustomerPayload:
            customer_id = _customer_id(id, "id")
            async with ctx.db.unit_of_work() as uow:
                done = await quality_repo.erase(
                    uow.conn, customer_id, scope=ctx.scope, actor=ctx.actor, request_id=ctx.request_id
                )
                # the profile is gone, the aggregates stay: the step keeps metrics, tier and churn consistent
                await after_change(uow.conn, [customer_id], actor=ctx.actor)
                uow.commit()
            for i in done["ids"]:
                forget(ctx.loaders.customer, i)
            return EraseCustomerPayload(erased_id=id, erased_at=done["erased_at"], erased=done["counts"])

        return await mutate(EraseCustomerPayload, run)

    @strawberry.mutation(
        description="Give or withdraw the customer's consent to contact on one channel; the time is recorded, "
        "and every change is kept (consent history, audit). Repeating the current state changes nothing"
    )
    async def set_customer_consent(
        self,
        info: Info[Context, None],
        customer_id: strawberry.ID,
        channel: ConsentChannel,
        given: bool,
        expected_version: Annotated[
            int | None, strawberry.argument(description="optimistic lock: refused if the customer moved on")
        ] = None,
    ) -> ConsentPayload | None:
        ctx = _ctx(info)

        async def run() -> ConsentPayload:
            cid = _customer_id(customer_id, "customerId")
            async with ctx.db.unit_of_work() as uow:
                changed = await quality_repo.set_consent(
                    uow.conn,
                    cid,
                    channel.value,
                    given,
                    scope=ctx.scope,
                    actor=ctx.actor,
                    request_id=ctx.request_id,
                    expected_version=expected_version,
                )
                uow.commit()
            forget(ctx.loaders.customer, cid)
            return ConsentPayload(customer=await load_customer(info, cid), changed=changed)

        return await mutate(ConsentPayload, run)


__all__ = ["PrivacyMutation", "PrivacyQuery"]
