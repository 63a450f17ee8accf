"""Malformed or invalid arguments: a clear userError or error code, and nothing written.

Every test snapshots the data tables (row count and a digest of every row) before and after the bad
requests: an invalid request must leave them exactly as they were. The tests share one database (they
only ever compare before/after snapshots) and each builds its own customers, complaint and survey.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.api.helpers import (
    CREATE_CUSTOMER,
    CREATE_SURVEY,
    DELETE_CUSTOMER,
    OPEN_COMPLAINT,
    RECORD_PURCHASES,
    SUBMIT_RESPONSE,
    TRANSITION_COMPLAINT,
    UPDATE_CUSTOMER,
    create_customer,
    error_codes,
    global_id,
    module_api,
    ok,
    open_complaint,
    payload,
    raw_id,
    snapshot,
)
from tests.conftest import Api


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


@dataclass
class World:
    admin: str
    partner: str
    customer: dict[str, Any]
    partner_customer: dict[str, Any]
    complaint: dict[str, Any]
    survey_id: str
    nps_question: str
    text_question: str


async def make_world(api: Api) -> World:
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    customer = await create_customer(api, admin, name="Ann Lee", email="ann@example.com")
    partner_customer = await create_customer(api, partner, name="Pat Partner", externalRef=f"p-{uuid.uuid4()}")
    complaint = await open_complaint(api, admin, customer["id"])
    survey = ok(
        await api.gql(
            admin,
            CREATE_SURVEY,
            {
                "input": {
                    "title": "How did we do?",
                    "channels": ["EMAIL", "WEB"],
                    "questions": [
                        {"kind": "NPS", "dimension": "loyalty", "prompt": "Recommend us?"},
                        {"kind": "TEXT", "dimension": "comment", "prompt": "Why?", "required": False},
                    ],
                }
            },
        ),
        "createSurvey",
    )["survey"]
    nps, txt = (q["id"] for q in survey["questions"])
    return World(admin, partner, customer, partner_customer, complaint, survey["id"], nps, txt)


@pytest.fixture
async def world(api: Api) -> World:
    return await make_world(api)


def user_errors(body: dict[str, Any], name: str) -> list[tuple[str | None, str]]:
    """(field, code) of each user error; the payload must carry no object."""
    result = payload(body, name)
    assert result["userErrors"], f"expected user errors: {result}"
    for key, value in result.items():
        if key not in ("userErrors", "purchases", "insertedCount"):
            assert value is None, f"{name}.{key} must be null when nothing was done: {result}"
    assert all(e["message"] for e in result["userErrors"])
    return [(e["field"], e["code"]) for e in result["userErrors"]]


def refused(body: dict[str, Any], code: str = "BAD_USER_INPUT") -> None:
    """A request-level error with ``code`` and no data for it."""
    assert error_codes(body), body
    assert set(error_codes(body)) == {code}, body
    assert not any((body.get("data") or {}).values()), body


# ---------------------------------------------------------------- ids


async def test_unknown_ids_are_not_found_and_write_nothing(api: Api, world: World) -> None:
    before = await snapshot(api)
    nobody = global_id("Customer", uuid.uuid4())
    no_complaint = global_id("Complaint", uuid.uuid4())
    no_survey = global_id("Survey", uuid.uuid4())
    a = world.admin

    upd = await api.gql(a, UPDATE_CUSTOMER, {"input": {"id": nobody, "expectedVersion": 1, "name": "X"}})
    assert user_errors(upd, "updateCustomer") == [("id", "NOT_FOUND")]
    dele = await api.gql(a, DELETE_CUSTOMER, {"input": {"id": nobody, "expectedVersion": 1}})
    assert user_errors(dele, "deleteCustomer") == [("id", "NOT_FOUND")]
    # an id of another type is the same as an unknown one
    wrong_type = await api.gql(
        a, UPDATE_CUSTOMER, {"input": {"id": world.complaint["id"], "expectedVersion": 1, "name": "X"}}
    )
    assert user_errors(wrong_type, "updateCustomer") == [("id", "NOT_FOUND")]
    opened = await api.gql(
        a, OPEN_COMPLAINT, {"input": {"customerId": nobody, "subject": "s", "description": "d", "category": "delivery"}}
    )
    assert user_errors(opened, "openComplaint") == [("customerId", "NOT_FOUND")]
    moved = await api.gql(a, TRANSITION_COMPLAINT, {"input": {"id": no_complaint, "expectedVersion": 1, "to": "OPEN"}})
    assert user_errors(moved, "transitionComplaint") == [("id", "NOT_FOUND")]
    answered = await api.gql(
        a,
        SUBMIT_RESPONSE,
        {
            "input": {
                "surveyId": no_survey,
                "customerId": world.customer["id"],
                "channel": "EMAIL",
                "answers": [{"questionId": world.nps_question, "score": 9}],
            }
        },
    )
    assert user_errors(answered, "submitSurveyResponse") == [("surveyId", "NOT_FOUND")]
    bought = await api.gql(a, RECORD_PURCHASES, {"input": {"purchases": [{"customerId": nobody, "amount": "10"}]}})
    assert user_errors(bought, "recordPurchases") == [("purchases[0].customerId", "INVALID")]
    by_ref = await api.gql(
        world.partner,
        RECORD_PURCHASES,
        {"input": {"purchases": [{"customerExternalRef": "no-such-ref", "amount": "10"}]}},
    )
    assert user_errors(by_ref, "recordPurchases") == [("purchases[0].customerExternalRef", "INVALID")]

    for query in (
        "query($id: ID!) { customer(id: $id) { id } }",
        "query($id: ID!) { complaint(id: $id) { id } }",
        "query($id: ID!) { survey(id: $id) { id } }",
    ):
        refused(await api.gql(a, query, {"id": nobody}), "NOT_FOUND")
    assert await snapshot(api) == before


async def test_a_partner_cannot_reach_another_partners_or_staff_customer(api: Api, world: World) -> None:
    other, _ = await api.partner_token("Other Shop")
    before = await snapshot(api)
    for target in (world.customer, world.partner_customer):
        bought = await api.gql(
            other,
            RECORD_PURCHASES,
            {"input": {"purchases": [{"customerId": target["id"], "amount": "10", "externalId": "o-1"}]}},
        )
        assert user_errors(bought, "recordPurchases") == [("purchases[0].customerId", "INVALID")]
        opened = await api.gql(
            other,
            OPEN_COMPLAINT,
            {"input": {"customerId": target["id"], "subject": "s", "description": "d", "category": "delivery"}},
        )
        assert user_errors(opened, "openComplaint") == [("customerId", "NOT_FOUND")]
        refused(
            await api.gql(other, "query($id: ID!) { customer(id: $id) { name } }", {"id": target["id"]}), "NOT_FOUND"
        )
    assert await snapshot(api) == before


# ---------------------------------------------------------------- contact data


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-email"),
        ("email", "a@"),
        ("phone", "12"),
        ("phone", "call me"),
        ("nationalId", "#!"),
        ("birthDate", "2999-01-01"),
        ("locale", "German"),
        ("externalRef", "   "),
    ],
)
async def test_invalid_contact_data_is_a_user_error_on_create_and_update(
    api: Api, world: World, field: str, value: str
) -> None:
    before = await snapshot(api)
    created = await api.gql(world.admin, CREATE_CUSTOMER, {"input": {"name": "New One", field: value}})
    assert user_errors(created, "createCustomer") == [(field, "INVALID")]
    updated = await api.gql(
        world.admin,
        UPDATE_CUSTOMER,
        {"input": {"id": world.customer["id"], "expectedVersion": 1, "name": "Renamed", field: value}},
    )
    assert user_errors(updated, "updateCustomer") == [(field, "INVALID")]
    assert await snapshot(api) == before


async def test_every_invalid_field_is_reported_at_once(api: Api, world: World) -> None:
    before = await snapshot(api)
    body = await api.gql(
        world.admin,
        CREATE_CUSTOMER,
        {"input": {"name": "  ", "email": "nope", "phone": "12", "address": {"city": "Berlin"}}},
    )
    assert sorted(user_errors(body, "createCustomer")) == [
        ("address", "INVALID"),
        ("email", "INVALID"),
        ("name", "INVALID"),
        ("phone", "INVALID"),
    ]
    assert await snapshot(api) == before


async def test_update_with_nothing_to_change_is_a_user_error(api: Api, world: World) -> None:
    before = await snapshot(api)
    body = await api.gql(world.admin, UPDATE_CUSTOMER, {"input": {"id": world.customer["id"], "expectedVersion": 1}})
    assert user_errors(body, "updateCustomer") == [("input", "INVALID")]
    assert await snapshot(api) == before


async def test_stale_versions_are_conflicts(api: Api, world: World) -> None:
    before = await snapshot(api)
    upd = await api.gql(
        world.admin, UPDATE_CUSTOMER, {"input": {"id": world.customer["id"], "expectedVersion": 7, "name": "Lost"}}
    )
    assert user_errors(upd, "updateCustomer") == [("expectedVersion", "CONFLICT")]
    dele = await api.gql(world.admin, DELETE_CUSTOMER, {"input": {"id": world.customer["id"], "expectedVersion": 2}})
    assert user_errors(dele, "deleteCustomer") == [("expectedVersion", "CONFLICT")]
    moved = await api.gql(
        world.admin,
        TRANSITION_COMPLAINT,
        {"input": {"id": world.complaint["id"], "expectedVersion": 2, "to": "OPEN", "assignee": "bob"}},
    )
    assert user_errors(moved, "transitionComplaint") == [("expectedVersion", "CONFLICT")]
    assert await snapshot(api) == before


# ---------------------------------------------------------------- purchases


@pytest.mark.parametrize("amount", ["-5", "0", "0.00", "1.234", "10.001", "1000000000.01", "NaN", "Infinity"])
async def test_bad_amount_is_refused(api: Api, world: World, amount: str) -> None:
    before = await snapshot(api)
    body = await api.gql(
        world.admin,
        RECORD_PURCHASES,
        {"input": {"purchases": [{"customerId": world.customer["id"], "amount": amount, "externalId": "x-1"}]}},
    )
    assert user_errors(body, "recordPurchases") == [("purchases[0].amount", "INVALID")]
    assert payload(body, "recordPurchases")["insertedCount"] == 0
    assert payload(body, "recordPurchases")["purchases"] == []
    assert await snapshot(api) == before


async def test_a_batch_with_one_bad_item_writes_none_of_them(api: Api, world: World) -> None:
    before = await snapshot(api)
    good = {"customerId": world.customer["id"], "amount": "19.99"}
    batches = {
        "bad amount": [good, {**good, "amount": "-1"}, {**good, "amount": "5.00"}],
        "three decimals": [{**good, "externalId": "g-1"}, {**good, "amount": "5.555", "externalId": "g-2"}],
        "unknown customer": [good, {"customerId": global_id("Customer", uuid.uuid4()), "amount": "5"}, good],
        "malformed customer id": [good, {"customerId": "nope", "amount": "5"}],
        "bad currency": [good, {**good, "currency": "EURO"}],
        "no customer": [good, {"amount": "5"}],
        "both customer references": [good, {**good, "customerExternalRef": "p-1"}],
        "future purchase": [good, {**good, "purchasedAt": "2999-01-01T00:00:00+00:00"}],
        "naive time": [good, {**good, "purchasedAt": "2024-01-01T00:00:00"}],
        "empty external id": [good, {**good, "externalId": ""}],
    }
    for label, items in batches.items():
        body = await api.gql(world.admin, RECORD_PURCHASES, {"input": {"purchases": items}})
        fields = [f for f, _ in user_errors(body, "recordPurchases")]
        assert fields, label
        assert all(f.startswith("purchases[1].") for f in fields), (label, fields)
        assert payload(body, "recordPurchases")["insertedCount"] == 0, label
    empty = await api.gql(world.admin, RECORD_PURCHASES, {"input": {"purchases": []}})
    assert user_errors(empty, "recordPurchases") == [("purchases", "INVALID")]
    assert await snapshot(api) == before


async def test_an_amount_that_is_not_a_number_is_bad_user_input(api: Api, world: World) -> None:
    before = await snapshot(api)
    body = await api.gql(
        world.admin,
        'mutation {{ recordPurchases(input: {{purchases: [{{customerId: "{}", '
        'amount: "ten euros"}}]}}) {{ insertedCount }} }}'.format(world.customer["id"]),
    )
    refused(body)
    assert await snapshot(api) == before


async def test_an_amount_that_is_not_a_number_in_variables_is_bad_user_input(api: Api, world: World) -> None:
    before = await snapshot(api)
    body = await api.gql(
        world.admin,
        RECORD_PURCHASES,
        {"input": {"purchases": [{"customerId": world.customer["id"], "amount": "ten euros"}]}},
    )
    refused(body)
    assert await snapshot(api) == before


# ---------------------------------------------------------------- GraphQL-level input errors


async def test_unknown_enum_values_in_the_query_are_bad_user_input(api: Api, world: World) -> None:
    before = await snapshot(api)
    queries = [
        'mutation {{ openComplaint(input: {{customerId: "{}", subject: "s", description: "d", category: "delivery",'
        " severity: APOCALYPTIC}}) {{ complaint {{ id }} }} }}".format(world.customer["id"]),
        'mutation {{ openComplaint(input: {{customerId: "{}", subject: "s", description: "d", category: "delivery",'
        ' severity: "high"}}) {{ complaint {{ id }} }} }}'.format(world.customer["id"]),
        'mutation { createCustomer(input: {name: "Vip", lifecycleStage: VIP}) { customer { id } } }',
        "{ customers(orderBy: RANDOM) { totalCount } }",
        'mutation {{ transitionComplaint(input: {{id: "{}", expectedVersion: 1, to: ESCALATED}}) '
        "{{ complaint {{ id }} }} }}".format(world.complaint["id"]),
    ]
    for query in queries:
        refused(await api.gql(world.admin, query))
    assert await snapshot(api) == before


async def test_unknown_enum_values_in_variables_are_bad_user_input(api: Api, world: World) -> None:
    before = await snapshot(api)
    variable = await api.gql(
        world.admin,
        OPEN_COMPLAINT,
        {
            "input": {
                "customerId": world.customer["id"],
                "subject": "s",
                "description": "d",
                "category": "delivery",
                "severity": "apocalyptic",
            }
        },
    )
    refused(variable)
    stage = await api.gql(world.admin, CREATE_CUSTOMER, {"input": {"name": "Vip", "lifecycleStage": "VIP"}})
    refused(stage)
    order = await api.gql(
        world.admin, "query($o: CustomerOrder!) { customers(orderBy: $o) { totalCount } }", {"o": "RANDOM"}
    )
    refused(order)
    status = await api.gql(
        world.admin,
        TRANSITION_COMPLAINT,
        {"input": {"id": world.complaint["id"], "expectedVersion": 1, "to": "ESCALATED"}},
    )
    refused(status)
    assert await snapshot(api) == before


async def test_customer_input_cannot_set_fields_it_does_not_have(api: Api, world: World) -> None:
    before = await snapshot(api)
    for field in ('tier: "gold"', "version: 9", 'tierCode: "gold"', "deletedAt: null", 'partnerId: "x"'):
        await _refuse_customer_field(api, world, field)
    assert await snapshot(api) == before


async def _refuse_customer_field(api: Api, world: World, field: str) -> None:
    created = await api.gql(
        world.admin, f'mutation {{ createCustomer(input: {{name: "Sneaky", {field}}}) {{ customer {{ id }} }} }}'
    )
    refused(created)
    assert "unknown field" in created["errors"][0]["message"] or "not defined" in created["errors"][0]["message"]
    updated = await api.gql(
        world.admin,
        'mutation {{ updateCustomer(input: {{id: "{}", expectedVersion: 1, {}}}) {{ customer {{ id }} }} }}'.format(
            world.customer["id"], field
        ),
    )
    refused(updated)


@pytest.mark.parametrize("field", ["tier", "version", "tierCode"])
async def test_customer_input_in_variables_cannot_set_fields_it_does_not_have(
    api: Api, world: World, field: str
) -> None:
    before = await snapshot(api)
    created = await api.gql(world.admin, CREATE_CUSTOMER, {"input": {"name": "Sneaky", field: "gold"}})
    refused(created)
    updated = await api.gql(
        world.admin, UPDATE_CUSTOMER, {"input": {"id": world.customer["id"], "expectedVersion": 1, field: "gold"}}
    )
    refused(updated)
    assert await snapshot(api) == before


@pytest.mark.parametrize(
    "query",
    [
        "{ customers(first: 5 { totalCount } }",
        'mutation { createCustomer(input: {name: "x"}) { customer { id } }',
        "{ customers(first: 5) { totalCount ",
        "this is not graphql",
        "{ customers(first: 5) { noSuchField } }",
        '{ customers(first: "five") { totalCount } }',
        "mutation { createCustomer { customer { id } } }",
    ],
)
async def test_syntax_and_validation_errors_are_bad_user_input(api: Api, world: World, query: str) -> None:
    before = await snapshot(api)
    body = await api.gql(world.admin, query)
    refused(body)
    assert body["errors"][0]["message"]
    assert await snapshot(api) == before


# ---------------------------------------------------------------- page sizes and cursors

LISTS = {
    "customers": "{ customers(first: %s) { totalCount } }",
    "complaints": "{ complaints(first: %s) { totalCount } }",
    "surveys": "{ surveys(first: %s) { totalCount } }",
}


@pytest.mark.parametrize("first", [0, -1, 101, 1000])
async def test_page_size_out_of_range_is_bad_user_input(api: Api, world: World, first: int) -> None:
    for name, query in LISTS.items():
        body = await api.gql(world.admin, query % first)
        refused(body)
        assert "between 1 and 100" in body["errors"][0]["message"], name
    nested = await api.gql(
        world.admin,
        f"{{ customers(first: 5) {{ edges {{ node {{ complaints(first: {first}) "
        "{ edges { node { id } } } } } } }",
    )
    assert "BAD_USER_INPUT" in error_codes(nested)


async def test_page_size_bounds_are_inclusive(api: Api, world: World) -> None:
    for query in LISTS.values():
        for first in (1, 100):
            body = await api.gql(world.admin, query % first)
            assert "errors" not in body, body


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


async def test_garbage_and_forged_cursors_are_bad_user_input(api: Api, world: World) -> None:
    await create_customer(api, world.admin, name="Third")
    page = await api.gql(world.admin, "{ customers(first: 1) { pageInfo { endCursor } } }")
    real = page["data"]["customers"]["pageInfo"]["endCursor"]
    complaint_page = await api.gql(world.admin, "{ complaints(first: 1) { pageInfo { endCursor } } }")
    complaint_cursor = complaint_page["data"]["complaints"]["pageInfo"]["endCursor"]
    row = str(raw_id(world.customer["id"]))
    before = await snapshot(api)
    bad = {
        "garbage": "garbage!!",
        "empty": "",
        "base64 of text": base64.urlsafe_b64encode(b"hello").decode(),
        "truncated": real[:-3],
        "another ordering": _cursor("NAME", "Ann", row),
        "another list": complaint_cursor,
        "not a list": _cursor("CREATED_AT"),
        "integer id": _cursor("CREATED_AT", "2024-01-01T00:00:00+00:00", 5),
        "bad uuid": _cursor("CREATED_AT", "2024-01-01T00:00:00+00:00", "zz-zz"),
        "number as time": _cursor("CREATED_AT", 1700000000, row),
        "null as time": _cursor("CREATED_AT", None, row),
        "not a time": _cursor("CREATED_AT", "yesterday", row),
        "time without zone": _cursor("CREATED_AT", "2024-01-01T00:00:00", row),
        "list as time": _cursor("CREATED_AT", [1], row),
    }
    for label, cursor in bad.items():
        body = await api.gql(
            world.admin,
            "query($after: String) { customers(first: 2, after: $after) { edges { node { id } } } }",
            {"after": cursor},
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], (label, body)
        assert body["data"]["customers"] is None, label
    forged = {
        "NAME": _cursor("NAME", 42, row),
        "SPEND_12M_DESC": _cursor("SPEND_12M_DESC", "lots", row),
        "LIFETIME_SPEND_DESC": _cursor("LIFETIME_SPEND_DESC", True, row),
        "UPDATED_AT_DESC": _cursor("UPDATED_AT_DESC", {"a": 1}, row),
    }
    for order, cursor in forged.items():
        body = await api.gql(
            world.admin,
            "query($after: String, $o: CustomerOrder!) { customers(first: 2, "
            "after: $after, orderBy: $o) { edges { node { id } } } }",
            {"after": cursor, "o": order},
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], (order, body)
    for query in ("complaints", "surveys"):
        body = await api.gql(
            world.admin,
            f"query($after: String) {{ {query}(first: 2, after: $after) {{ totalCount }} }}",
            {"after": "garbage!!"},
        )
        assert error_codes(body) == ["BAD_USER_INPUT"], query
    assert await snapshot(api) == before


# ---------------------------------------------------------------- complaints


async def test_unknown_complaint_category_is_a_user_error(api: Api, world: World) -> None:
    before = await snapshot(api)
    for token in (world.admin, world.partner):
        customer = world.customer if token == world.admin else world.partner_customer
        body = await api.gql(
            token,
            OPEN_COMPLAINT,
            {
                "input": {
                    "customerId": customer["id"],
                    "subject": "s",
                    "description": "d",
                    "category": "aliens",
                    "externalId": "k-1",
                }
            },
        )
        assert user_errors(body, "openComplaint") == [("category", "INVALID")]
    blank = await api.gql(
        world.admin,
        OPEN_COMPLAINT,
        {"input": {"customerId": world.customer["id"], "subject": "   ", "description": "", "category": "delivery"}},
    )
    assert sorted(user_errors(blank, "openComplaint")) == [("description", "INVALID"), ("subject", "INVALID")]
    assert await snapshot(api) == before


async def test_illegal_complaint_transition_changes_nothing(api: Api, world: World) -> None:
    before = await snapshot(api)
    cid = world.complaint["id"]
    for to in ("CLOSED", "ON_HOLD", "PENDING_CUSTOMER", "NEW"):
        body = await api.gql(world.admin, TRANSITION_COMPLAINT, {"input": {"id": cid, "expectedVersion": 1, "to": to}})
        assert user_errors(body, "transitionComplaint") == [("to", "ILLEGAL_TRANSITION")], to
    unresolved = await api.gql(
        world.admin, TRANSITION_COMPLAINT, {"input": {"id": cid, "expectedVersion": 1, "to": "RESOLVED"}}
    )
    assert sorted(user_errors(unresolved, "transitionComplaint")) == [
        ("assignee", "INVALID"),
        ("resolutionCode", "INVALID"),
        ("rootCauseCode", "INVALID"),
    ]
    unknown_cause = await api.gql(
        world.admin,
        TRANSITION_COMPLAINT,
        {
            "input": {
                "id": cid,
                "expectedVersion": 1,
                "to": "RESOLVED",
                "assignee": "bob",
                "resolutionCode": "refund",
                "rootCauseCode": "gremlins",
            }
        },
    )
    assert user_errors(unknown_cause, "transitionComplaint") == [("rootCauseCode", "INVALID")]
    assert await snapshot(api) == before


async def test_closed_complaint_is_final(api: Api, world: World) -> None:
    cid = world.complaint["id"]
    steps = [
        {"to": "RESOLVED", "assignee": "bob", "resolutionCode": "refund", "rootCauseCode": "process"},
        {"to": "CLOSED"},
    ]
    for version, step in enumerate(steps, start=1):
        ok(
            await api.gql(
                world.admin, TRANSITION_COMPLAINT, {"input": {"id": cid, "expectedVersion": version, **step}}
            ),
            "transitionComplaint",
        )
    before = await snapshot(api)
    for to in ("OPEN", "RESOLVED", "NEW", "ON_HOLD", "PENDING_CUSTOMER", "CLOSED"):
        body = await api.gql(
            world.admin,
            TRANSITION_COMPLAINT,
            {
                "input": {
                    "id": cid,
                    "expectedVersion": 3,
                    "to": to,
                    "assignee": "bob",
                    "resolutionCode": "refund",
                    "rootCauseCode": "process",
                }
            },
        )
        assert user_errors(body, "transitionComplaint") == [("to", "ILLEGAL_TRANSITION")], to
    assert await snapshot(api) == before


# ---------------------------------------------------------------- surveys


def _answer(world: World, customer: dict[str, Any], score: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "input": {
            "surveyId": world.survey_id,
            "customerId": customer["id"],
            "channel": "EMAIL",
            "answers": [{"questionId": world.nps_question, "score": score}],
            **extra,
        }
    }


@pytest.mark.parametrize("score", [-1, 11, 100, None])
async def test_survey_answer_out_of_range_is_a_user_error(api: Api, world: World, score: int | None) -> None:
    before = await snapshot(api)
    body = await api.gql(
        world.partner, SUBMIT_RESPONSE, _answer(world, world.partner_customer, score, externalId="r-1")
    )
    assert user_errors(body, "submitSurveyResponse") == [("answers[0].score", "INVALID")]
    assert await snapshot(api) == before


async def test_other_invalid_survey_answers_are_user_errors(api: Api, world: World) -> None:
    before = await snapshot(api)
    base = _answer(world, world.customer, 9)["input"]
    cases: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {
        "unknown question": (
            {"answers": [{"questionId": global_id("SurveyQuestion", uuid.uuid4()), "score": 1}]},
            [("answers[0].questionId", "INVALID"), ("answers", "INVALID")],
        ),
        "answered twice": (
            {
                "answers": [
                    {"questionId": world.nps_question, "score": 1},
                    {"questionId": world.nps_question, "score": 2},
                ]
            },
            [("answers[1].questionId", "INVALID")],
        ),
        "required missing": (
            {"answers": [{"questionId": world.text_question, "text": "hi"}]},
            [("answers", "INVALID")],
        ),
        "channel not used": ({"channel": "SMS"}, [("channel", "INVALID")]),
        "unknown customer": ({"customerId": global_id("Customer", uuid.uuid4())}, [("customerId", "NOT_FOUND")]),
    }
    for label, (change, expected) in cases.items():
        body = await api.gql(world.admin, SUBMIT_RESPONSE, {"input": {**base, **change}})
        assert sorted(user_errors(body, "submitSurveyResponse")) == sorted(expected), label
    assert await snapshot(api) == before


async def test_second_response_of_a_customer_to_a_survey_is_refused(api: Api, world: World) -> None:
    first = await api.gql(world.partner, SUBMIT_RESPONSE, _answer(world, world.partner_customer, 9, externalId="r-1"))
    response_id = ok(first, "submitSurveyResponse")["response"]["id"]
    before = await snapshot(api)
    again = {
        "another external id": (world.partner, {"externalId": "r-2"}),
        "no external id": (world.partner, {}),
        "staff, no external id": (world.admin, {}),
    }
    for label, (token, extra) in again.items():
        body = await api.gql(token, SUBMIT_RESPONSE, _answer(world, world.partner_customer, 3, **extra))
        assert user_errors(body, "submitSurveyResponse") == [("surveyId", "INVALID")], label
    assert await snapshot(api) == before
    # The first response is still the only one, with its first answer.
    got = await api.gql(
        world.admin,
        "query($id: ID!) { node(id: $id) { ... on SurveyResponse { answers { score } } } }",
        {"id": response_id},
    )
    assert got["data"]["node"] == {"answers": [{"score": 9}]}


async def test_invalid_survey_definition_is_a_user_error(api: Api, world: World) -> None:
    before = await snapshot(api)
    body = await api.gql(
        world.admin,
        CREATE_SURVEY,
        {
            "input": {
                "title": " ",
                "channels": [],
                "questions": [{"kind": "SINGLE_CHOICE", "dimension": "x", "prompt": "p", "options": ["only one"]}],
            }
        },
    )
    assert sorted(user_errors(body, "createSurvey")) == [
        ("channels", "INVALID"),
        ("questions[0]", "INVALID"),
        ("title", "INVALID"),
    ]
    assert await snapshot(api) == before
