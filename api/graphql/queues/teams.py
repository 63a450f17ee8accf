"""Teams of staff over GraphQL: the list (``teams``) and its administration (createTeam, renameTeam,
archiveTeam, addTeamMember, removeTeamMember; admins by grant, refused to partner principals,
authz/confinement.py). The use-cases are
access administration's (api/usecases/access.py); the resolvers live here, beside the complaint queues
that use teams, because ``Team`` is a complaint's type (api/graphql/complaints/types.py) and the access
slice stays independent of the complaints slice (pyproject.toml, import-linter)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.complaints.types import ArchiveTeamPayload, TeamPayload, TeamType
from api.graphql.core.context import Context, context_of
from api.graphql.core.ids import from_global_id
from api.graphql.core.resolving import mutate
from api.usecases import access
from infra.repos.base import Executor

T = TypeVar("T")
P = TypeVar("P")


def team_id(value: strawberry.ID) -> UUID:
    """A team's global id; a malformed one, or one of another type, is NOT_FOUND like an unknown team."""
    return from_global_id(str(value), "Team", field="team")[1]


def _out(team: access.Team) -> TeamType:
    row = {"id": team.id, "name": team.name, "created_at": team.created_at, "archived_at": team.archived_at}
    return TeamType.from_row(row, team.members)


async def _run(
    info: Info[Context, None], fn: Callable[[Executor], Awaitable[T]], answer: Callable[[T], P], payload: type[P]
) -> P:
    """One change in a unit of work; a domain error (nothing written) becomes the payload's userErrors."""
    ctx = context_of(info)

    async def run() -> P:
        async with ctx.db.unit_of_work() as uow:
            result = await fn(uow.conn)
            uow.commit()
        return answer(result)

    return await mutate(payload, run)


async def _change(info: Info[Context, None], fn: Callable[[Executor], Awaitable[access.Team]]) -> TeamPayload:
    return await _run(info, fn, lambda team: TeamPayload(team=_out(team)), TeamPayload)


@strawberry.type
class TeamQuery:
    @strawberry.field(description="Every team of staff that takes complaints, by name, with its members")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def teams(
        self,
        info: Info[Context, None],
        include_archived: Annotated[bool, strawberry.argument(description="the retired (archived) teams too")] = False,
    ) -> list[TeamType] | None:
        teams = await access.list_teams(context_of(info).db, include_archived=include_archived)
        return [_out(t) for t in teams]


@strawberry.type
class TeamMutation:
    @strawberry.mutation(description="A new, empty team of staff (audited); its name is unique")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def create_team(self, info: Info[Context, None], name: str) -> TeamPayload | None:
        caller = context_of(info).caller
        return await _change(info, lambda db: access.create_team(db, caller, name))

    @strawberry.mutation(description="A new name for a team (audited); unique like createTeam's")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def rename_team(self, info: Info[Context, None], team: strawberry.ID, name: str) -> TeamPayload | None:
        caller = context_of(info).caller
        return await _change(info, lambda db: access.rename_team(db, caller, team_id(team), name))

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Retire a team (audited): no new complaints go to it; those it holds keep it until reassigned"
    )
    async def archive_team(self, info: Info[Context, None], team: strawberry.ID) -> ArchiveTeamPayload | None:
        caller = context_of(info).caller
        return await _run(
            info,
            lambda db: access.archive_team(db, caller, team_id(team)),
            lambda done: ArchiveTeamPayload(team=_out(done.team), active_complaints=done.active_complaints),
            ArchiveTeamPayload,
        )

    @strawberry.mutation(description="Put a staff user (its user id, a token's sub) in a team (audited)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def add_team_member(self, info: Info[Context, None], team: strawberry.ID, user: str) -> TeamPayload | None:
        caller = context_of(info).caller
        return await _change(info, lambda db: access.add_team_member(db, caller, team_id(team), user))

    @strawberry.mutation(description="Take a user out of a team (audited); the team's complaints stay the team's")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def remove_team_member(self, info: Info[Context, None], team: strawberry.ID, user: str) -> TeamPayload | None:
        caller = context_of(info).caller
        return await _change(info, lambda db: access.remove_team_member(db, caller, team_id(team), user))
