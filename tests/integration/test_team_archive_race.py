"""A team archived while a complaint is handed to it: the two wait for each other on the team's row
(infra/repos/teams.py ``held``, ``locked``), so no complaint moves into a team archived meanwhile, and the
archive counts a hand-over that committed before it. Use-cases called directly, on two connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from api.usecases import access, queues
from api.usecases.caller import Caller
from domain.errors import Conflict
from infra.db import RequestDb
from infra.repos import complaint_work
from tests.api.helpers import create_customer, ok, open_complaint, raw_id, scalar
from tests.conftest import Api

STAFF = Caller(actor="user:race-test")
CREATE = "mutation($name: String!) { createTeam(name: $name) { team { id } userErrors { field code message } } }"


@pytest.fixture
async def db(api: Api) -> AsyncIterator[RequestDb]:
    request_db = RequestDb(api.services.engine.connect)
    yield request_db
    await request_db.close()


async def _team_and_complaint(api: Api, name: str) -> tuple[UUID, dict[str, Any]]:
    admin = await api.user("alice", "admin")
    customer = (await create_customer(api, admin, name="Race Teamwork"))["id"]
    team = ok(await api.gql(admin, CREATE, {"name": name}), "createTeam")["team"]["id"]
    return raw_id(team), await open_complaint(api, admin, customer)


async def test_a_hand_over_waiting_on_an_archive_is_refused_when_it_commits(api: Api, db: RequestDb) -> None:
    team, complaint = await _team_and_complaint(api, "Racing desk")
    cmd = queues.AssignComplaint(raw_id(complaint["id"]), complaint["version"], None, team=team)
    async with api.services.engine.connect() as archiving:
        archived = await access.archive_team(archiving, STAFF, team)  # not committed yet
        assert archived.active_complaints == 0
        handing = asyncio.create_task(queues.assign_complaint(db, STAFF, cmd))
        await asyncio.sleep(0.5)
        assert not handing.done()  # waits on the team's row
        await archiving.commit()
    with pytest.raises(Conflict) as refused:
        await handing
    assert (refused.value.field, refused.value.message) == (
        "team",
        "team Racing desk is archived: it takes no new complaints",
    )
    assert await scalar(api, "SELECT team_id FROM complaints WHERE id = :id", id=cmd.complaint_id) is None


async def test_an_archive_waiting_on_a_hand_over_counts_it(api: Api, db: RequestDb) -> None:
    team, complaint = await _team_and_complaint(api, "Counting desk")
    async with api.services.engine.connect() as handing:
        await complaint_work.assign(  # the hand-over, not committed yet
            handing,
            raw_id(complaint["id"]),
            complaint["version"],
            None,
            team=team,
            actor=STAFF.actor,
            scope=STAFF.scope,
            request_id=None,
        )

        async def archive() -> access.ArchivedTeam:
            async with db.unit_of_work() as uow:
                done = await access.archive_team(uow.conn, STAFF, team)
                uow.commit()
            return done

        archiving = asyncio.create_task(archive())
        await asyncio.sleep(0.5)
        assert not archiving.done()  # waits for the hand-over
        await handing.commit()
    archived = await archiving
    assert archived.active_complaints == 1  # it holds the complaint handed over just before
    assert archived.team.archived_at is not None
