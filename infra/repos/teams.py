"""Teams of staff and who is in them (migration 0022), renamed and retired (archived, 0026). Teams are staff
organisation, not customer data:
they carry no partner scope of their own (their administration is refused to partner principals,
authz/confinement.py); the complaints of a team's queue are scoped like every complaint
(infra/repos/queues.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from domain.sla import ACTIVE_STATUSES
from infra.repos.base import Executor, rowcount
from infra.tables import complaints, team_members, teams


async def create(db: Executor, name: str) -> dict[str, Any] | None:
    """A new team; None when the name is taken (by a team committed meanwhile too)."""
    stmt = pg_insert(teams).values(name=name).on_conflict_do_nothing().returning(*teams.c)
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row is not None else None


async def by_id(db: Executor, team_id: UUID) -> dict[str, Any] | None:
    row = (await db.execute(select(*teams.c).where(teams.c.id == team_id))).first()
    return dict(row._mapping) if row is not None else None


async def by_name(db: Executor, name: str) -> dict[str, Any] | None:
    row = (await db.execute(select(*teams.c).where(teams.c.name == name))).first()
    return dict(row._mapping) if row is not None else None


async def locked(db: Executor, team_id: UUID) -> dict[str, Any] | None:
    """The team, locked against a concurrent change of it (its members are changed under this lock)."""
    row = (await db.execute(select(*teams.c).where(teams.c.id == team_id).with_for_update())).first()
    return dict(row._mapping) if row is not None else None


async def held(db: Executor, team_id: UUID) -> dict[str, Any] | None:
    """The team, held (``FOR SHARE``) until the transaction ends: a complaint handed to it meanwhile and its
    archiving (``archive``) wait for each other, so no complaint moves into a team archived concurrently;
    hand-overs to one team do not wait for each other."""
    row = (await db.execute(select(*teams.c).where(teams.c.id == team_id).with_for_update(read=True))).first()
    return dict(row._mapping) if row is not None else None


async def all_teams(db: Executor, *, include_archived: bool = True) -> list[dict[str, Any]]:
    """Every team (or every team not archived), by name (a small table: the whole of it is one statement
    per request)."""
    stmt = select(*teams.c).order_by(teams.c.name, teams.c.id)
    if not include_archived:
        stmt = stmt.where(teams.c.archived_at.is_(None))
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


async def rename(db: Executor, team_id: UUID, name: str) -> dict[str, Any] | None:
    """The team under its new name; None when the name is another team's (one committed meanwhile too: the
    unique constraint decides, and the transaction, which the caller rolls back, ends there)."""
    stmt = update(teams).where(teams.c.id == team_id).values(name=name).returning(*teams.c)
    try:
        row = (await db.execute(stmt)).first()
    except IntegrityError as exc:
        if "uq_teams_name" not in str(exc.orig):
            raise
        return None
    return dict(row._mapping) if row is not None else None


async def archive(db: Executor, team_id: UUID) -> dict[str, Any]:
    """Retire the team (``archived_at`` now); the caller holds its lock (``locked``) and checked it is not
    archived already."""
    stmt = update(teams).where(teams.c.id == team_id).values(archived_at=func.now()).returning(*teams.c)
    return dict((await db.execute(stmt)).one()._mapping)


async def active_complaints(db: Executor, team_id: UUID) -> int:
    """How many complaints still in a queue (new, open, pending customer, on hold) the team holds, over
    every partner (its administration is staff-only)."""
    stmt = select(func.count()).where(complaints.c.team_id == team_id, complaints.c.status.in_(sorted(ACTIVE_STATUSES)))
    return int((await db.execute(stmt)).scalar_one())


async def members_of(db: Executor, team_ids: Sequence[UUID] | None = None) -> dict[UUID, list[str]]:
    """The user ids of each team's members, sorted (``team_ids`` None: of every team)."""
    stmt = select(team_members.c.team_id, team_members.c.user_id).order_by(
        team_members.c.team_id, team_members.c.user_id
    )
    if team_ids is not None:
        stmt = stmt.where(team_members.c.team_id.in_(list(team_ids)))
    out: dict[UUID, list[str]] = {}
    for r in (await db.execute(stmt)).all():
        out.setdefault(r.team_id, []).append(r.user_id)
    return out


async def add_member(db: Executor, team_id: UUID, user_id: str, *, added_by: str) -> bool:
    """Add a member; False when the user is in the team already."""
    stmt = (
        pg_insert(team_members)
        .values(team_id=team_id, user_id=user_id, added_by=added_by)
        .on_conflict_do_nothing()
        .returning(team_members.c.user_id)
    )
    return (await db.execute(stmt)).first() is not None


async def remove_member(db: Executor, team_id: UUID, user_id: str) -> bool:
    """Remove a member; False when the user was not in the team."""
    stmt = delete(team_members).where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
    return rowcount(await db.execute(stmt)) > 0


def teams_of(user_id: str) -> Select[Any]:
    """The ids of the teams ``user_id`` is a member of, for ``column.in_(...)`` (no statement of its own)."""
    return select(team_members.c.team_id).where(team_members.c.user_id == user_id)
