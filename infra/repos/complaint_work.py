"""Work on a complaint without moving it along its state machine (issue 16): a note, and a reassignment.

Both are events of the complaint's history (``complaint_events``: ``kind`` note or assignment, the status
unchanged, the actor, the time) with the note encrypted at rest like every other note (bound to its
event's id, infra/crypto.py). A reassignment changes the complaint (its version moves, optimistic on the
expected one) and is audited with the assignee (and the team, when it moves) before and after; a note
leaves the complaint row as it is.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Final
from uuid import UUID

from sqlalchemy import func, insert, select, update

from domain import queues as queue_rules
from domain.errors import Conflict, NotFound
from infra import crypto
from infra.repos import scope as readable
from infra.repos import teams as teams_repo
from infra.repos.authz import write_audit
from infra.repos.base import Executor, Scope, next_ids
from infra.tables import complaint_events, complaints

k = complaints


class KeepTeam(Enum):
    """A reassignment that does not name a team: the complaint's team stays as it is."""

    KEEP = "keep"


KEEP_TEAM: Final = KeepTeam.KEEP


def team_move(before: str | None, after: str | None) -> str:
    """What an assignment event says of a complaint moving between teams (by their names at the time; the
    demo seed's hand-overs say it alike)."""
    return f"team: {before or '(none)'} -> {after or '(none)'}"


async def _locked(db: Executor, complaint_id: UUID, scope: Scope) -> Any:
    stmt = (
        select(k.c.id, k.c.status, k.c.assignee, k.c.team_id, k.c.version, k.c.customer_id)
        .where(k.c.id == complaint_id, readable.by_customer(scope, k.c.customer_id))
        .with_for_update()
    )
    row = (await db.execute(stmt)).first()
    if row is None:
        raise NotFound("no such complaint", field="id")
    return row


async def _event(db: Executor, complaint_id: UUID, status: str, kind: str, note: str, actor: str) -> int:
    event_id = (await next_ids(db, complaint_events, 1))[0]
    await db.execute(
        insert(complaint_events).values(
            id=event_id,
            complaint_id=complaint_id,
            from_status=status,
            to_status=status,
            kind=kind,
            actor=actor,
            note=crypto.for_row(event_id, note),
        )
    )
    return event_id


async def add_note(
    db: Executor, complaint_id: UUID, note: str, *, actor: str, scope: Scope, request_id: str | None
) -> int:
    """A note in the complaint's history (the complaint itself unchanged); returns the event's id."""
    row = await _locked(db, complaint_id, scope)
    event_id = await _event(db, complaint_id, row.status, "note", note, actor)
    await write_audit(
        db,
        actor=actor,
        action="complaint.note",
        request_id=request_id,
        target_type="Complaint",
        target_ids=[str(complaint_id)],
        fields=["ComplaintEvent.note"],
        after={"event": event_id},
    )
    return event_id


async def assign(
    db: Executor,
    complaint_id: UUID,
    expected_version: int,
    assignee: str | None,
    *,
    actor: str,
    scope: Scope,
    request_id: str | None,
    team: UUID | KeepTeam | None = KEEP_TEAM,
    note: str | None = None,
) -> int:
    """Give the complaint to ``assignee`` (None: back to the unassigned queue) and, unless ``team`` is
    ``KEEP_TEAM``, to ``team`` (None: to no team), optimistic on ``expected_version``; an event and an
    audit entry record who moved it from whom to whom. Returns the new version. Assigning to the current
    assignee and team is a no-op (no event, same version). An unknown team is NOT_FOUND, an archived one
    CONFLICT when the complaint would move into it (domain/queues.py), before any write."""
    row = await _locked(db, complaint_id, scope)
    if row.version != expected_version:
        raise Conflict(f"the complaint changed meanwhile (now at version {row.version})", field="expectedVersion")
    if row.status not in ("new", "open", "pending_customer", "on_hold"):
        raise Conflict(f"a {row.status} complaint is not in any queue: reopen it first", field="id")
    team_id = row.team_id if isinstance(team, KeepTeam) else team
    if team_id is not None and team_id != row.team_id:  # into a team: held against its archiving meanwhile
        into = await teams_repo.held(db, team_id)
        if into is None:
            raise NotFound("no such team", field="team")
        queue_rules.team_takes_complaints(into["name"], into["archived_at"])
    names = await _team_names(db, {row.team_id, team_id})
    if row.assignee == assignee and row.team_id == team_id:
        return int(row.version)
    version = (
        await db.execute(
            update(k)
            .where(k.c.id == complaint_id)
            .values(assignee=assignee, team_id=team_id, version=k.c.version + 1, updated_at=func.now())
            .returning(k.c.version)
        )
    ).scalar_one()
    moves = []
    if row.assignee != assignee:
        moves.append(f"assignee: {row.assignee or '(none)'} -> {assignee or '(none)'}")
    if row.team_id != team_id:
        moves.append(team_move(names.get(row.team_id), names.get(team_id)))
    text = "\n".join(moves)
    await _event(db, complaint_id, row.status, "assignment", f"{text}\n{note}" if note else text, actor)
    before: dict[str, Any] = {"assignee": row.assignee}
    after: dict[str, Any] = {"assignee": assignee}
    fields = ["Complaint.assignee"]
    if row.team_id != team_id:
        before["team"] = str(row.team_id) if row.team_id else None
        after["team"] = str(team_id) if team_id else None
        fields.append("Complaint.team")
    await write_audit(
        db,
        actor=actor,
        action="complaint.assign",
        request_id=request_id,
        target_type="Complaint",
        target_ids=[str(complaint_id)],
        fields=fields,
        before=before,
        after=after,
    )
    return int(version)


async def _team_names(db: Executor, ids: set[UUID | None]) -> dict[UUID | None, str]:
    """The names of these teams (those that exist), for the assignment's event text."""
    out: dict[UUID | None, str] = {}
    for team_id in sorted((i for i in ids if i is not None), key=str):
        team = await teams_repo.by_id(db, team_id)
        if team is not None:
            out[team_id] = team["name"]
    return out
