"""Work queues and name search (issue 16): the customers at churn risk, the complaints to work on, and a
typo-tolerant name search. Every statement takes its rows from the partner scope (infra/repos/scope.py),
selects only the columns the caller's grants allow (the caller passes them), and pages by keyset.

- **Churn queue**: scored customers (``churn_scores``) with their level, score and signals, filtered by
  level, score, tier and signal; sorted by score, by tier (then score), or by last contact (the longest
  silence first). *Last contact* is the latest of the customer's last purchase, the last change of one of
  its complaints and its last survey answer.
- **Complaint queue**: complaints filtered by assignee (a given one, the caller, or none), team (a given
  one, or any team the caller is a member of: a subquery of ``team_members``, not a statement), tier at
  opening, category, severity, status (active ones unless told), due within N hours, breached; sorted by
  the next deadline (soonest first). The *next deadline* of an active complaint whose clock runs is its
  first-response deadline until it is answered, then its resolution deadline; a paused, resolved or
  closed complaint has none (sorted last).
- **Name search**: ``word_similarity`` of pg_trgm (a GIN trigram index, migration 0017, through the
  ``tw_name_*`` SQL functions the planner inlines; plain SQL where pg_trgm is missing) ranks live
  customers whose name holds a word close to the search (typos, missing letters, another order of the
  words). Names are the one plain-text personal field; encrypted fields are never searched (their
  filters compare blind indexes for equality only).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Float, Integer, Select, and_, case, cast, func, literal, null, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB

from infra.pagination import SortKey, apply_keyset
from infra.repos import scope as readable
from infra.repos import teams as teams_repo
from infra.repos.base import Executor, Page, Scope, to_page
from infra.repos.clocks import ACTIVE_SQL, breached_sql, clock_columns
from infra.repos.customers import BASE_COLUMNS, DATA_COLUMNS
from infra.tables import (
    churn_scores,
    complaints,
    customer_metrics,
    customers,
    survey_responses,
    tier_policies,
    tiers,
)

c, s, m, k = customers, churn_scores, customer_metrics, complaints
ACTIVE_STATUSES = ("new", "open", "pending_customer", "on_hold")
assert ACTIVE_SQL == "(" + ", ".join(f"'{x}'" for x in ACTIVE_STATUSES) + ")"
_NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # sorts "never contacted" first
_NO_DEADLINE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)  # sorts "no deadline" last
CHURN_COLUMNS = ("level", "score", "signals", "model_version", "computed_at")


def _customer_columns(columns: Sequence[str]) -> list[Any]:
    wanted = list(BASE_COLUMNS) + [name for name in DATA_COLUMNS if name in columns]
    return [c.c[name] for name in wanted]


def _live(stmt: Select[Any], scope: Scope) -> Select[Any]:
    return stmt.where(
        c.c.deleted_at.is_(None), c.c.merged_into_id.is_(None), c.c.erased_at.is_(None), readable.customers(scope)
    )


# ---------------------------------------------------------------- churn queue


def last_contact() -> Any:
    """The latest of the last purchase, the last change of a complaint and the last survey answer (NULL: none)."""
    last_complaint = select(func.max(k.c.updated_at)).where(k.c.customer_id == c.c.id).scalar_subquery()
    r = survey_responses
    last_answer = select(func.max(r.c.submitted_at)).where(r.c.customer_id == c.c.id).scalar_subquery()
    return func.greatest(m.c.last_purchase_at, last_complaint, last_answer)


def _tier_rank() -> Any:
    """The rank of the customer's tier in the active policy (-1: no tier)."""
    rank = (
        select(tiers.c.rank)
        .join(tier_policies, tier_policies.c.id == tiers.c.policy_id)
        .where(tier_policies.c.status == "active", tiers.c.code == c.c.tier_code)
        .scalar_subquery()
    )
    return func.coalesce(rank, -1)


CHURN_SORTS = ("SCORE_DESC", "TIER_DESC", "LAST_CONTACT")


def _churn_sort(sort: str) -> SortKey:
    if sort == "SCORE_DESC":
        return SortKey(sort, s.c.score, c.c.id, descending=True)
    if sort == "TIER_DESC":  # highest tier first, then the highest score: one integer, so one keyset column
        return SortKey(sort, cast(_tier_rank() * 1000 + s.c.score, Integer), c.c.id, descending=True)
    if sort == "LAST_CONTACT":  # the longest silence first; never contacted before everyone
        return SortKey(sort, cast(func.coalesce(last_contact(), _NEVER), DateTime(timezone=True)), c.c.id)
    raise ValueError(sort)


@dataclass(frozen=True)
class ChurnQueueFilter:
    levels: Sequence[str] | None = None
    min_score: int | None = None
    max_score: int | None = None
    tiers: Sequence[str] | None = None
    signals: Sequence[str] | None = None  # any of these signal codes fired


def _churn_filtered(stmt: Select[Any], f: ChurnQueueFilter) -> Select[Any]:
    if f.levels:
        stmt = stmt.where(s.c.level.in_(list(f.levels)))
    if f.min_score is not None:
        stmt = stmt.where(s.c.score >= f.min_score)
    if f.max_score is not None:
        stmt = stmt.where(s.c.score <= f.max_score)
    if f.tiers:
        stmt = stmt.where(c.c.tier_code.in_(list(f.tiers)))
    if f.signals:
        stmt = stmt.where(
            or_(*(s.c.signals.contains(cast(literal(json.dumps([{"code": code}])), JSONB)) for code in f.signals))
        )
    return stmt


def _churn_from(stmt: Select[Any]) -> Select[Any]:
    return stmt.select_from(s.join(c, c.c.id == s.c.customer_id).outerjoin(m, m.c.customer_id == c.c.id))


async def churn_page(
    db: Executor,
    *,
    columns: Sequence[str],
    scope: Scope,
    f: ChurnQueueFilter,
    sort: str,
    first: int,
    after: str | None,
) -> Page:
    """A page of scored customers: the customer's columns (``columns``: those the caller may read), its
    churn score (``churn_*``), its last contact and the sort value (``_sort``)."""
    key = _churn_sort(sort)
    stmt = select(
        *_customer_columns(columns),
        *(s.c[name].label(f"churn_{name}") for name in CHURN_COLUMNS),
        last_contact().label("last_contact_at"),
        key.column.label("_sort"),
    )
    stmt = apply_keyset(_churn_filtered(_live(_churn_from(stmt), scope), f), key, first, after)
    return to_page((await db.execute(stmt)).all(), first)


async def churn_count(db: Executor, *, scope: Scope, f: ChurnQueueFilter) -> int:
    stmt = _churn_filtered(_live(_churn_from(select(func.count())), scope), f)
    return int((await db.execute(stmt)).scalar_one())


# ---------------------------------------------------------------- complaint queue


def next_deadline() -> Any:
    """The next deadline of an active complaint whose clocks run (NULL: none)."""
    running = and_(k.c.status.in_(ACTIVE_STATUSES), k.c.paused_since.is_(None))
    return case(
        (
            running,
            case(
                (k.c.first_responded_at.is_(None), func.least(k.c.first_response_due_at, k.c.resolution_due_at)),
                else_=k.c.resolution_due_at,
            ),
        ),
        else_=null(),
    )


COMPLAINT_SORTS = ("DUE_AT", "OPENED_AT")


def _complaint_sort(sort: str) -> SortKey:
    if sort == "DUE_AT":
        return SortKey(sort, cast(func.coalesce(next_deadline(), _NO_DEADLINE), DateTime(timezone=True)), k.c.id)
    if sort == "OPENED_AT":
        return SortKey(sort, k.c.opened_at, k.c.id)
    raise ValueError(sort)


@dataclass(frozen=True)
class ComplaintQueueFilter:
    assignees: Sequence[str] | None = None  # assigned to one of these
    unassigned: bool | None = None  # True: no assignee; False: some assignee
    team: UUID | None = None  # assigned to this team
    teams_of: str | None = None  # with ``in_my_teams``: the user whose teams count
    in_my_teams: bool = True  # True: assigned to one of the teams of ``teams_of``; False: to none of them
    tiers: Sequence[str] | None = None  # the tier the complaint was opened at (its SLA targets)
    categories: Sequence[str] | None = None
    severities: Sequence[str] | None = None
    statuses: Sequence[str] = ACTIVE_STATUSES
    due_within: dt.timedelta | None = None  # the next deadline is between now and now + this
    breached: bool | None = None


def _complaint_filtered(stmt: Select[Any], f: ComplaintQueueFilter) -> Select[Any]:
    stmt = stmt.where(k.c.status.in_(list(f.statuses)))
    if f.assignees is not None:
        stmt = stmt.where(k.c.assignee.in_(list(f.assignees)))
    if f.unassigned is not None:
        stmt = stmt.where(k.c.assignee.is_(None) if f.unassigned else k.c.assignee.isnot(None))
    if f.team is not None:
        stmt = stmt.where(k.c.team_id == f.team)
    if f.teams_of is not None:  # a subquery of the same statement: no statement of its own
        mine = k.c.team_id.in_(teams_repo.teams_of(f.teams_of))
        stmt = stmt.where(mine if f.in_my_teams else or_(k.c.team_id.is_(None), ~mine))
    if f.tiers:
        stmt = stmt.where(k.c.tier_at_open.in_(list(f.tiers)))
    if f.categories:
        stmt = stmt.where(k.c.category_code.in_(list(f.categories)))
    if f.severities:
        stmt = stmt.where(k.c.severity.in_(list(f.severities)))
    if f.due_within is not None:
        due = next_deadline()
        stmt = stmt.where(due > func.now(), due <= func.now() + f.due_within)
    if f.breached is not None:
        either = breached_sql("complaints")
        stmt = stmt.where(text(either if f.breached else f"NOT {either}"))
    return stmt


def _complaint_select(columns: Sequence[str]) -> list[Any]:
    """The complaint's columns (its encrypted description only when the caller may read it) and clocks."""
    return [col for col in k.c if col.key != "description" or "description" in columns] + list(clock_columns())


async def complaint_page(
    db: Executor,
    *,
    columns: Sequence[str],
    scope: Scope,
    f: ComplaintQueueFilter,
    sort: str,
    first: int,
    after: str | None,
) -> Page:
    key = _complaint_sort(sort)
    stmt = select(*_complaint_select(columns), key.column.label("_sort")).where(
        readable.by_customer(scope, k.c.customer_id)
    )
    stmt = apply_keyset(_complaint_filtered(stmt, f), key, first, after)
    return to_page((await db.execute(stmt)).all(), first)


async def complaint_count(db: Executor, *, scope: Scope, f: ComplaintQueueFilter) -> int:
    stmt = select(func.count()).select_from(k).where(readable.by_customer(scope, k.c.customer_id))
    return int((await db.execute(_complaint_filtered(stmt, f))).scalar_one())


# ---------------------------------------------------------------- name search


async def search_names(
    db: Executor, *, columns: Sequence[str], scope: Scope, term: str, first: int
) -> list[dict[str, Any]]:
    """Live customers whose name holds a word close to ``term`` (pg_trgm ``<%``: word similarity at least
    ``pg_trgm.word_similarity_threshold``, 0.6 by default; the GIN trigram index finds them), best first;
    each row carries its ``score`` (0-1)."""
    score = cast(func.tw_name_score(term, c.c.name), Float)
    stmt = _live(select(*_customer_columns(columns), score.label("score")), scope).where(
        func.tw_name_matches(term, c.c.name)  # pg_trgm's <%, inlined: the GIN index (migration 0017)
    )
    stmt = stmt.order_by(score.desc(), c.c.name, c.c.id).limit(first)
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]
