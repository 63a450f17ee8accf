"""Data quality and the rights of the data subject (issue 8): duplicate candidates and merges, the
data-quality report, consent per channel, erasure and export. Every operation is granted like any
other (authz/catalogue.py, migration 0008). Thin resolvers: global ids decoded, the use-case of
api/usecases/privacy.py called (audits and the after-change step are its), the result mapped out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.ids import from_global_id
from api.graphql.core.relay import Edge, PageInfo
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
from api.usecases import privacy as usecases


def _customer_id(global_id: str, field: str) -> UUID:
    return from_global_id(global_id, "Customer", field=field)[1]


# ---------------------------------------------------------------- root fields


@strawberry.type
class PrivacyQuery:
    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
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
    ) -> DuplicatePairConnection | None:
        ctx = context_of(info)
        page_size(ctx.settings.max_page_size, first)
        cmd = usecases.DuplicateQuery(
            first=first,
            after=after,
            criteria=None if criteria is None else [c.value for c in criteria],
            include_dismissed=bool(include_dismissed),
        )

        async def run() -> Any:
            done = await usecases.duplicate_pairs(ctx.db, ctx.caller, cmd, settings=ctx.settings)
            edges = [Edge(cursor=usecases.pair_cursor(r), node=DuplicatePairType.from_row(r)) for r in done.rows]
            return DuplicatePairConnection(
                edges=edges,
                page_info=PageInfo(has_next_page=done.has_next, end_cursor=edges[-1].cursor if edges else None),
                count_fn=done.count,
            )

        return await query(run)

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Share of live customers missing each required field, open duplicate candidates, merges "
        "per month, and how stale customer metrics are (computed without decrypting anything)"
    )
    async def data_quality_report(self, info: Info[Context, None]) -> DataQualityReportType | None:
        ctx = context_of(info)

        async def run() -> DataQualityReportType:
            r = await usecases.data_quality_report(ctx.db, ctx.caller, settings=ctx.settings)
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

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Everything tierwise holds about one customer (and the duplicates merged into it), "
        "decrypted, for an access request; audited"
    )
    async def export_customer_data(self, info: Info[Context, None], id: strawberry.ID) -> JSON | None:
        ctx = context_of(info)

        async def run() -> Any:
            usecases.check_export_allowed(ctx.caller)  # FORBIDDEN before the id is read, as ever
            return await usecases.export_customer_data(ctx.db, ctx.caller, _customer_id(id, "id"))

        return await query(run)


async def _pair(
    customer_id: strawberry.ID,
    other_id: strawberry.ID,
    change: Callable[[UUID, UUID], Awaitable[dict[str, Any]]],
) -> tuple[DuplicatePairType, bool]:
    """Dismiss or restore a duplicate pair: both ids decoded, the use-case; the pair back, and whether it changed."""
    done = await change(_customer_id(customer_id, "customerId"), _customer_id(other_id, "otherId"))
    return DuplicatePairType.from_row(done, done["dismissal"]), done["changed"]


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
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
        ctx = context_of(info)

        async def run() -> MergeCustomersPayload:
            survivor = _customer_id(survivor_id, "survivorId")
            duplicate = _customer_id(duplicate_id, "duplicateId")
            cmd = usecases.MergeCustomers(survivor, duplicate, expected_survivor_version, expected_duplicate_version)
            record = await usecases.merge_customers(ctx.db, ctx.caller, cmd)
            forget(ctx.loaders.customer, survivor)
            forget(ctx.loaders.customer, duplicate)
            return MergeCustomersPayload(
                merge=CustomerMergeType.from_row(record), survivor=await load_customer(info, survivor)
            )

        return await mutate(MergeCustomersPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
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
        ctx = context_of(info)

        async def run() -> DismissDuplicatePairPayload:
            pair, changed = await _pair(
                customer_id,
                other_id,
                lambda one, other: usecases.dismiss_duplicate_pair(
                    ctx.db, ctx.caller, usecases.DismissPair(one, other, reason)
                ),
            )
            return DismissDuplicatePairPayload(pair=pair, changed=changed)

        return await mutate(DismissDuplicatePairPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Undo dismissDuplicatePair: the pair is an open candidate again (while it still matches). "
        "Restoring a pair that is not dismissed changes nothing (changed: false). Audited"
    )
    async def restore_duplicate_pair(
        self, info: Info[Context, None], customer_id: strawberry.ID, other_id: strawberry.ID
    ) -> RestoreDuplicatePairPayload | None:
        ctx = context_of(info)

        async def run() -> RestoreDuplicatePairPayload:
            pair, changed = await _pair(
                customer_id,
                other_id,
                lambda one, other: usecases.restore_duplicate_pair(
                    ctx.db, ctx.caller, usecases.RestorePair(one, other)
                ),
            )
            return RestoreDuplicatePairPayload(pair=pair, changed=changed)

        return await mutate(RestoreDuplicatePairPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Irreversibly remove every sensitive value of a customer everywhere (profile, blind indexes, "
        "external ref, complaint and survey free text, audit payloads quoting it, job arguments); purchases, "
        "tiers and scores stay for the aggregates. A second erase is refused (CONFLICT). Audited"
    )
    async def erase_customer(self, info: Info[Context, None], id: strawberry.ID) -> EraseCustomerPayload | None:
        ctx = context_of(info)

        async def run() -> EraseCustomerPayload:
            done = await usecases.erase_customer(ctx.db, ctx.caller, _customer_id(id, "id"))
            for i in done.ids:
                forget(ctx.loaders.customer, i)
            return EraseCustomerPayload(erased_id=id, erased_at=done.erased_at, erased=JSON(done.counts))

        return await mutate(EraseCustomerPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
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
        ctx = context_of(info)

        async def run() -> ConsentPayload:
            cid = _customer_id(customer_id, "customerId")
            cmd = usecases.SetConsent(cid, channel.value, given, expected_version)
            changed = await usecases.set_consent(ctx.db, ctx.caller, cmd)
            forget(ctx.loaders.customer, cid)
            return ConsentPayload(customer=await load_customer(info, cid), changed=changed)

        return await mutate(ConsentPayload, run)


__all__ = ["PrivacyMutation", "PrivacyQuery"]
