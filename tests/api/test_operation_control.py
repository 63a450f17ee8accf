"""Mutation operation control (issue 3): a mutation the caller's role may not use is FORBIDDEN and writes
nothing; an input field the caller may not write is a FORBIDDEN user error and the whole input changes
nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from infra import crypto
from tests.api.security_helpers import (
    ADA,
    CREATE,
    RECORD,
    World,
    assert_forbidden_operation,
    complaint_input,
    ok,
    raw_id,
    sql,
    world_for,
)


@pytest.fixture(scope="module")
async def world(template_db: str) -> AsyncIterator[World]:
    async with world_for(template_db) as w:
        yield w


COUNTS = """SELECT (SELECT count(*) FROM customers) AS customers, (SELECT count(*) FROM surveys) AS surveys,
    (SELECT count(*) FROM complaints) AS complaints, (SELECT count(*) FROM purchases) AS purchases,
    (SELECT count(*) FROM survey_responses) AS responses,
    (SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL) AS deleted,
    (SELECT max(version) FROM customers) AS max_version, (SELECT max(version) FROM complaints) AS complaint_version"""


async def counts(world: World) -> dict[str, Any]:
    return dict((await sql(world.url, COUNTS))[0])


SURVEY = """mutation { createSurvey(input: {title: "Probe", channels: [WEB], trigger: MANUAL, status: ACTIVE,
    perComplaint: false, questions: [{kind: NPS, dimension: "nps", prompt: "?"}]}) { survey { id } userErrors { code } } }"""


def _cases(world: World) -> dict[str, tuple[str, dict[str, Any] | None]]:
    return {
        "createCustomer": (CREATE, {"input": {"name": "Probe Person", "email": "probe@example.org"}}),
        "createSurvey": (SURVEY, None),
        "updateCustomer": (
            """mutation($id: ID!) { updateCustomer(input: {id: $id, expectedVersion: 1, name: "X"}) {
            customer { id } userErrors { code } } }""",
            {"id": world.ada},
        ),
        "deleteCustomer": (
            """mutation($id: ID!) { deleteCustomer(input: {id: $id, expectedVersion: 1}) {
            deletedId userErrors { code } } }""",
            {"id": world.ada},
        ),
        "recordPurchases": (RECORD, {"input": {"purchases": [{"customerId": world.ada, "amount": "1.00"}]}}),
        "openComplaint": (
            """mutation($input: OpenComplaintInput!) { openComplaint(input: $input) {
            complaint { id } userErrors { code } } }""",
            {"input": complaint_input(world.ada, "Probe")},
        ),
        "transitionComplaint": (
            """mutation($id: ID!) { transitionComplaint(input: {id: $id, expectedVersion: 1,
            to: OPEN}) { complaint { id } userErrors { code } } }""",
            {"id": world.ada_complaint},
        ),
    }


@pytest.mark.parametrize(
    ("who", "mutation"),
    [
        ("analyst", "createCustomer"),
        ("analyst", "updateCustomer"),
        ("analyst", "recordPurchases"),
        ("analyst", "openComplaint"),
        ("marketing", "createCustomer"),
        ("marketing", "updateCustomer"),
        ("marketing", "createSurvey"),
        ("support_agent", "createCustomer"),
        ("support_agent", "deleteCustomer"),
        ("support_agent", "recordPurchases"),
        ("support_agent", "createSurvey"),
        ("partner", "createSurvey"),
        ("partner", "updateCustomer"),
        ("partner", "deleteCustomer"),
        ("partner", "transitionComplaint"),
    ],
)
async def test_mutation_without_a_write_grant_is_forbidden_and_writes_nothing(
    world: World, who: str, mutation: str
) -> None:
    query, variables = _cases(world)[mutation]
    before = await counts(world)
    body = await world.gql(who, query, variables)
    assert_forbidden_operation(body, mutation)
    assert await counts(world) == before


async def test_admin_may_use_those_mutations(world: World) -> None:
    created = ok(await world.gql("admin", CREATE, {"input": {"name": "Allowed Person"}}), "createCustomer")
    assert created["customer"]["id"]
    assert ok(await world.gql("admin", SURVEY), "createSurvey")["survey"]["id"]


NATIONAL_ID_UPDATE = """mutation($input: UpdateCustomerInput!) { updateCustomer(input: $input) {
    customer { id name } userErrors { field code message } } }"""


async def _stored(world: World) -> dict[str, Any]:
    rows = await sql(
        world.url, "SELECT name, national_id, phone, version FROM customers WHERE id = $1", raw_id(world.ada)
    )
    stored = dict(rows[0])
    for column in ("national_id", "phone"):  # encrypted at rest (infra/crypto.py)
        if stored[column] is not None:
            stored[column] = crypto.current().decrypt(stored[column], f"customers.{column}", raw_id(world.ada))
    return stored


@pytest.mark.parametrize(
    "changes",
    [
        {"nationalId": "XX-FORGED-0001"},
        {"name": "Renamed By Agent", "nationalId": "XX-FORGED-0002"},  # one forbidden field stops the whole input
        {"birthDate": "2000-01-01"},
        {"nationalId": None},  # clearing is writing too
    ],
)
async def test_support_agent_cannot_write_a_field_without_a_write_grant(world: World, changes: dict[str, Any]) -> None:
    before = await _stored(world)
    body = await world.gql(
        "support_agent",
        NATIONAL_ID_UPDATE,
        {"input": {"id": world.ada, "expectedVersion": before["version"], **changes}},
    )
    assert not body.get("errors"), body
    payload = body["data"]["updateCustomer"]
    assert payload["customer"] is None
    forbidden = [e for e in payload["userErrors"] if e["code"] == "FORBIDDEN"]
    assert forbidden, payload
    assert {e["field"] for e in forbidden} <= {"nationalId", "birthDate"}, payload
    assert await _stored(world) == before
    assert before["national_id"] == ADA.input["nationalId"]


async def test_partner_cannot_set_a_field_outside_its_write_grants(world: World) -> None:
    before = await counts(world)
    body = await world.gql("partner", CREATE, {"input": {"name": "Stage Setter", "lifecycleStage": "ACTIVE"}})
    payload = body["data"]["createCustomer"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [("lifecycleStage", "FORBIDDEN")]
    assert await counts(world) == before
