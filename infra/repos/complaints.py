"""Complaints and their events: reads scoped to the partner's customers, transitions as one unit of work."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from domain import sla
from domain.complaints import ComplaintState, Transition, TransitionOutcome, check_follow_up, check_transition
from domain.errors import Conflict, NotFound, ValidationFailed
from infra import crypto
from infra.pagination import SortKey, apply_keyset
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, first_n_per_parent, next_ids, to_page
from infra.repos.clocks import breached_sql, clock_columns, mark_breaches
from infra.tables import (
    complaint_categories,
    complaint_events,
    complaints,
    customers,
    root_causes,
    sla_policies,
    sla_targets,
    tier_policies,
    tiers,
)

k = complaints
SENSITIVE_COLUMNS = ("description",)
SORTS: dict[str, SortKey] = {
    "OPENED_AT_DESC": SortKey("OPENED_AT_DESC", k.c.opened_at, k.c.id, descending=True),
    "OPENED_AT": SortKey("OPENED_AT", k.c.opened_at, k.c.id),
    "UPDATED_AT_DESC": SortKey("UPDATED_AT_DESC", k.c.updated_at, k.c.id, descending=True),
}


@dataclass(frozen=True)
class ComplaintFilter:
    statuses: Sequence[str] | None = None
    severities: Sequence[str] | None = None
    categories: Sequence[str] | None = None
    customer_id: UUID | None = None
    opened_after: dt.datetime | None = None
    opened_before: dt.datetime | None = None
    breached: bool | None = None


def _select(columns: Sequence[str]) -> Any:
    cols = [col for col in k.c if col.key not in SENSITIVE_COLUMNS or col.key in columns]
    return select(*cols, *clock_columns())


def _scoped(stmt: Any, scope: Scope) -> Any:
    return stmt.where(readable.by_customer(scope, k.c.customer_id))


def _filtered(stmt: Any, f: ComplaintFilter) -> Any:
    if f.statuses:
        stmt = stmt.where(k.c.status.in_(list(f.statuses)))
    if f.severities:
        stmt = stmt.where(k.c.severity.in_(list(f.severities)))
    if f.categories:
        stmt = stmt.where(k.c.category_code.in_(list(f.categories)))
    if f.customer_id is not None:
        stmt = stmt.where(k.c.customer_id == f.customer_id)
    if f.opened_after is not None:
        stmt = stmt.where(k.c.opened_at >= f.opened_after)
    if f.opened_before is not None:
        stmt = stmt.where(k.c.opened_at < f.opened_before)
    if f.breached is not None:  # breached by the flags or by the clocks as of now (infra/repos/clocks.py)
        either = breached_sql("complaints")
        stmt = stmt.where(text(either if f.breached else f"NOT {either}"))
    return stmt


async def page(
    db: Executor,
    *,
    columns: Sequence[str],
    scope: Scope,
    f: ComplaintFilter,
    sort: str,
    first: int,
    after: str | None,
) -> Page:
    key = SORTS[sort]
    stmt = apply_keyset(_filtered(_scoped(_select(columns), scope), f), key, first, after)
    return to_page((await db.execute(stmt)).all(), first)


async def count(db: Executor, *, scope: Scope, f: ComplaintFilter) -> int:
    stmt = _filtered(_scoped(select(func.count()).select_from(k), scope), f)
    return int((await db.execute(stmt)).scalar_one())


async def by_ids(
    db: Executor, ids: Sequence[UUID], *, columns: Sequence[str], scope: Scope
) -> dict[UUID, dict[str, Any]]:
    stmt = _scoped(_select(columns).where(k.c.id.in_(list(ids))), scope)
    return {r.id: dict(r._mapping) for r in (await db.execute(stmt)).all()}


async def latest_for_customers(
    db: Executor, customer_ids: list[UUID], *, columns: Sequence[str], first: int
) -> dict[UUID, Page]:
    """Newest complaints first, ``first`` per customer, in one statement (customers are already scoped)."""
    cols = tuple(columns)
    return await first_n_per_parent(
        db,
        ("complaints.latest_for_customers", cols),
        lambda: (_select(cols), k.c.customer_id, [k.c.opened_at.desc(), k.c.id.desc()]),
        customer_ids,
        first,
    )


async def events_for(db: Executor, complaint_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    e = complaint_events
    rows = (await db.execute(select(e).where(e.c.complaint_id.in_(complaint_ids)).order_by(e.c.id))).all()
    out: dict[UUID, list[dict[str, Any]]] = {cid: [] for cid in complaint_ids}
    for r in rows:
        out[r.complaint_id].append(dict(r._mapping))
    return out


def _taxonomy_table(table: str) -> Any:
    return complaint_categories if table == "categories" else root_causes


async def taxonomy(db: Executor, table: str, *, include_inactive: bool = False) -> list[dict[str, Any]]:
    """Active entries (for choosing); with ``include_inactive``, the retired ones too (for showing the
    category of an older complaint)."""
    t = _taxonomy_table(table)
    stmt = select(t.c.code, t.c.label, t.c.active).order_by(t.c.code)
    if not include_inactive:
        stmt = stmt.where(t.c.active)
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


async def add_taxon(db: Executor, table: str, code: str, label: str) -> tuple[dict[str, Any], bool]:
    """Add an entry, or bring back a deactivated one under a new label; an active code is a conflict.
    Returns (the entry, whether it was reactivated)."""
    t = _taxonomy_table(table)
    row = (await db.execute(select(t).where(t.c.code == code).with_for_update())).first()
    if row is not None and row.active:
        raise Conflict(f"'{code}' exists already", field="code")
    if row is None:  # another request adding the same code meanwhile wins; this one is then a conflict
        stmt: Any = pg_insert(t).values(code=code, label=label, active=True).on_conflict_do_nothing()
    else:
        stmt = update(t).where(t.c.code == code).values(label=label, active=True)
    if not (await db.execute(stmt.returning(t.c.code))).first():
        raise Conflict(f"'{code}' exists already", field="code")
    return {"code": code, "label": label, "active": True}, row is not None


async def deactivate_taxon(db: Executor, table: str, code: str) -> dict[str, Any]:
    """Retire an entry: no new complaint or resolution can use it; complaints that do keep it."""
    t = _taxonomy_table(table)
    row = (
        await db.execute(update(t).where(t.c.code == code).values(active=False).returning(t.c.code, t.c.label))
    ).first()
    if row is None:
        raise NotFound(f"no such code '{code}'", field="code")
    return {"code": row.code, "label": row.label, "active": False}


async def _sla_deadlines(db: Executor, tier: str | None, severity: str) -> tuple[int | None, Any, Any]:
    t, p = sla_targets, sla_policies
    row = (
        await db.execute(
            select(p.c.version, t.c.first_response_minutes, t.c.resolution_minutes)
            .join(t, t.c.policy_id == p.c.id)
            .where(p.c.status == "active", t.c.severity == severity, t.c.tier_code.in_([tier or "*", "*"]))
            .order_by((t.c.tier_code == "*").asc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None, None, None
    now = func.now()
    return (
        row.version,
        now + dt.timedelta(minutes=row.first_response_minutes),
        now + dt.timedelta(minutes=row.resolution_minutes),
    )


async def _base_tier(db: Executor) -> str | None:
    """The lowest tier of the active tier policy (its entry rule always holds)."""
    stmt = (
        select(tiers.c.code)
        .join(tier_policies, tier_policies.c.id == tiers.c.policy_id)
        .where(tier_policies.c.status == "active")
        .order_by(tiers.c.rank)
        .limit(1)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


# What a complaint was opened with: a replay of its external id is compared with these.
CREATED_WITH = ("customer_id", "subject", "description", "category_code", "severity", "channel", "follow_up_of_id")


async def by_external_id(db: Executor, external_id: str, scope: Scope) -> dict[str, Any] | None:
    """The partner's complaint with this external id: its id and what it was opened with."""
    stmt = select(k.c.id, *(k.c[name] for name in CREATED_WITH)).where(
        readable.owned(scope, k.c.partner_id), k.c.external_id == external_id
    )
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def open_complaint(db: Executor, values: dict[str, Any], *, actor: str) -> UUID | None:
    """Insert a new complaint with SLA deadlines from the customer's tier, and its first event.

    None when the partner's external id is taken: by a complaint committed before, or by one another
    transaction was inserting meanwhile (the insert waits for it to end; ``ON CONFLICT DO NOTHING``).
    The caller then reads that complaint (``by_external_id``): nothing was written here."""
    if (
        await db.execute(
            select(complaint_categories.c.code).where(
                complaint_categories.c.code == values["category_code"], complaint_categories.c.active
            )
        )
    ).first() is None:
        raise ValidationFailed("unknown complaint category", field="category")
    if values.get("follow_up_of_id") is not None:
        prior = (
            await db.execute(select(k.c.status, k.c.customer_id).where(k.c.id == values["follow_up_of_id"]))
        ).first()
        if prior is None or prior.customer_id != values["customer_id"]:
            raise NotFound("no such complaint to follow up", field="followUpOf")
        check_follow_up(prior.status)
    tier = (await db.execute(select(customers.c.tier_code).where(customers.c.id == values["customer_id"]))).scalar_one()
    if tier is None:  # not tiered yet (tiers are assigned on the first purchase): the base tier applies
        tier = await _base_tier(db)
    version, first_due, resolution_due = await _sla_deadlines(db, tier, values["severity"])
    new_id = uuid.uuid4()  # made here: the description is encrypted bound to it (infra/crypto.py)
    complaint_id: UUID | None = (
        await db.execute(
            pg_insert(k)
            .values(
                **crypto.bind_row(k, new_id, values),
                id=new_id,
                status="new",
                tier_at_open=tier,
                sla_policy_version=version,
                first_response_due_at=first_due,
                resolution_due_at=resolution_due,
            )
            .on_conflict_do_nothing(
                index_elements=[k.c.partner_id, k.c.external_id], index_where=k.c.external_id.isnot(None)
            )
            .returning(k.c.id)
        )
    ).scalar_one_or_none()
    if complaint_id is None:
        return None
    await db.execute(
        insert(complaint_events).values(complaint_id=complaint_id, from_status=None, to_status="new", actor=actor)
    )
    return complaint_id


@dataclass(frozen=True)
class TransitionResult:
    customer_id: UUID
    outcome: TransitionOutcome
    breached: bool  # a clock this transition stopped late was flagged (a churn input moved)


async def transition(
    db: Executor, complaint_id: UUID, expected_version: int, t: Transition, *, actor: str, scope: Scope
) -> TransitionResult:
    """Apply a legal transition with its event row. A clock it stops late is flagged as breached in the
    same statement set (infra/repos/clocks.mark_breaches, scoped to this complaint)."""
    row = (await db.execute(_scoped(select(k).where(k.c.id == complaint_id), scope).with_for_update())).first()
    if row is None:
        raise NotFound("no such complaint", field="id")
    if row.version != expected_version:
        raise Conflict(f"the complaint changed meanwhile (now at version {row.version})", field="expectedVersion")
    outcome = check_transition(ComplaintState(row.status, row.assignee), t)
    if (
        t.root_cause_code is not None
        and (
            await db.execute(
                select(root_causes.c.code).where(root_causes.c.code == t.root_cause_code, root_causes.c.active)
            )
        ).first()
        is None
    ):
        raise ValidationFailed("unknown root cause", field="rootCauseCode")
    now = func.now()
    values: dict[str, Any] = {"status": t.to, "version": k.c.version + 1, "updated_at": now}
    if t.assignee:
        values["assignee"] = t.assignee
    if outcome.is_first_response:
        values["first_responded_at"] = now
    if outcome.pauses or outcome.resumes:  # the clock arithmetic is domain/sla.py's, at the transaction's now()
        clock = sla.Clock(**{f: row._mapping[f] for f in sla.CLOCK_FIELDS})
        at = (await db.execute(select(now))).scalar_one()
        moved = sla.pause(clock, at) if outcome.pauses else sla.resume(clock, at)
        values.update(
            paused_since=moved.paused_since,
            paused_seconds=moved.paused_seconds,
            resolution_due_at=moved.resolution_due_at,
        )
    if t.to == "resolved":
        values.update(resolved_at=now, resolution_code=t.resolution_code, root_cause_code=t.root_cause_code)
    if outcome.is_reopen:
        values.update(reopen_count=k.c.reopen_count + 1, resolved_at=None)
    if t.to == "closed":
        values["closed_at"] = now
    await db.execute(update(k).where(k.c.id == complaint_id).values(**values))
    event: dict[str, Any] = {}
    if t.note is not None:  # the note is encrypted bound to its event's id: taken from the sequence first
        event_id = (await next_ids(db, complaint_events, 1))[0]
        event = {"id": event_id, "note": crypto.for_row(event_id, t.note)}
    await db.execute(
        insert(complaint_events).values(
            complaint_id=complaint_id, from_status=row.status, to_status=t.to, actor=actor, **event
        )
    )
    flagged = await mark_breaches(db, [complaint_id], actor=actor)
    return TransitionResult(row.customer_id, outcome, bool(flagged))
