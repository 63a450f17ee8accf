"""Teams of staff and the team queues (issue 16: "assigned to a team") over real HTTP with real tokens:
admins create, rename and archive teams and change who is in them (audited, refused to support agents and
partners), an archived team takes no new complaint but keeps (and lists) what it holds, a
complaint is assigned to a team (audited as a reassignment), and the complaint queue filters by team and
by the caller's own teams, under the field catalogue (FORBIDDEN_ARGUMENT without Complaint.team in full)
and the partner scope (a team's queue shows a partner its own complaints only). Bad input (an unknown
team) is a clear error and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra.db import StatementCounter
from tests.api.helpers import (
    TRANSITION_COMPLAINT,
    create_customer,
    module_api,
    ok,
    open_complaint,
    raw_id,
    scalar,
    snapshot,
)
from tests.api.test_work_queues import ASSIGN, grant_role
from tests.conftest import Api

TEAM = "team { id name members createdAt }"
CREATE = f"mutation($name: String!) {{ createTeam(name: $name) {{ {TEAM} userErrors {{ field code message }} }} }}"
ADD = f"""mutation($team: ID!, $user: String!) {{ addTeamMember(team: $team, user: $user) {{
  {TEAM} userErrors {{ field code message }} }} }}"""
REMOVE = f"""mutation($team: ID!, $user: String!) {{ removeTeamMember(team: $team, user: $user) {{
  {TEAM} userErrors {{ field code message }} }} }}"""
RENAME = f"""mutation($team: ID!, $name: String!) {{ renameTeam(team: $team, name: $name) {{
  {TEAM} userErrors {{ field code message }} }} }}"""
ARCHIVE = """mutation($team: ID!) { archiveTeam(team: $team) {
  team { id name archivedAt } activeComplaints userErrors { field code message } } }"""
TEAMS = "{ teams { id name members } }"
ALL_TEAMS = "{ teams(includeArchived: true) { id name archivedAt } }"
QUEUE = """query($filter: ComplaintQueueFilter, $first: Int) {
  complaintQueue(filter: $filter, first: $first) { totalCount edges { node { id assignee team { id name } } } } }"""
ASSIGN_TEAM = """mutation($input: AssignComplaintInput!) { assignComplaint(input: $input) {
  complaint { id version assignee team { id name } events { kind actor note } } userErrors { field code message } } }"""


@dataclass
class Fx:
    api: Api
    admin: str
    agent: str  # support_agent bob
    agent2: str  # support_agent zoe
    partner: str  # Northwind
    partner_b: str  # Southwind
    customer: str
    paula: str  # Northwind's customer
    bruno: str  # Southwind's


@pytest.fixture(scope="module")
async def fx(template_db: str) -> AsyncIterator[Fx]:
    async with module_api(template_db) as api:
        admin = await api.user("alice", "admin")
        partner, _ = await api.partner_token("Northwind Shop")
        partner_b, _ = await api.partner_token("Southwind Traders")
        yield Fx(
            api=api,
            admin=admin,
            agent=await api.user("bob", "support_agent"),
            agent2=await api.user("zoe", "support_agent"),
            partner=partner,
            partner_b=partner_b,
            customer=(await create_customer(api, admin, name="Tess Teamwork"))["id"],
            paula=(await create_customer(api, partner, name="Paula Northwind", externalRef="nw-t1"))["id"],
            bruno=(await create_customer(api, partner_b, name="Bruno Southwind", externalRef="sw-t1"))["id"],
        )


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


def user_errors(body: dict[str, Any], op: str) -> list[tuple[str, str]]:
    assert "errors" not in body, body
    return [(e["field"], e["code"]) for e in body["data"][op]["userErrors"]]


def queue_ids(body: dict[str, Any]) -> list[str]:
    assert "errors" not in body, body
    return [e["node"]["id"] for e in body["data"]["complaintQueue"]["edges"]]


async def new_team(fx: Fx, name: str, *members: str) -> dict[str, Any]:
    team: dict[str, Any] = ok(await fx.api.gql(fx.admin, CREATE, {"name": name}), "createTeam")["team"]
    for user in members:
        team = ok(await fx.api.gql(fx.admin, ADD, {"team": team["id"], "user": user}), "addTeamMember")["team"]
    return team


async def to_team(fx: Fx, token: str, complaint: dict[str, Any], team: str | None, **extra: Any) -> dict[str, Any]:
    body = await fx.api.gql(
        token,
        ASSIGN_TEAM,
        {"input": {"id": complaint["id"], "expectedVersion": complaint["version"], "team": team, **extra}},
    )
    moved: dict[str, Any] = ok(body, "assignComplaint")["complaint"]
    return moved


async def audit_of(fx: Fx, action: str, target: str) -> list[dict[str, Any]]:
    async with fx.api.services.engine.connect() as conn:
        from sqlalchemy import text

        rows = await conn.execute(
            text(
                "SELECT actor, before, after, fields FROM audit_log WHERE action = :a AND :t = ANY(target_ids) ORDER BY id"
            ),
            {"a": action, "t": target},
        )
        return [dict(r._mapping) for r in rows]


# ---------------------------------------------------------------- administration


async def test_an_admin_creates_teams_and_changes_their_members_audited(fx: Fx) -> None:
    team = await new_team(fx, "Billing desk")
    assert (team["name"], team["members"]) == ("Billing desk", [])
    added = ok(await fx.api.gql(fx.admin, ADD, {"team": team["id"], "user": "zoe"}), "addTeamMember")["team"]
    added = ok(await fx.api.gql(fx.admin, ADD, {"team": team["id"], "user": " bob "}), "addTeamMember")["team"]
    assert added["members"] == ["bob", "zoe"]
    listed = {t["name"]: t for t in (await fx.api.gql(fx.admin, TEAMS))["data"]["teams"]}
    assert listed["Billing desk"] == {"id": team["id"], "name": "Billing desk", "members": ["bob", "zoe"]}
    # support agents read the teams (to pick one for a queue or a reassignment)
    seen = (await fx.api.gql(fx.agent, TEAMS))["data"]["teams"]
    assert {"id": team["id"], "name": "Billing desk", "members": ["bob", "zoe"]} in seen

    removed = ok(await fx.api.gql(fx.admin, REMOVE, {"team": team["id"], "user": "zoe"}), "removeTeamMember")["team"]
    assert removed["members"] == ["bob"]
    tid = str(raw_id(team["id"]))
    assert [(a["actor"], a["after"]) for a in await audit_of(fx, "team.create", tid)] == [
        ("user:alice", {"name": "Billing desk"})
    ]
    assert [a["after"]["user"] for a in await audit_of(fx, "team.member.add", tid)] == ["zoe", "bob"]
    assert [a["before"] for a in await audit_of(fx, "team.member.remove", tid)] == [
        {"team": "Billing desk", "user": "zoe"}
    ]


async def test_team_administration_is_refused_to_support_agents_and_partners(fx: Fx) -> None:
    team = await new_team(fx, "Escalations")
    before = await snapshot(fx.api)
    for token in (fx.agent, fx.partner):
        assert codes(await fx.api.gql(token, CREATE, {"name": "Rogue team"})) == ["FORBIDDEN"]
        assert codes(await fx.api.gql(token, ADD, {"team": team["id"], "user": "mallory"})) == ["FORBIDDEN"]
        assert codes(await fx.api.gql(token, REMOVE, {"team": team["id"], "user": "bob"})) == ["FORBIDDEN"]
    # the list of teams (staff organisation, not a partner's) is refused to a partner token
    assert codes(await fx.api.gql(fx.partner, TEAMS)) == ["FORBIDDEN"]
    assert await snapshot(fx.api) == before


async def test_bad_team_input_is_a_clear_error_and_writes_nothing(fx: Fx) -> None:
    team = await new_team(fx, "Returns", "bob")
    complaint = await open_complaint(fx.api, fx.admin, fx.customer)
    unknown = "VGVhbTowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA"  # Team:00000000-0000-4000-8000-000000000000
    before = await snapshot(fx.api)
    audit = await scalar(fx.api, "SELECT count(*) FROM audit_log")
    assert user_errors(await fx.api.gql(fx.admin, CREATE, {"name": "Returns"}), "createTeam") == [("name", "INVALID")]
    assert user_errors(await fx.api.gql(fx.admin, CREATE, {"name": "  "}), "createTeam") == [("name", "INVALID")]
    assert user_errors(await fx.api.gql(fx.admin, ADD, {"team": unknown, "user": "bob"}), "addTeamMember") == [
        ("team", "NOT_FOUND")
    ]
    assert user_errors(await fx.api.gql(fx.admin, ADD, {"team": "not-an-id", "user": "bob"}), "addTeamMember") == [
        ("team", "NOT_FOUND")
    ]
    assert user_errors(await fx.api.gql(fx.admin, ADD, {"team": team["id"], "user": "bob"}), "addTeamMember") == [
        ("user", "INVALID")  # in the team already
    ]
    assert user_errors(await fx.api.gql(fx.admin, ADD, {"team": team["id"], "user": "user:bob"}), "addTeamMember") == [
        ("user", "INVALID")  # a user id, not a Casbin subject
    ]
    assert user_errors(await fx.api.gql(fx.admin, REMOVE, {"team": team["id"], "user": "zoe"}), "removeTeamMember") == [
        ("user", "NOT_FOUND")
    ]
    body = await fx.api.gql(
        fx.agent,
        ASSIGN_TEAM,
        {"input": {"id": complaint["id"], "expectedVersion": complaint["version"], "team": unknown}},
    )
    assert user_errors(body, "assignComplaint") == [("team", "NOT_FOUND")]
    assert body["data"]["assignComplaint"]["userErrors"][0]["message"] == "no such team"
    # a queue filter on an unknown team says so (rather than showing an empty queue)
    refused = await fx.api.gql(fx.agent, QUEUE, {"filter": {"team": unknown}})
    assert codes(refused) == ["NOT_FOUND"]
    assert refused["errors"][0]["message"] == "no such team"
    assert await snapshot(fx.api) == before
    assert await scalar(fx.api, "SELECT count(*) FROM audit_log") == audit


# ---------------------------------------------------------------- assignment and queues


async def test_a_complaint_goes_to_a_team_audited_and_its_team_stays_on_a_reassignment(fx: Fx) -> None:
    team = await new_team(fx, "Damage claims", "bob")
    complaint = await open_complaint(fx.api, fx.admin, fx.customer)
    moved = await to_team(fx, fx.agent, complaint, team["id"], note="parcel crushed")
    assert (moved["team"], moved["assignee"]) == ({"id": team["id"], "name": "Damage claims"}, None)
    assert moved["version"] == complaint["version"] + 1
    assert moved["events"][-1] == {
        "kind": "ASSIGNMENT",
        "actor": "user:bob",
        "note": "team: (none) -> Damage claims\nparcel crushed",
    }
    [audit] = await audit_of(fx, "complaint.assign", str(raw_id(complaint["id"])))
    assert audit["before"] == {"assignee": None, "team": None}
    assert audit["after"] == {"assignee": None, "team": str(raw_id(team["id"]))}
    assert audit["fields"] == ["Complaint.assignee", "Complaint.team"]
    # to someone, without naming a team: the team stays; with team null: out of every team
    mine = ok(
        await fx.api.gql(
            fx.agent, ASSIGN, {"input": {"id": complaint["id"], "expectedVersion": moved["version"], "toMe": True}}
        ),
        "assignComplaint",
    )["complaint"]
    read = await fx.api.gql(
        fx.agent, "query($id: ID!) { complaint(id: $id) { assignee team { name } } }", {"id": complaint["id"]}
    )
    assert read["data"]["complaint"] == {"assignee": "bob", "team": {"name": "Damage claims"}}
    out = await to_team(fx, fx.agent, mine, None, assignee="bob")
    assert (out["team"], out["assignee"]) == (None, "bob")
    assert out["events"][-1]["note"] == "team: Damage claims -> (none)"
    # the same team and assignee again: nothing changes
    same = await to_team(fx, fx.agent, out, None, assignee="bob")
    assert same["version"] == out["version"]


async def test_the_queue_of_a_team_and_of_my_teams(fx: Fx) -> None:
    billing = await new_team(fx, "Queue billing", "bob")
    shipping = await new_team(fx, "Queue shipping", "zoe")
    a = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), billing["id"])
    b = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), shipping["id"])
    c = await open_complaint(fx.api, fx.admin, fx.customer)  # no team

    by_team = await fx.api.gql(fx.agent, QUEUE, {"filter": {"team": billing["id"]}, "first": 50})
    assert queue_ids(by_team) == [a["id"]]
    assert by_team["data"]["complaintQueue"]["totalCount"] == 1
    assert by_team["data"]["complaintQueue"]["edges"][0]["node"]["team"]["name"] == "Queue billing"
    assert queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"myTeams": True}, "first": 50})) == [a["id"]]
    assert queue_ids(await fx.api.gql(fx.agent2, QUEUE, {"filter": {"myTeams": True}, "first": 50})) == [b["id"]]
    not_mine = queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"myTeams": False}, "first": 100}))
    assert {b["id"], c["id"]} <= set(not_mine)
    assert a["id"] not in not_mine
    # zoe joins billing: its queue is hers too, at once
    ok(await fx.api.gql(fx.admin, ADD, {"team": billing["id"], "user": "zoe"}), "addTeamMember")
    assert set(queue_ids(await fx.api.gql(fx.agent2, QUEUE, {"filter": {"myTeams": True}, "first": 50}))) == {
        a["id"],
        b["id"],
    }
    # combined with the other filters: billing's unassigned complaints, and billing's assigned to me
    assert queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"team": billing["id"], "unassigned": True}})) == [
        a["id"]
    ]
    assert queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"myTeams": True, "assignedToMe": True}})) == []


async def test_team_filters_need_the_team_in_full(fx: Fx) -> None:
    team = await new_team(fx, "Filter guard", "frank")
    await grant_role(
        fx.api,
        fx.admin,
        "team_blind_queue",
        ("Query.complaintQueue", "READ"),
        ("Complaint.status", "READ"),
        ("Complaint.firstResponseDueAt", "READ"),
        ("Complaint.resolutionDueAt", "READ"),
        ("Complaint.assignee", "READ"),
    )
    viewer = await fx.api.user("frank", "team_blind_queue")
    assert "errors" not in await fx.api.gql(viewer, "{ complaintQueue { totalCount } }")
    for f in ({"team": team["id"]}, {"myTeams": True}, {"myTeams": False}):
        body = await fx.api.gql(viewer, QUEUE, {"filter": f})
        assert codes(body) == ["FORBIDDEN_ARGUMENT"], (f, body)
        assert body["data"]["complaintQueue"] is None
    # and the field itself: refused where it is read
    body = await fx.api.gql(viewer, "{ complaintQueue { edges { node { team { name } } } } }")
    assert set(codes(body)) <= {"FORBIDDEN_FIELD"}


async def test_a_partner_sees_only_its_own_complaints_in_a_team_queue(fx: Fx) -> None:
    team = await new_team(fx, "Partner shared", "bob")
    own = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.partner, fx.paula), team["id"])
    other = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.partner_b, fx.bruno), team["id"])
    staff = queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"team": team["id"]}, "first": 50}))
    assert set(staff) == {own["id"], other["id"]}
    body = await fx.api.gql(fx.partner, QUEUE, {"filter": {"team": team["id"]}, "first": 50})
    assert queue_ids(body) == [own["id"]]
    assert body["data"]["complaintQueue"]["totalCount"] == 1
    assert body["data"]["complaintQueue"]["edges"][0]["node"]["team"] == {"id": team["id"], "name": "Partner shared"}
    assert queue_ids(await fx.api.gql(fx.partner_b, QUEUE, {"filter": {"team": team["id"]}, "first": 50})) == [
        other["id"]
    ]
    # a partner reads a team's name on its complaints, not who works in it
    members = await fx.api.gql(
        fx.partner, "query($id: ID!) { complaint(id: $id) { team { name members } } }", {"id": own["id"]}
    )
    assert members["data"]["complaint"]["team"] == {"name": "Partner shared", "members": None}
    assert codes(members) == ["FORBIDDEN_FIELD"]


async def test_a_team_queue_page_costs_the_same_statements_whatever_its_size(fx: Fx) -> None:
    team = await new_team(fx, "Statement count", "alice")
    for _ in range(5):
        await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), team["id"])
    document = """query($n: Int, $team: ID) { complaintQueue(first: $n, filter: {team: $team}) { edges { node { id
      team { id name members } customer { name } } } } }"""
    mine = """query($n: Int) { complaintQueue(first: $n, filter: {myTeams: true}) { edges { node { id
      team { name } } } } }"""
    for doc, variables in ((document, {"team": team["id"]}), (mine, {})):
        assert "errors" not in await fx.api.gql(fx.admin, doc, {"n": 1, **variables})
        counts = []
        for n in (1, 5):
            with StatementCounter(fx.api.services.engine) as counter:
                body = await fx.api.gql(fx.admin, doc, {"n": n, **variables})
            assert "errors" not in body, body
            assert len(body["data"]["complaintQueue"]["edges"]) == n
            counts.append(len([s for s in counter.statements if "rate_limit_buckets" not in s]))
        assert counts[0] == counts[1], (counts, [s[:150] for s in counter.statements])


# ---------------------------------------------------------------- renaming and archiving


async def test_an_admin_renames_a_team_audited_and_its_complaints_show_the_new_name(fx: Fx) -> None:
    team = await new_team(fx, "Refunds", "bob")
    complaint = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), team["id"])
    renamed = ok(await fx.api.gql(fx.admin, RENAME, {"team": team["id"], "name": "  Refunds & credits "}), "renameTeam")
    assert renamed["team"] == {**team, "name": "Refunds & credits"}  # same id, members, creation time
    read = await fx.api.gql(
        fx.agent, "query($id: ID!) { complaint(id: $id) { team { name } } }", {"id": complaint["id"]}
    )
    assert read["data"]["complaint"]["team"] == {"name": "Refunds & credits"}
    # the hand-over's history says what was said at the time
    assert complaint["events"][-1]["note"] == "team: (none) -> Refunds"
    tid = str(raw_id(team["id"]))
    [audit] = await audit_of(fx, "team.rename", tid)
    assert (audit["actor"], audit["before"], audit["after"]) == (
        "user:alice",
        {"name": "Refunds"},
        {"name": "Refunds & credits"},
    )
    # its own name again: nothing changes, nothing audited
    same = ok(await fx.api.gql(fx.admin, RENAME, {"team": team["id"], "name": "Refunds & credits"}), "renameTeam")
    assert same["team"]["name"] == "Refunds & credits"
    assert len(await audit_of(fx, "team.rename", tid)) == 1


async def test_a_rename_to_a_name_in_use_or_blank_is_refused_and_writes_nothing(fx: Fx) -> None:
    team = await new_team(fx, "Rename me")
    await new_team(fx, "Taken name")
    retired = await new_team(fx, "Retired name")
    ok(await fx.api.gql(fx.admin, ARCHIVE, {"team": retired["id"]}), "archiveTeam")
    unknown = "VGVhbTowMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDA"
    before = await snapshot(fx.api)
    audit = await scalar(fx.api, "SELECT count(*) FROM audit_log")
    for name, message in (
        ("Taken name", "team Taken name exists already"),
        (" Taken name ", "team Taken name exists already"),
        ("Retired name", "team Retired name exists already"),  # an archived team keeps its name
        ("   ", "a team name has 1 to 200 characters"),
        ("x" * 201, "name has at most 200 characters (got 201)"),  # the input limits (api/graphql/core/input_limits.py)
    ):
        body = await fx.api.gql(fx.admin, RENAME, {"team": team["id"], "name": name})
        assert body["data"]["renameTeam"] == {
            "team": None,
            "userErrors": [{"field": "name", "code": "INVALID", "message": message}],
        }, name
    for bad in (unknown, "not-an-id"):
        body = await fx.api.gql(fx.admin, RENAME, {"team": bad, "name": "Fresh"})
        assert user_errors(body, "renameTeam") == [("team", "NOT_FOUND")]
    assert await snapshot(fx.api) == before
    assert await scalar(fx.api, "SELECT count(*) FROM audit_log") == audit


async def test_an_archived_team_takes_no_new_complaints_and_keeps_those_it_holds(fx: Fx) -> None:
    team = await new_team(fx, "Old delivery desk", "bob")
    other = await new_team(fx, "New delivery desk", "bob")
    held = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), team["id"])
    taken = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), team["id"])
    done = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.admin, fx.customer), team["id"])
    await resolve(fx, done)
    fresh = await open_complaint(fx.api, fx.admin, fx.customer)

    archived = ok(await fx.api.gql(fx.admin, ARCHIVE, {"team": team["id"]}), "archiveTeam")
    assert archived["team"]["name"] == "Old delivery desk"
    assert archived["team"]["archivedAt"] is not None
    assert archived["activeComplaints"] == 2  # held and taken; the resolved one is in no queue
    tid = str(raw_id(team["id"]))
    [audit] = await audit_of(fx, "team.archive", tid)
    assert audit["actor"] == "user:alice"
    assert audit["before"] == {"name": "Old delivery desk", "archived_at": None}
    assert audit["after"]["active_complaints"] == 2

    # not offered any more: left out of the list, unless asked for
    assert team["id"] not in [t["id"] for t in (await fx.api.gql(fx.agent, TEAMS))["data"]["teams"]]
    listed = {t["id"]: t for t in (await fx.api.gql(fx.agent, ALL_TEAMS))["data"]["teams"]}
    assert listed[team["id"]]["archivedAt"] == archived["team"]["archivedAt"]
    assert listed[other["id"]]["archivedAt"] is None

    # a complaint handed to it is refused, and nothing is written
    before = await snapshot(fx.api)
    body = await fx.api.gql(
        fx.agent, ASSIGN_TEAM, {"input": {"id": fresh["id"], "expectedVersion": fresh["version"], "team": team["id"]}}
    )
    assert body["data"]["assignComplaint"] == {
        "complaint": None,
        "userErrors": [
            {
                "field": "team",
                "code": "CONFLICT",
                "message": "team Old delivery desk is archived: it takes no new complaints",
            }
        ],
    }
    assert await snapshot(fx.api) == before

    # what it holds stays: its queue and its members' "my teams" queue list them
    queue = await fx.api.gql(fx.agent, QUEUE, {"filter": {"team": team["id"]}, "first": 50})
    assert sorted(queue_ids(queue)) == sorted([held["id"], taken["id"]])
    assert {held["id"], taken["id"]} <= set(
        queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"myTeams": True}, "first": 100}))
    )
    # taking one (no team named) keeps it in the team; handing it to another team moves it out for good
    mine = await to_team_keeping(fx, taken, toMe=True)
    assert (mine["assignee"], mine["team"]["name"]) == ("bob", "Old delivery desk")
    moved = await to_team(fx, fx.agent, held, other["id"])
    assert moved["team"]["name"] == "New delivery desk"
    body = await fx.api.gql(
        fx.agent, ASSIGN_TEAM, {"input": {"id": moved["id"], "expectedVersion": moved["version"], "team": team["id"]}}
    )
    assert user_errors(body, "assignComplaint") == [("team", "CONFLICT")]
    assert queue_ids(await fx.api.gql(fx.agent, QUEUE, {"filter": {"team": team["id"]}, "first": 50})) == [taken["id"]]

    # archived already: said so; an archived team can still be renamed and its members changed
    twice = await fx.api.gql(fx.admin, ARCHIVE, {"team": team["id"]})
    assert twice["data"]["archiveTeam"]["userErrors"] == [
        {"field": "team", "code": "INVALID", "message": "team Old delivery desk is archived already"}
    ]
    ok(await fx.api.gql(fx.admin, RENAME, {"team": team["id"], "name": "Delivery desk (retired)"}), "renameTeam")
    ok(await fx.api.gql(fx.admin, REMOVE, {"team": team["id"], "user": "bob"}), "removeTeamMember")
    assert len(await audit_of(fx, "team.archive", tid)) == 1


async def test_renaming_and_archiving_are_refused_to_support_agents_and_partners(fx: Fx) -> None:
    team = await new_team(fx, "Guarded desk")
    before = await snapshot(fx.api)
    audit = await scalar(fx.api, "SELECT count(*) FROM audit_log")
    for token in (fx.agent, fx.partner):
        assert codes(await fx.api.gql(token, RENAME, {"team": team["id"], "name": "Hijacked"})) == ["FORBIDDEN"]
        assert codes(await fx.api.gql(token, ARCHIVE, {"team": team["id"]})) == ["FORBIDDEN"]
    assert codes(await fx.api.gql(fx.partner, ALL_TEAMS)) == ["FORBIDDEN"]
    assert await snapshot(fx.api) == before
    assert await scalar(fx.api, "SELECT count(*) FROM audit_log") == audit
    # a partner reads the team's name on its own complaints, not whether it is archived
    own = await to_team(fx, fx.agent, await open_complaint(fx.api, fx.partner, fx.paula), team["id"])
    ok(await fx.api.gql(fx.admin, ARCHIVE, {"team": team["id"]}), "archiveTeam")
    body = await fx.api.gql(
        fx.partner, "query($id: ID!) { complaint(id: $id) { team { name archivedAt } } }", {"id": own["id"]}
    )
    assert body["data"]["complaint"]["team"] == {"name": "Guarded desk", "archivedAt": None}
    assert codes(body) == ["FORBIDDEN_FIELD"]


async def resolve(fx: Fx, complaint: dict[str, Any]) -> None:
    """Take a complaint out of every queue: acknowledged, then resolved (the admin, through the API)."""
    version = complaint["version"]
    for to, extra in (
        ("OPEN", {}),
        ("RESOLVED", {"assignee": "bob", "resolutionCode": "refund", "rootCauseCode": "partner"}),
    ):
        body = await fx.api.gql(
            fx.admin,
            TRANSITION_COMPLAINT,
            {"input": {"id": complaint["id"], "expectedVersion": version, "to": to, **extra}},
        )
        version = ok(body, "transitionComplaint")["complaint"]["version"]


async def to_team_keeping(fx: Fx, complaint: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A reassignment that names no team (the complaint keeps its own)."""
    body = await fx.api.gql(
        fx.agent, ASSIGN_TEAM, {"input": {"id": complaint["id"], "expectedVersion": complaint["version"], **extra}}
    )
    moved: dict[str, Any] = ok(body, "assignComplaint")["complaint"]
    return moved
