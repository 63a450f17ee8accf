"""Use-cases of privacy and data quality (issue 8): duplicate candidates, dismissing and restoring a pair,
merging a duplicate into a survivor, the data-quality report, consent per channel, erasure and export.

Free of GraphQL (issue 13, item 2): each takes the request's database, the caller (api/usecases/caller.py:
who, for audit rows, the rows they reach, what they may read in full) and a plain command, returns rows
or dataclasses, and raises domain errors; the resolvers in ``api/graphql/privacy/resolvers.py`` decode
global ids and map results to GraphQL types. Merges, consent changes, erasures and exports are audited
(infra/repos/quality.py, or here for the export) in the same transaction as the change; a merge or an
erasure changes the customer's facts, so the after-change step runs in that transaction too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.usecases.caller import Caller
from authz.catalogue import CATALOGUE
from authz.policy import Decisions, Level
from domain import quality as rules
from domain.errors import Forbidden, ValidationFailed
from infra.after_change import after_change
from infra.db import RequestDb
from infra.pagination import decode_cursor, encode_cursor
from infra.repos import authz as authz_repo
from infra.repos import quality as quality_repo
from infra.settings import Settings

PAIR_SORT = "DUPLICATE_PAIR"
# The catalogue types whose data an export hands out decrypted. The export is one JSON value that the
# field guards cannot look into, so it is refused unless the caller may read every field of these in full.
_EXPORTED = (
    "Customer CustomerMetrics ChurnRisk TierChange Purchase Refund BenefitRedemption Complaint ComplaintEvent"
    " SurveyInvitation SurveyResponse SurveyAnswer CustomerMerge AuditEntry"
)
EXPORTED_TYPES = frozenset(_EXPORTED.split())


def configured_criteria(settings: Settings) -> tuple[str, ...]:
    """The duplicate criteria in force (``TIERWISE_DUPLICATE_CRITERIA``)."""
    return rules.parse_names(settings.duplicate_criteria, rules.DUPLICATE_CRITERIA, "TIERWISE_DUPLICATE_CRITERIA")


# ---------------------------------------------------------------- duplicates


@dataclass(frozen=True)
class DuplicateQuery:
    first: int
    after: str | None = None  # a cursor of this list (``pair_cursor``)
    criteria: Sequence[str] | None = None  # None: every configured criterion; else those of them asked for
    include_dismissed: bool = False


@dataclass(frozen=True)
class DuplicatePage:
    rows: list[dict[str, Any]]  # ordered by (a_id, b_id); each with its criteria and its dismissal, if any
    has_next: bool
    count: Callable[[], Awaitable[int]]  # the pairs listed in all, run only when awaited


def pair_cursor(row: dict[str, Any]) -> str:
    """The cursor after this pair."""
    return encode_cursor(PAIR_SORT, str(row["a_id"]), row["b_id"])


async def duplicate_pairs(db: RequestDb, caller: Caller, query: DuplicateQuery, *, settings: Settings) -> DuplicatePage:
    """A page of candidate duplicate pairs among the customers the caller's scope reaches, matched on blind
    indexes by the configured criteria."""
    wanted = [c for c in configured_criteria(settings) if query.criteria is None or c in query.criteria]
    cursor = None
    if query.after is not None:
        a, b = decode_cursor(query.after, PAIR_SORT)
        try:
            cursor = (UUID(str(a)), UUID(str(b)))
        except ValueError:
            raise ValidationFailed("not a cursor of this list", field="after") from None
    rows, has_next = await quality_repo.duplicate_pairs(
        db,
        criteria=wanted,
        scope=caller.scope,
        first=query.first,
        after=cursor,
        include_dismissed=query.include_dismissed,
    )

    async def total() -> int:
        counts = await quality_repo.duplicate_counts(
            db, criteria=wanted, scope=caller.scope, include_dismissed=query.include_dismissed
        )
        return counts[0]

    return DuplicatePage(rows, has_next, total)


@dataclass(frozen=True)
class DismissPair:
    customer_id: UUID
    other_id: UUID
    reason: str | None = None  # a code of domain.quality (shared_email, family_member, …)


@dataclass(frozen=True)
class RestorePair:
    customer_id: UUID
    other_id: UUID


async def dismiss_duplicate_pair(db: RequestDb, caller: Caller, cmd: DismissPair) -> dict[str, Any]:
    """Mark a candidate pair "not a duplicate"; the pair's row with its dismissal and ``changed``."""
    async with db.unit_of_work() as uow:
        done = await quality_repo.dismiss_pair(
            uow.conn,
            cmd.customer_id,
            cmd.other_id,
            reason=cmd.reason,
            scope=caller.scope,
            actor=caller.actor,
            request_id=caller.request_id,
        )
        uow.commit()
    return done


async def restore_duplicate_pair(db: RequestDb, caller: Caller, cmd: RestorePair) -> dict[str, Any]:
    """Undo a dismissal; the pair's row and ``changed``."""
    async with db.unit_of_work() as uow:
        done = await quality_repo.restore_pair(
            uow.conn,
            cmd.customer_id,
            cmd.other_id,
            scope=caller.scope,
            actor=caller.actor,
            request_id=caller.request_id,
        )
        uow.commit()
    return done


# ---------------------------------------------------------------- merge


@dataclass(frozen=True)
class MergeCustomers:
    survivor_id: UUID
    duplicate_id: UUID
    expected_survivor_version: int | None = None
    expected_duplicate_version: int | None = None


async def merge_customers(db: RequestDb, caller: Caller, cmd: MergeCustomers) -> dict[str, Any]:
    """Merge a duplicate into a survivor (both within the caller's scope) in one transaction, with the
    after-change step for the survivor; the merge record."""
    async with db.unit_of_work() as uow:
        record = await quality_repo.merge(
            uow.conn,
            cmd.survivor_id,
            cmd.duplicate_id,
            scope=caller.scope,
            actor=caller.actor,
            request_id=caller.request_id,
            survivor_version=cmd.expected_survivor_version,
            duplicate_version=cmd.expected_duplicate_version,
        )
        # the survivor now holds the duplicate's purchases, complaints and answers
        await after_change(uow.conn, [cmd.survivor_id], actor=caller.actor)
        uow.commit()
    return record


# ---------------------------------------------------------------- erasure


@dataclass(frozen=True)
class Erasure:
    ids: list[UUID]  # the customer and the duplicates merged into it, all erased
    erased_at: dt.datetime
    counts: dict[str, Any]  # what was overwritten, by kind (counts)


async def erase_customer(db: RequestDb, caller: Caller, customer_id: UUID) -> Erasure:
    """Irreversibly remove every sensitive value of a customer the caller's scope reaches (a second erase
    is a CONFLICT); the aggregates stay, kept consistent by the after-change step in the same transaction."""
    async with db.unit_of_work() as uow:
        done = await quality_repo.erase(
            uow.conn, customer_id, scope=caller.scope, actor=caller.actor, request_id=caller.request_id
        )
        # the profile is gone, the aggregates stay: the step keeps metrics, tier and churn consistent
        await after_change(uow.conn, [customer_id], actor=caller.actor)
        uow.commit()
    return Erasure(ids=list(done["ids"]), erased_at=done["erased_at"], counts=done["counts"])


# ---------------------------------------------------------------- consent


@dataclass(frozen=True)
class SetConsent:
    customer_id: UUID
    channel: str  # a domain.quality consent channel: "email", "sms", "phone"
    given: bool
    expected_version: int | None = None  # optimistic lock: refused if the customer moved on


async def set_consent(db: RequestDb, caller: Caller, cmd: SetConsent) -> bool:
    """Give or withdraw consent on one channel (kept in the consent history, audited); whether anything
    changed (repeating the current state does not)."""
    async with db.unit_of_work() as uow:
        changed = await quality_repo.set_consent(
            uow.conn,
            cmd.customer_id,
            cmd.channel,
            cmd.given,
            scope=caller.scope,
            actor=caller.actor,
            request_id=caller.request_id,
            expected_version=cmd.expected_version,
        )
        uow.commit()
    return changed


# ---------------------------------------------------------------- report and export


async def data_quality_report(db: RequestDb, caller: Caller, *, settings: Settings) -> dict[str, Any]:
    """Share of live customers missing each required field, open duplicate candidates, merges per month,
    metrics staleness, over the caller's scope (computed without decrypting anything)."""
    required = rules.parse_names(
        settings.quality_required_fields, rules.REPORTABLE_FIELDS, "TIERWISE_QUALITY_REQUIRED_FIELDS"
    )
    return await quality_repo.report(
        db,
        required=required,
        criteria=configured_criteria(settings),
        stale_days=settings.metrics_stale_days,
        scope=caller.scope,
    )


def export_gaps(decisions: Decisions | None) -> list[str]:
    """The exported fields this caller may not read in full (memoised per role set); none for a caller
    that roles do not confine (CLI, jobs)."""
    if decisions is None:
        return []
    gaps: list[str] | None = decisions.memo.get("export_gaps")
    if gaps is None:
        gaps = decisions.memo["export_gaps"] = sorted(
            key
            for key, spec in CATALOGUE.items()
            if spec.type_name in EXPORTED_TYPES and decisions.read(key) is not Level.FULL
        )
    return gaps


def check_export_allowed(caller: Caller) -> None:
    """``Forbidden`` unless the caller may read every exported field in full (the export is one JSON value
    the field guards cannot look into)."""
    gaps = export_gaps(caller.decisions)
    if gaps:
        raise Forbidden(f"an export needs full read of every customer field; not granted: {', '.join(gaps)}")


async def export_customer_data(db: RequestDb, caller: Caller, customer_id: UUID) -> dict[str, Any]:
    """Everything held about a customer the caller's scope reaches (and the duplicates merged into it),
    decrypted, for an access request; audited in the same transaction."""
    check_export_allowed(caller)
    async with db.unit_of_work() as uow:
        data = await quality_repo.export(uow.conn, customer_id, scope=caller.scope)
        await authz_repo.write_audit(
            uow.conn,
            actor=caller.actor,
            action="customer_exported",
            request_id=caller.request_id,
            target_type="Customer",
            target_ids=[str(customer_id)],
            fields=["*"],
        )
        uow.commit()
    return data
