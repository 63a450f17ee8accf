"""Partner row scope (issue 3): a partner token reaches only its own customers, through every path, and
another partner's (or an unowned) object answers exactly like an object that does not exist — same
status, same message, same code, same shape — so ids cannot be probed. Writes on another partner's
customer are refused the same way and write nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.security_helpers import (
    ADA,
    ADA_COMPLAINT,
    BRUNO,
    BRUNO_COMPLAINT,
    OPEN,
    PAULA,
    READ_PATHS,
    RECORD,
    SUBMIT,
    UNKNOWN_UUID,
    World,
    assert_no_plaintext,
    complaint_input,
    gid,
    ok,
    raw_id,
    sql,
    world_on_read_path,
)


@pytest.fixture(scope="module", params=READ_PATHS)
async def world(template_db: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Every test on both read paths: the compiled one and strawberry's."""
    async with world_on_read_path(template_db, request.param) as w:
        yield w


OTHERS_SECRETS = (ADA.name, ADA.email, BRUNO.name, BRUNO.email, BRUNO.phone_e164, ADA_COMPLAINT, BRUNO_COMPLAINT)


def normalized(body: dict[str, Any], *ids: str) -> str:
    """The whole response as JSON, with the given ids replaced by a placeholder."""
    text = json.dumps(body, sort_keys=True)
    for value in ids:
        text = text.replace(value, "<ID>")
    return text


def assert_same_as_unknown(other: dict[str, Any], unknown: dict[str, Any], *ids: str) -> None:
    assert normalized(other, *ids) == normalized(unknown, *ids)


async def test_lists_hold_only_the_partners_own_rows(world: World) -> None:
    body = await world.gql(
        "partner",
        """query($bruno: ID!) {
        customers(first: 100) { totalCount edges { node { id name } } }
        complaints(first: 100) { totalCount edges { node { id description customer { id name } } } }
        byOthers: complaints(first: 100, filter: {customerId: $bruno}) { totalCount edges { node { id } } }
    }""",
        {"bruno": world.bruno},
    )
    assert not body.get("errors"), body
    data = body["data"]
    assert data["customers"]["totalCount"] == 1
    assert [e["node"] for e in data["customers"]["edges"]] == [{"id": world.paula, "name": PAULA.name}]
    assert data["complaints"]["totalCount"] == 1
    (edge,) = data["complaints"]["edges"]
    assert edge["node"]["id"] == world.paula_complaint
    assert edge["node"]["customer"]["id"] == world.paula
    assert data["byOthers"] == {"totalCount": 0, "edges": []}
    assert_no_plaintext(body, *OTHERS_SECRETS)
    # the other partner sees its own and nothing of partner A's
    other = await world.gql("partner_b", "{ customers(first: 100) { totalCount edges { node { id name } } } }")
    assert [e["node"]["id"] for e in other["data"]["customers"]["edges"]] == [world.bruno]
    assert_no_plaintext(other, PAULA.name, ADA.name)


QUERIES = {
    "customer(id)": "query($id: ID!) { customer(id: $id) { id name tier { code } } }",
    "node(id)": "query($id: ID!) { node(id: $id) { id ... on Customer { name } ... on Complaint { description } } }",
    "complaint(id)": "query($id: ID!) { complaint(id: $id) { id description customer { name } } }",
    "customer(id).complaints": "query($id: ID!) { customer(id: $id) { complaints { edges { node { id } } } } }",
}


@pytest.mark.parametrize(
    ("query", "kind", "owner"),
    [
        ("customer(id)", "Customer", "bruno"),
        ("customer(id)", "Customer", "ada"),
        ("node(id)", "Customer", "bruno"),
        ("node(id)", "Customer", "ada"),
        ("node(id)", "Complaint", "bruno"),
        ("node(id)", "Complaint", "ada"),
        ("complaint(id)", "Complaint", "bruno"),
        ("complaint(id)", "Complaint", "ada"),
        ("customer(id).complaints", "Customer", "bruno"),
    ],
)
async def test_an_object_of_another_owner_answers_exactly_like_an_unknown_one(
    world: World, query: str, kind: str, owner: str
) -> None:
    other_id = getattr(world, owner) if kind == "Customer" else getattr(world, f"{owner}_complaint")
    unknown_id = gid(kind, UNKNOWN_UUID)
    other = await world.gql("partner", QUERIES[query], {"id": other_id})
    unknown = await world.gql("partner", QUERIES[query], {"id": unknown_id})
    assert unknown["_status"] == 200
    assert [e["extensions"]["code"] for e in unknown["errors"]] == ["NOT_FOUND"], unknown
    assert_same_as_unknown(other, unknown, other_id, unknown_id)
    assert_no_plaintext(other, *OTHERS_SECRETS)
    # …while the owner (and staff) do see it: the id is real
    seen = await world.gql("admin", QUERIES[query], {"id": other_id})
    assert not seen.get("errors"), seen


async def test_survey_response_of_another_partners_customer_is_not_found(world: World) -> None:
    answer = {
        "surveyId": world.survey,
        "customerId": world.bruno,
        "channel": "EMAIL",
        "externalId": "resp-bruno",
        "answers": [{"questionId": world.question_nps, "score": 4}],
    }
    response = ok(await world.gql("partner_b", SUBMIT, {"input": answer}), "submitSurveyResponse")["response"]["id"]
    query = "query($id: ID!) { node(id: $id) { id ... on SurveyResponse { channel } } }"
    unknown_id = gid("SurveyResponse", UNKNOWN_UUID)
    other = await world.gql("partner", query, {"id": response})
    unknown = await world.gql("partner", query, {"id": unknown_id})
    assert [e["extensions"]["code"] for e in unknown["errors"]] == ["NOT_FOUND"]
    assert_same_as_unknown(other, unknown, response, unknown_id)
    own = await world.gql("partner_b", query, {"id": response})
    assert own["data"]["node"]["id"] == response


async def _counts(world: World, customer: str) -> tuple[int, int]:
    rows = await sql(
        world.url,
        "SELECT (SELECT count(*) FROM complaints WHERE customer_id = $1) AS c,"
        " (SELECT count(*) FROM purchases WHERE customer_id = $1) AS p",
        raw_id(customer),
    )
    return rows[0]["c"], rows[0]["p"]


@pytest.mark.parametrize("owner", ["bruno", "ada"])
async def test_no_complaint_on_another_owners_customer(world: World, owner: str) -> None:
    other_id = getattr(world, owner)
    unknown_id = gid("Customer", UNKNOWN_UUID)
    before = await _counts(world, other_id)
    mutation = OPEN.replace("complaint { id }", "complaint { id description customer { name } }")
    other = await world.gql("partner", mutation, {"input": complaint_input(other_id, "Probe", externalId="p-1")})
    unknown = await world.gql("partner", mutation, {"input": complaint_input(unknown_id, "Probe", externalId="p-2")})
    errors = unknown["data"]["openComplaint"]["userErrors"]
    assert [e["code"] for e in errors] == ["NOT_FOUND"], unknown
    assert unknown["data"]["openComplaint"]["complaint"] is None
    assert_same_as_unknown(other, unknown, other_id, unknown_id)
    assert await _counts(world, other_id) == before


@pytest.mark.parametrize("owner", ["bruno", "ada"])
async def test_no_purchase_on_another_owners_customer(world: World, owner: str) -> None:
    other_id = getattr(world, owner)
    unknown_id = gid("Customer", UNKNOWN_UUID)
    before = await _counts(world, other_id)

    def batch(customer: str, ext: str) -> dict[str, Any]:
        return {"input": {"purchases": [{"customerId": customer, "amount": "10.00", "externalId": ext}]}}

    other = await world.gql("partner", RECORD, batch(other_id, "probe-1"))
    unknown = await world.gql("partner", RECORD, batch(unknown_id, "probe-2"))
    assert unknown["data"]["recordPurchases"]["insertedCount"] == 0
    assert [e["field"] for e in unknown["data"]["recordPurchases"]["userErrors"]] == ["purchases[0].customerId"]
    assert_same_as_unknown(other, unknown, other_id, unknown_id)
    assert await _counts(world, other_id) == before


async def test_no_purchase_through_another_partners_external_ref(world: World) -> None:
    before = await _counts(world, world.bruno)

    def batch(ref: str) -> dict[str, Any]:
        return {"input": {"purchases": [{"customerExternalRef": ref, "amount": "10.00", "externalId": f"x-{ref}"}]}}

    other = await world.gql("partner", RECORD, batch(BRUNO.input["externalRef"]))  # partner B's reference
    unknown = await world.gql("partner", RECORD, batch("nobody-999"))
    assert [e["code"] for e in unknown["data"]["recordPurchases"]["userErrors"]] != []
    assert normalized(other).replace(BRUNO.input["externalRef"], "<REF>") == normalized(unknown).replace(
        "nobody-999", "<REF>"
    )
    assert await _counts(world, world.bruno) == before
    # the partner's own reference works
    own = await world.gql("partner", RECORD, batch(PAULA.input["externalRef"]))
    assert own["data"]["recordPurchases"]["insertedCount"] == 1


async def test_no_survey_answer_for_another_partners_customer(world: World) -> None:
    unknown_id = gid("Customer", UNKNOWN_UUID)

    def answer(customer: str, ext: str) -> dict[str, Any]:
        return {
            "input": {
                "surveyId": world.survey,
                "customerId": customer,
                "channel": "EMAIL",
                "externalId": ext,
                "answers": [{"questionId": world.question_nps, "score": 1}],
            }
        }

    # Ada has not answered the survey: her id must look unknown
    other = await world.gql("partner", SUBMIT, answer(world.ada, "probe-a"))
    unknown = await world.gql("partner", SUBMIT, answer(unknown_id, "probe-u"))
    assert [e["code"] for e in unknown["data"]["submitSurveyResponse"]["userErrors"]] == ["NOT_FOUND"]
    assert_same_as_unknown(other, unknown, world.ada, unknown_id)
    rows = await sql(world.url, "SELECT count(*) AS n FROM survey_responses WHERE customer_id = $1", raw_id(world.ada))
    assert rows[0]["n"] == 0


async def test_partner_cannot_update_or_delete_customers(world: World) -> None:
    for mutation in (
        'updateCustomer(input: {id: $id, expectedVersion: 1, name: "X"}) { userErrors { code } }',
        "deleteCustomer(input: {id: $id, expectedVersion: 1}) { userErrors { code } }",
    ):
        body = await world.gql("partner", "mutation($id: ID!) { " + mutation + " }", {"id": world.bruno})
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], body
    rows = await sql(world.url, "SELECT name, deleted_at FROM customers WHERE id = $1", raw_id(world.bruno))
    assert (rows[0]["name"], rows[0]["deleted_at"]) == (BRUNO.name, None)


# ---------------------------------------------------------------- known gaps (strict: fixing them turns these red)


async def test_survey_answer_for_another_partners_answered_customer_looks_unknown(world: World) -> None:
    answer = {
        "surveyId": world.survey,
        "customerId": world.bruno,
        "channel": "EMAIL",
        "externalId": "resp-b2",
        "answers": [{"questionId": world.question_nps, "score": 4}],
    }
    await world.gql("partner_b", SUBMIT, {"input": answer})  # Bruno has answered (once)
    unknown_id = gid("Customer", UNKNOWN_UUID)
    other = await world.gql("partner", SUBMIT, {"input": {**answer, "externalId": "probe-b"}})
    unknown = await world.gql(
        "partner", SUBMIT, {"input": {**answer, "customerId": unknown_id, "externalId": "probe-u2"}}
    )
    assert_same_as_unknown(other, unknown, world.bruno, unknown_id)


async def test_survey_answer_cannot_point_at_another_partners_complaint(world: World) -> None:
    answer = {
        "surveyId": world.survey,
        "customerId": world.paula,
        "channel": "EMAIL",
        "externalId": "probe-c",
        "complaintId": world.bruno_complaint,
        "answers": [{"questionId": world.question_nps, "score": 5}],
    }
    body = await world.gql("partner", SUBMIT, {"input": answer})
    rows = await sql(
        world.url, "SELECT count(*) AS n FROM survey_responses WHERE complaint_id = $1", raw_id(world.bruno_complaint)
    )
    assert rows[0]["n"] == 0, body
    assert [e["code"] for e in body["data"]["submitSurveyResponse"]["userErrors"]] == ["NOT_FOUND"]
