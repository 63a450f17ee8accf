"""GraphQL for the tier engine, mixed into Query and Mutation (api/graphql/schema.py): policy drafts, validation,
activation, simulation, manual overrides, explanations, full re-tier runs and the tier reports.

Who may do what is data (Casbin grants, migration 0004): by default admins draft, simulate and activate
policies and override tiers; analysts and marketing read the reports; every role that reads a customer's
tier reads its explanation, with the metric values it may not read left out.

Activation re-tiers every customer: in the activation's own transaction when the customer base is small
(``INLINE_RETIER_MAX_CUSTOMERS`` in api/usecases/tiers.py: the payload then holds the result), otherwise
as the procrastinate job ``tierwise.retier_all`` (the resumable, batched full re-tier), deferred once the
activation committed. Until that job has run, every event still re-tiers its customer under the new policy at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from api.graphql.core.context import Context, context_of
from api.graphql.core.errors import coded
from api.graphql.core.guard import EMBEDDED
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import forget, mutate, query
from api.graphql.customers.types import CustomerType, load_customer
from api.graphql.tiers.inputs import (
    ClearCustomerTierOverrideInput,
    CreateTierPolicyDraftInput,
    OverrideCustomerTierInput,
    TierInput,
    UpdateTierPolicyDraftInput,
)
from api.graphql.tiers.types import (
    ActivateTierPolicyPayload,
    CustomerTierPayload,
    DiscardTierPolicyDraftPayload,
    RetierMode,
    TierBasis,
    TierBenefitCostType,
    TierChangeCountType,
    TierDistributionType,
    TierExplanationType,
    TierMigrationCellType,
    TierMigrationReportType,
    TierPolicyPayload,
    TierPolicyType,
    TierRetierType,
    TierRuleCheckType,
    TierRunType,
    TierShareType,
    TierSimulationType,
)
from api.usecases import tiers as usecases
from authz.catalogue import CATALOGUE, Sensitivity
from authz.policy import Level
from domain import tiers as rules
from infra import tiering

# ---------------------------------------------------------------- explanation


_METRIC_FIELDS = EMBEDDED["TierChange.metrics"]


async def _active_policy(ctx: Context) -> rules.PolicySpec | None:
    cached = ctx.active_policy
    async with cached.lock:
        if not cached.loaded:
            cached.spec, cached.loaded = await usecases.active_policy(ctx.db, ctx.caller), True
    return cached.spec


def _explanation_loader(ctx: Context) -> DataLoader[UUID, dict[str, Any] | None]:
    loader = ctx.explanation_loader
    if loader is None:

        async def load(ids: Sequence[UUID]) -> list[dict[str, Any] | None]:
            rows = await usecases.explanation_inputs(ctx.db, ctx.caller, list(ids))
            return [rows.get(i) for i in ids]

        loader = ctx.explanation_loader = DataLoader[UUID, dict[str, Any] | None](load)
    return loader


async def explain_customer(info: Info[Context, None], customer_id: UUID) -> TierExplanationType | None:
    """Customer.tierExplanation: the engine's own decision, in words and numbers; a metric the caller may not
    read in full appears without its value (and a sensitive one read in full is audited)."""
    ctx = context_of(info)
    policy = await _active_policy(ctx)
    row = await _explanation_loader(ctx).load(customer_id)
    if policy is None or not policy.tiers or row is None:
        return None

    def show(metric: str) -> bool:
        return ctx.decisions.read(_METRIC_FIELDS[metric]) is Level.FULL

    state = rules.TierState(
        tier=row["tier_code"],
        since=row["tier_since"],
        grace_since=row["tier_grace_since"],
        override_tier=row["tier_override_code"],
        override_expires_at=row["tier_override_expires_at"],
        override_reason=row["tier_override_reason"],
        override_by=row["tier_override_by"],
    )
    metrics = {m: row[m] for m in rules.METRICS}
    e = rules.explain(policy, state, metrics, row["now"], show)
    shown: set[str] = set()
    for check in (e.held_by, e.entry, e.retain, e.next):
        if check is not None:
            shown |= {c.metric for c in check.conditions if c.actual is not None}
            shown |= {t.metric for t in check.terms if t.actual is not None}
    for metric in shown:
        key = _METRIC_FIELDS[metric]
        if CATALOGUE[key].sensitivity is Sensitivity.SENSITIVE:
            ctx.sensitive_reads[customer_id].add(key)
    return TierExplanationType(
        tier=e.tier,
        tier_name=e.tier_name,
        basis=TierBasis(e.basis),
        since=e.since,
        policy_version=e.policy_version,
        text=" ".join(e.lines),
        held_by=TierRuleCheckType.build(e.held_by, show),
        entry_rule=TierRuleCheckType.build(e.entry, show),
        retain_rule=TierRuleCheckType.build(e.retain, show),
        grace_since=e.grace_since,
        downgrade_not_before=e.downgrade_at,
        min_stay_until=e.min_stay_until,
        next_tier=e.next_tier,
        next_tier_name=e.next_tier_name,
        to_next_tier=TierRuleCheckType.build(e.next, show),
        pending=e.pending,
    )


# ---------------------------------------------------------------- reports and simulation


def _share(part: float, whole: float) -> float:
    return round(part / whole, 6) if whole else 0.0


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _shares(
    policy: rules.PolicySpec | None, counts: dict[str | None, tuple[int, float]], with_revenue: bool
) -> list[TierShareType]:
    total = sum(c for c, _ in counts.values())
    revenue = sum(r for _, r in counts.values())
    known = policy.by_rank() if policy else []
    codes: list[str | None] = [
        *(t.code for t in known),
        *sorted((c for c in counts if c not in {t.code for t in known}), key=lambda c: c or ""),
    ]
    out = []
    for code in codes:
        spec = policy.tier(code) if policy and code else None
        n, r = counts.get(code, (0, 0.0))
        out.append(
            TierShareType(
                tier=code,
                name=spec.name if spec else None,
                rank=spec.rank if spec else None,
                customers=n,
                customer_share=_share(n, total),
                revenue=_money(r) if with_revenue else None,
                revenue_share=_share(r, revenue) if with_revenue else None,
            )
        )
    return out


def _policy_id(global_id: str, field: str = "id") -> UUID:
    return from_global_id(global_id, "TierPolicy", field=field)[1]


@strawberry.type
class TierQuery:
    @strawberry.field(description="One tier policy, any status")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def tier_policy(self, info: Info[Context, None], id: strawberry.ID) -> TierPolicyType | None:
        async def run() -> TierPolicyType:
            ctx = context_of(info)
            return TierPolicyType.from_row(await usecases.policy(ctx.db, ctx.caller, _policy_id(id)))

        return await query(run)

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="What activating this policy (normally a draft) would do now, without changing anything: "
        "the moves from each current tier to each tier, and the customers and revenue share per tier"
    )
    async def simulate_tier_policy(
        self, info: Info[Context, None], draft_id: strawberry.ID
    ) -> TierSimulationType | None:
        ctx = context_of(info)

        async def run() -> TierSimulationType:
            done = await usecases.simulate_policy(ctx.db, ctx.caller, _policy_id(draft_id, "draftId"))
            row, draft, sim = done.policy, done.spec, done.simulation

            def cells(items: list[tiering.SimulationCell]) -> list[TierMigrationCellType]:
                return [
                    TierMigrationCellType(
                        from_tier=c.from_tier, to_tier=c.to_tier, customers=c.customers, revenue=_money(c.revenue)
                    )
                    for c in items
                ]

            def totals(items: list[tiering.SimulationCell]) -> dict[str | None, tuple[int, float]]:
                out: dict[str | None, tuple[int, float]] = {}
                for c in items:
                    n, r = out.get(c.to_tier, (0, 0.0))
                    out[c.to_tier] = (n + c.customers, r + c.revenue)
                return out

            return TierSimulationType(
                policy=TierPolicyType.from_row(row),
                customers=sim.customers,
                changing=sum(c.customers for c in sim.now if c.from_tier != c.to_tier),
                moves=cells(sim.now),
                eventual_moves=cells(sim.eventual),
                tiers=_shares(draft, totals(sim.now), True),
                eventual_tiers=_shares(draft, totals(sim.eventual), True),
                benefit_cost=TierBenefitCostType.build(done.benefit_cost) if done.benefit_cost else None,
            )

        return await query(run)

    @strawberry.field(description="Live customers per current tier: count, share of customers, share of revenue")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def tier_distribution(self, info: Info[Context, None]) -> TierDistributionType | None:
        ctx = context_of(info)
        found = await usecases.distribution(ctx.db, ctx.caller)
        policy, rows = found.policy, found.rows
        counts = {r["tier_code"]: (int(r["customers"]), float(r["revenue"])) for r in rows}
        return TierDistributionType(
            policy_version=policy.version if policy else None,
            customers=sum(c for c, _ in counts.values()),
            revenue=_money(sum(float(r["revenue"]) for r in rows)),
            tiers=_shares(policy, counts, True),
        )

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="The tier migration matrix of a period: each customer's tier at `since` against its tier at "
        "`until` (default now), from the tier history"
    )
    async def tier_migrations(
        self, info: Info[Context, None], since: dt.datetime, until: dt.datetime | None = None
    ) -> TierMigrationReportType | None:
        ctx = context_of(info)
        end = until or dt.datetime.now(dt.UTC)
        if since.tzinfo is None or end.tzinfo is None:
            raise coded("since and until need a time zone", "BAD_USER_INPUT")
        if end <= since:
            raise coded("until must be after since", "BAD_USER_INPUT")
        cells, kinds = await usecases.migrations(ctx.db, ctx.caller, since, end)
        return TierMigrationReportType(
            since=since,
            until=end,
            customers=sum(int(c["customers"]) for c in cells),
            moved=sum(int(c["customers"]) for c in cells if c["from_tier"] != c["to_tier"]),
            cells=[
                TierMigrationCellType(
                    from_tier=c["from_tier"], to_tier=c["to_tier"], customers=int(c["customers"]), revenue=None
                )
                for c in cells
            ],
            changes=[TierChangeCountType(change_type=k, count=v) for k, v in sorted(kinds.items())],
        )

    @strawberry.field(description="Full re-tiers, newest first, with their progress")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def tier_runs(self, info: Info[Context, None], first: int = 10) -> list[TierRunType] | None:
        async def run() -> list[TierRunType]:
            return [
                TierRunType.from_row(r)
                for r in await usecases.runs(context_of(info).db, context_of(info).caller, first)
            ]

        return await query(run)


# ---------------------------------------------------------------- mutations


def _tier_drafts(items: list[TierInput] | None) -> list[usecases.TierDraft] | None:
    if items is None:
        return None
    return [
        usecases.TierDraft(
            code=t.code,
            name=t.name,
            rank=t.rank,
            entry_rule=t.entry_rule,
            retain_rule=t.retain_rule,
            benefits=t.benefits,
        )
        for t in items
    ]


def _policy_payload(row: dict[str, Any] | None) -> TierPolicyPayload:
    return TierPolicyPayload(policy=TierPolicyType.from_row(row) if row else None)


def _retier(r: usecases.Retier) -> TierRetierType:
    return TierRetierType(
        mode=RetierMode(r.mode.value),
        customers=r.customers,
        changes=r.changes,
        grace_started_or_ended=r.grace_started_or_ended,
        job_id=strawberry.ID(r.job_id) if r.job_id is not None else None,
        message=r.message,
    )


def _customer_id(global_id: str) -> UUID:
    return from_global_id(global_id, "Customer", field="customerId")[1]


@strawberry.type
class TierMutation:
    @strawberry.mutation(description="A new draft policy, validated as a whole; nothing is saved on userErrors")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def create_tier_policy_draft(
        self, info: Info[Context, None], input: CreateTierPolicyDraftInput
    ) -> TierPolicyPayload | None:
        ctx = context_of(info)

        async def run() -> TierPolicyPayload:
            cmd = usecases.CreateDraft(
                name=input.name,
                description=input.description,
                grace_days=input.grace_days,
                min_stay_days=input.min_stay_days,
                spend_window_days=input.spend_window_days,
                tiers=_tier_drafts(input.tiers),
                copy_from=(
                    _policy_id(input.copy_from, "copyFrom")
                    if input.tiers is None and input.copy_from is not None
                    else None
                ),
            )
            return _policy_payload(await usecases.create_draft(ctx.db, ctx.caller, cmd))

        return await mutate(TierPolicyPayload, run)

    @strawberry.mutation(description="Change a draft (expectedRevision: a stale one is a CONFLICT); validated again")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def update_tier_policy_draft(
        self, info: Info[Context, None], input: UpdateTierPolicyDraftInput
    ) -> TierPolicyPayload | None:
        ctx = context_of(info)

        async def run() -> TierPolicyPayload:
            cmd = usecases.UpdateDraft(
                policy_id=_policy_id(input.id),
                expected_revision=input.expected_revision,
                name=input.name,
                description=input.description,
                grace_days=input.grace_days,
                min_stay_days=input.min_stay_days,
                spend_window_days=input.spend_window_days,
                tiers=_tier_drafts(input.tiers),
            )
            return _policy_payload(await usecases.update_draft(ctx.db, ctx.caller, cmd))

        return await mutate(TierPolicyPayload, run)

    @strawberry.mutation(description="Delete a draft that will not be used")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def discard_tier_policy_draft(
        self, info: Info[Context, None], id: strawberry.ID, expected_revision: int | None = None
    ) -> DiscardTierPolicyDraftPayload | None:
        ctx = context_of(info)

        async def run() -> DiscardTierPolicyDraftPayload:
            await usecases.discard_draft(ctx.db, ctx.caller, _policy_id(id), expected_revision)
            return DiscardTierPolicyDraftPayload(discarded_id=id)

        return await mutate(DiscardTierPolicyDraftPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Make a draft the active policy (the previous one is retired) and re-tier every customer under "
        "it: in the same transaction for a small customer base, otherwise as a background job"
    )
    async def activate_tier_policy(
        self, info: Info[Context, None], id: strawberry.ID, expected_revision: int | None = None
    ) -> ActivateTierPolicyPayload | None:
        ctx = context_of(info)

        async def run() -> ActivateTierPolicyPayload:
            done = await usecases.activate_policy(
                ctx.db, ctx.caller, _policy_id(id), expected_revision, jobs=ctx.services.jobs
            )
            ctx.active_policy.forget()  # this request's cached active policy
            return ActivateTierPolicyPayload(
                policy=TierPolicyType.from_row(done.policy) if done.policy else None,
                retired_version=done.retired_version,
                retier=_retier(done.retier),
            )

        return await mutate(ActivateTierPolicyPayload, run)

    @strawberry.mutation(description="Put a customer in a tier until an expiry, whatever the rules say; audited")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def override_customer_tier(
        self, info: Info[Context, None], input: OverrideCustomerTierInput
    ) -> CustomerTierPayload | None:
        ctx = context_of(info)

        async def run() -> CustomerTierPayload:
            customer_id = _customer_id(input.customer_id)
            cmd = usecases.OverrideTier(
                customer_id=customer_id, tier=input.tier, reason=input.reason, expires_at=input.expires_at
            )
            await usecases.override_tier(ctx.db, ctx.caller, cmd)
            return CustomerTierPayload(customer=await _read_customer(info, customer_id))

        return await mutate(CustomerTierPayload, run)

    @strawberry.mutation(description="End a manual override now: the entry rules place the customer again; audited")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def clear_customer_tier_override(
        self, info: Info[Context, None], input: ClearCustomerTierOverrideInput
    ) -> CustomerTierPayload | None:
        ctx = context_of(info)

        async def run() -> CustomerTierPayload:
            customer_id = _customer_id(input.customer_id)
            await usecases.clear_override(ctx.db, ctx.caller, usecases.ClearOverride(customer_id, input.reason))
            return CustomerTierPayload(customer=await _read_customer(info, customer_id))

        return await mutate(CustomerTierPayload, run)


async def _read_customer(info: Info[Context, None], customer_id: UUID) -> CustomerType | None:
    forget(context_of(info).loaders.customer, customer_id)
    return await load_customer(info, customer_id)


@strawberry.type
class TierPolicyListQuery:
    """The tier policies as a list (listed in Query after the surveys, as before the split)."""

    @strawberry.field
    async def tier_policies(self, info: Info[Context, None]) -> list[TierPolicyType] | None:
        ctx = context_of(info)
        return [TierPolicyType.from_row(r) for r in await usecases.policies(ctx.db, ctx.caller)]

    @strawberry.field
    async def active_tier_policy(self, info: Info[Context, None]) -> TierPolicyType | None:
        ctx = context_of(info)
        rows = await usecases.policies(ctx.db, ctx.caller, ["active"])
        return TierPolicyType.from_row(rows[0]) if rows else None
