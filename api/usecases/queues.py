"""Use-cases of the work queues (issue 16): the churn queue, the complaint queue (by assignee, by team, the
caller's teams), the name search, and work on a complaint that leaves its state as it is (a note, a
reassignment to someone or to a team).

Free of GraphQL: each takes the request's database, the ``Caller`` (its row scope and actor) and a plain
command, checks the command with domain/queues.py, and returns rows (reads) or ids and versions (writes);
the resolvers in ``api/graphql/queues/`` map arguments in and rows out, through the same loaders and field
guards as every other read. Which fields a filter or sort reveals, and so who may use it, is declared in
the field catalogue (authz/catalogue.py ``ARGUMENTS``) and refused before any of this runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from api.usecases.caller import Caller
from authz.catalogue import CHURN_SIGNALS
from authz.policy import Decisions, Level
from domain import churn as churn_rules
from domain import queues as rules
from domain.errors import Forbidden, NotFound
from infra.db import RequestDb
from infra.repos import complaint_work
from infra.repos import queues as queues_repo
from infra.repos import teams as teams_repo
from infra.repos.base import Page

ChurnQueueFilter = queues_repo.ChurnQueueFilter
ComplaintQueueFilter = queues_repo.ComplaintQueueFilter


def me(caller: Caller) -> str:
    """Who "assigned to me" names: the caller's user id (its token's ``sub``; a partner token: its id)."""
    return caller.principal.id if caller.principal is not None else caller.actor


# ---------------------------------------------------------------- churn queue


@dataclass(frozen=True)
class ChurnQueueQuery:
    levels: Sequence[str] | None = None  # None: the customers at risk (red, yellow)
    min_score: int | None = None
    max_score: int | None = None
    tiers: Sequence[str] | None = None
    signals: Sequence[str] | None = None
    sort: str = "SCORE_DESC"
    first: int = 20
    after: str | None = None


def may_see_signal(decisions: Decisions, code: str) -> bool:
    """Whether these decisions read every fact a churn signal says (authz/catalogue.py ``CHURN_SIGNALS``):
    a signal made of complaints or of the tier history is not shown to, nor filtered by, a caller who may
    not read those."""
    fields = CHURN_SIGNALS.get(code)
    return fields is not None and all(decisions.read(f) is not Level.DENIED for f in fields)


def visible_signals(decisions: Decisions, signals: list[dict[str, object]]) -> list[dict[str, object]]:
    """A churn risk's signals as these decisions may read them: only the signals whose facts they read
    (``may_see_signal``), without monetary values unless they read spend in full. The one rule for every
    read path (api/graphql/customers/types.ChurnRiskType, api/graphql/compiler.py)."""
    kept = [s for s in signals if may_see_signal(decisions, str(s.get("code")))]
    if decisions.read("CustomerMetrics.spend12m") is not Level.FULL:
        return churn_rules.without_money(kept)
    return kept


def churn_filter(q: ChurnQueueQuery, decisions: Decisions | None = None) -> ChurnQueueFilter:
    rules.check_churn_filter(q.levels, q.min_score, q.max_score, q.signals)
    hidden = sorted(c for c in q.signals or () if decisions is not None and not may_see_signal(decisions, c))
    if hidden:
        raise Forbidden(f"not allowed to read what these signals say: {', '.join(hidden)}", field="filter.signals")
    return ChurnQueueFilter(
        levels=list(q.levels) if q.levels is not None else list(rules.AT_RISK),
        min_score=q.min_score,
        max_score=q.max_score,
        tiers=q.tiers,
        signals=q.signals,
    )


async def churn_queue(db: RequestDb, caller: Caller, q: ChurnQueueQuery, *, columns: Sequence[str]) -> Page:
    """A page of the customers at churn risk the caller's scope reaches, with ``columns`` of each customer
    (those the caller may read), its churn score (``churn_*``) and its last contact (``last_contact_at``)."""
    f = churn_filter(q, caller.decisions)
    return await queues_repo.churn_page(
        db, columns=columns, scope=caller.scope, f=f, sort=q.sort, first=q.first, after=q.after
    )


async def count_churn_queue(db: RequestDb, caller: Caller, q: ChurnQueueQuery) -> int:
    return await queues_repo.churn_count(db, scope=caller.scope, f=churn_filter(q, caller.decisions))


# ---------------------------------------------------------------- complaint queue


@dataclass(frozen=True)
class ComplaintQueueQuery:
    assigned_to_me: bool | None = None
    assignee: str | None = None
    unassigned: bool | None = None
    team: UUID | None = None  # assigned to this team
    my_teams: bool | None = None  # True: to a team the caller is in; False: to none of them
    tiers: Sequence[str] | None = None
    categories: Sequence[str] | None = None
    severities: Sequence[str] | None = None
    statuses: Sequence[str] | None = None  # None: the active ones (new, open, pending customer, on hold)
    due_within_hours: int | None = None
    breached: bool | None = None
    sort: str = "DUE_AT"
    first: int = 20
    after: str | None = None


def complaint_filter(caller: Caller, q: ComplaintQueueQuery) -> ComplaintQueueFilter:
    rules.check_due_within(q.due_within_hours)
    assignees: list[str] | None = None
    if q.assigned_to_me:
        assignees = [me(caller)]
    if q.assignee is not None:
        if assignees is not None and q.assignee not in assignees:
            assignees = []  # "mine" and someone else's: nothing matches both
        else:
            assignees = [q.assignee]
    if q.unassigned and assignees is not None:
        assignees = []  # assigned to someone and to no one: nothing
    return ComplaintQueueFilter(
        assignees=assignees,
        unassigned=q.unassigned,
        team=q.team,
        teams_of=me(caller) if q.my_teams is not None else None,
        in_my_teams=bool(q.my_teams),
        tiers=q.tiers,
        categories=q.categories,
        severities=q.severities,
        statuses=list(q.statuses) if q.statuses else queues_repo.ACTIVE_STATUSES,
        due_within=dt.timedelta(hours=q.due_within_hours) if q.due_within_hours is not None else None,
        breached=q.breached,
    )


async def complaint_queue(db: RequestDb, caller: Caller, q: ComplaintQueueQuery, *, columns: Sequence[str]) -> Page:
    """A page of the complaints the caller's scope reaches, as the queue asks, with the sort value."""
    f = complaint_filter(caller, q)
    if q.team is not None and await teams_repo.by_id(db, q.team) is None:
        raise NotFound("no such team", field="team")  # a typo'd id says so rather than an empty queue
    return await queues_repo.complaint_page(
        db, columns=columns, scope=caller.scope, f=f, sort=q.sort, first=q.first, after=q.after
    )


async def count_complaint_queue(db: RequestDb, caller: Caller, q: ComplaintQueueQuery) -> int:
    return await queues_repo.complaint_count(db, scope=caller.scope, f=complaint_filter(caller, q))


# ---------------------------------------------------------------- name search


async def search_customers(
    db: RequestDb, caller: Caller, term: str, first: int, *, columns: Sequence[str]
) -> list[dict[str, object]]:
    """Live customers of the caller's scope whose name is close to ``term``, best first, each with its
    ``score`` (0-1)."""
    cleaned = rules.search_term(term)
    n = rules.search_size(first)
    return await queues_repo.search_names(db, columns=columns, scope=caller.scope, term=cleaned, first=n)


# ---------------------------------------------------------------- notes and reassignment


KeepTeam = complaint_work.KeepTeam
KEEP_TEAM = complaint_work.KEEP_TEAM  # a reassignment that leaves the complaint's team as it is


@dataclass(frozen=True)
class AddComplaintNote:
    complaint_id: UUID
    note: str


async def add_complaint_note(db: RequestDb, caller: Caller, cmd: AddComplaintNote) -> UUID:
    """A note in the history of a complaint the caller's scope reaches; its status and version stay."""
    note = rules.note_text(cmd.note)
    async with db.unit_of_work() as uow:
        await complaint_work.add_note(
            uow, cmd.complaint_id, note, actor=caller.actor, scope=caller.scope, request_id=caller.request_id
        )
        uow.commit()
    return cmd.complaint_id


@dataclass(frozen=True)
class AssignComplaint:
    complaint_id: UUID
    expected_version: int
    assignee: str | None  # None: back to the unassigned queue
    to_me: bool = False
    team: UUID | KeepTeam | None = KEEP_TEAM  # None: to no team
    note: str | None = None


async def assign_complaint(db: RequestDb, caller: Caller, cmd: AssignComplaint) -> UUID:
    """Give an active complaint to someone (or to the caller, or to no one) and, if ``team`` is given, to
    a team (or to none), audited. An unknown team is NOT_FOUND and nothing is written."""
    assignee = me(caller) if cmd.to_me else rules.assignee_name(cmd.assignee)
    note = rules.note_text(cmd.note) if cmd.note is not None else None
    async with db.unit_of_work() as uow:
        await complaint_work.assign(
            uow,
            cmd.complaint_id,
            cmd.expected_version,
            assignee,
            team=complaint_work.KEEP_TEAM if isinstance(cmd.team, KeepTeam) else cmd.team,
            actor=caller.actor,
            scope=caller.scope,
            request_id=caller.request_id,
            note=note,
        )
        uow.commit()
    return cmd.complaint_id
