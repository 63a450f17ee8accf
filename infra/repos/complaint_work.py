"""Work on a complaint without moving it along its state machine (issue 16): a note, and a reassignment.

Both are events of the complaint's history (``complaint_events``: ``kind`` note or assignment, the status
unchanged, the actor, the time) with the note encrypted at rest like every other note (bound to its
event's id, infra/crypto.py). A reassignment changes the complaint (its version moves, optimistic on the
expected one) and is audited with the assignee before and after; a note leaves the complaint row as it is.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, select, update

from domain.errors import Conflict, NotFound
from infra import crypto
from infra.repos import scope as readable
from infra.repos.authz import write_audit
from infra.repos.base import Executor, Scope, next_ids
from infra.tables import complaint_events, complaints

k = complaints


async def _locked(db: Executor, complaint_id: UUID, scope: Scope) -> Any:
    stmt = (
        select(k.c.id, k.c.status, k.c.assignee, k.c.version, k.c.customer_id)
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
    note: str | None = None,
) -> int:
    """Give the complaint to ``assignee`` (None: back to the unassigned queue), optimistic on
    ``expected_version``; an event and an audit entry record who moved it from whom to whom. Returns the
    new version. Assigning to the current assignee is a no-op (no event, same version)."""
    row = await _locked(db, complaint_id, scope)
    if row.version != expected_version:
        raise Conflict(f"the complaint changed meanwhile (now at version {row.version})", field="expectedVersion")
    if row.status not in ("new", "open", "pending_customer", "on_hold"):
        raise Conflict(f"a {row.status} complaint is not in any queue: reopen it first", field="id")
    if row.assignee == assignee:
        return int(row.version)
    version = (
        await db.execute(
            update(k)
            .where(k.c.id == complaint_id)
            .values(assignee=assignee, version=k.c.version + 1, updated_at=func.now())
            .returning(k.c.version)
        )
    ).scalar_one()
    text = f"assignee: {row.assignee or '(none)'} -> {assignee or '(none)'}"
    await _event(db, complaint_id, row.status, "assignment", f"{text}\n{note}" if note else text, actor)
    await write_audit(
        db,
        actor=actor,
        action="complaint.assign",
        request_id=request_id,
        target_type="Complaint",
        target_ids=[str(complaint_id)],
        fields=["Complaint.assignee"],
        before={"assignee": row.assignee},
        after={"assignee": assignee},
    )
    return int(version)
