"""Customers over HTTP: writes with optimistic locking, soft delete, keyset pagination, global ids."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal
from typing import Any

from api.graphql.customers.inputs import CustomerOrder
from tests.api.helpers import (
    CREATE_CUSTOMER,
    DELETE_CUSTOMER,
    UPDATE_CUSTOMER,
    create_customer,
    error_codes,
    global_id,
    ok,
    payload,
    raw_id,
    record_purchases,
    scalar,
)
from tests.conftest import Api

READ_CUSTOMER = """
query($id: ID!) { customer(id: $id) { id name email phone nationalId birthDate version
                                      address { line1 city country postalCode } lifecycleStage } }"""
NODE = "query($id: ID!) { node(id: $id) { __typename id ... on Customer { name email version } } }"


async def read(api: Api, token: str, customer_id: str) -> dict[str, Any]:
    body = await api.gql(token, READ_CUSTOMER, {"id": customer_id})
    assert "errors" not in body, body
    customer: dict[str, Any] = body["data"]["customer"]
    return customer


# ---------------------------------------------------------------- create / update / delete


async def test_create_normalises_and_reads_back_every_field(api: Api) -> None:
    admin = await api.user("alice", "admin")
    body = await api.gql(
        admin,
        CREATE_CUSTOMER,
        {
            "input": {
                "name": "  Ann   Lee ",
                "email": " Ann@Example.COM",
                "phone": "030 1234567",
                "nationalId": " ab123456 ",
                "birthDate": "1990-05-17",
                "address": {"line1": " Main  St 1", "city": "Berlin", "country": "de"},
                "lifecycleStage": "ACTIVE",
                "externalRef": "crm-1",
            }
        },
    )
    created = ok(body, "createCustomer")["customer"]
    assert created["version"] == 1
    got = await read(api, admin, created["id"])
    assert got == {
        "id": created["id"],
        "name": "Ann Lee",
        "email": "ann@example.com",
        "phone": "+49301234567",
        "nationalId": "AB123456",
        "birthDate": "1990-05-17",
        "version": 1,
        "lifecycleStage": "ACTIVE",
        "address": {"line1": "Main St 1", "city": "Berlin", "country": "DE", "postalCode": None},
    }


async def test_update_with_the_current_version_changes_the_customer_and_bumps_the_version(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ann Lee", email="ann@example.com")
    body = await api.gql(
        admin,
        UPDATE_CUSTOMER,
        {
            "input": {
                "id": c["id"],
                "expectedVersion": 1,
                "email": "ANN.LEE@example.com",
                "phone": "+49 30 7654321",
            }
        },
    )
    updated = ok(body, "updateCustomer")["customer"]
    assert (updated["email"], updated["phone"], updated["version"]) == ("ann.lee@example.com", "+49307654321", 2)
    assert updated["name"] == "Ann Lee"  # fields not given stay as they were
    assert updated["updatedAt"] > c["updatedAt"]
    again = ok(
        await api.gql(admin, UPDATE_CUSTOMER, {"input": {"id": c["id"], "expectedVersion": 2, "phone": None}}),
        "updateCustomer",
    )
    assert (again["customer"]["phone"], again["customer"]["version"]) == (None, 3)


async def test_update_with_a_stale_version_is_a_conflict_and_changes_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ann Lee", email="ann@example.com")
    ok(
        await api.gql(admin, UPDATE_CUSTOMER, {"input": {"id": c["id"], "expectedVersion": 1, "name": "Ann B"}}),
        "updateCustomer",
    )
    before = await read(api, admin, c["id"])

    for stale in (1, 0, 3, 99):
        body = await api.gql(
            admin,
            UPDATE_CUSTOMER,
            {
                "input": {
                    "id": c["id"],
                    "expectedVersion": stale,
                    "name": "Lost Update",
                    "email": "lost@example.com",
                }
            },
        )
        result = payload(body, "updateCustomer")
        assert result["customer"] is None
        assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("expectedVersion", "CONFLICT")]
        assert "version 2" in result["userErrors"][0]["message"]

    assert await read(api, admin, c["id"]) == before
    assert before["name"] == "Ann B"
    assert before["version"] == 2


async def test_delete_with_a_stale_version_is_a_conflict_and_keeps_the_customer(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ann Lee")
    ok(
        await api.gql(admin, UPDATE_CUSTOMER, {"input": {"id": c["id"], "expectedVersion": 1, "name": "Ann B"}}),
        "updateCustomer",
    )
    result = payload(
        await api.gql(admin, DELETE_CUSTOMER, {"input": {"id": c["id"], "expectedVersion": 1}}), "deleteCustomer"
    )
    assert result["deletedId"] is None
    assert [(e["field"], e["code"]) for e in result["userErrors"]] == [("expectedVersion", "CONFLICT")]
    still = await read(api, admin, c["id"])
    assert (still["name"], still["version"]) == ("Ann B", 2)
    assert await scalar(api, "SELECT count(*) FROM customers WHERE deleted_at IS NOT NULL") == 0


async def test_soft_deleted_customer_is_not_found_and_vanishes_from_lists(api: Api) -> None:
    admin = await api.user("alice", "admin")
    keep = await create_customer(api, admin, name="Keep Me")
    gone = await create_customer(api, admin, name="Delete Me")
    listing = "{ customers(first: 10) { totalCount edges { node { id } } } }"
    assert (await api.gql(admin, listing))["data"]["customers"]["totalCount"] == 2

    deleted = ok(
        await api.gql(admin, DELETE_CUSTOMER, {"input": {"id": gone["id"], "expectedVersion": 1}}), "deleteCustomer"
    )
    assert deleted["deletedId"] == gone["id"]

    by_id = await api.gql(admin, READ_CUSTOMER, {"id": gone["id"]})
    assert by_id["data"]["customer"] is None
    assert error_codes(by_id) == ["NOT_FOUND"]
    node = await api.gql(admin, NODE, {"id": gone["id"]})
    assert node["data"]["node"] is None
    assert error_codes(node) == ["NOT_FOUND"]

    page = (await api.gql(admin, listing))["data"]["customers"]
    assert page["totalCount"] == 1
    assert [e["node"]["id"] for e in page["edges"]] == [keep["id"]]
    by_name = await api.gql(admin, '{ customers(first: 10, filter: {nameContains: "Delete"}) { totalCount } }')
    assert by_name["data"]["customers"]["totalCount"] == 0

    # The row is kept (soft delete), marked deleted, with its version bumped.
    row = await scalar(
        api,
        "SELECT json_build_array(deleted_at IS NOT NULL, version) FROM customers WHERE id = :id",
        id=raw_id(gone["id"]),
    )
    assert row == [True, 2]

    # A deleted customer can be neither updated nor deleted again.
    for mutation, name, extra in (
        (UPDATE_CUSTOMER, "updateCustomer", {"name": "Back"}),
        (DELETE_CUSTOMER, "deleteCustomer", {}),
    ):
        again = payload(
            await api.gql(admin, mutation, {"input": {"id": gone["id"], "expectedVersion": 2, **extra}}), name
        )
        assert [e["code"] for e in again["userErrors"]] == ["NOT_FOUND"]


# ---------------------------------------------------------------- node and ids


async def test_node_returns_the_customer(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ann Lee", email="ann@example.com")
    body = await api.gql(admin, NODE, {"id": c["id"]})
    assert body["data"]["node"] == {
        "__typename": "Customer",
        "id": c["id"],
        "name": "Ann Lee",
        "email": "ann@example.com",
        "version": 1,
    }


async def test_malformed_unknown_and_other_type_ids_are_not_found(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Ann Lee")
    customer_uuid = raw_id(c["id"])
    bad_ids = [
        "garbage!!",
        "",
        "Q3VzdG9tZXI6bm90LWEtdXVpZA",  # "Customer:not-a-uuid"
        global_id("Customer", uuid.uuid4()),  # well-formed, unknown
        global_id("Complaint", customer_uuid),  # the customer's uuid under another type
        global_id("Survey", customer_uuid),
        global_id("Spaceship", customer_uuid),
        str(customer_uuid),  # a raw uuid is not a global id
    ]
    for bad in bad_ids:
        for query, field in ((NODE, "node"), (READ_CUSTOMER, "customer")):
            body = await api.gql(admin, query, {"id": bad})
            assert body["data"][field] is None, (bad, field, body)
            assert error_codes(body) == ["NOT_FOUND"], (bad, field, body)
    complaint = await api.gql(admin, "query($id: ID!) { complaint(id: $id) { id } }", {"id": c["id"]})
    assert error_codes(complaint) == ["NOT_FOUND"]


# ---------------------------------------------------------------- keyset pagination

WORDS = ("kilo", "alpha", "echo", "bravo", "delta", "alpha", "juliet", "echo", "hotel", "india")
PAGE = """
query($first: Int!, $after: String, $order: CustomerOrder!) {
  customers(first: $first, after: $after, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id } }
  }
}"""
ALL = """
{ customers(first: 100) { edges { node { id name createdAt updatedAt metrics { spend12m lifetimeSpend } } } } }
"""


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _money(value: str | None) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


# How each ordering sorts (value of the sort key, ascending?), written from its name, not from the code.
EXPECTED_ORDER = {
    "CREATED_AT": (lambda n: _when(n["createdAt"]), False),
    "CREATED_AT_DESC": (lambda n: _when(n["createdAt"]), True),
    "UPDATED_AT_DESC": (lambda n: _when(n["updatedAt"]), True),
    "NAME": (lambda n: n["name"], False),
    "SPEND_12M_DESC": (lambda n: _money(n["metrics"]["spend12m"]), True),
    "LIFETIME_SPEND_DESC": (lambda n: _money(n["metrics"]["lifetimeSpend"]), True),
}


async def _walk(api: Api, token: str, order: str, first: int) -> tuple[list[str], list[int]]:
    ids: list[str] = []
    sizes: list[int] = []
    after: str | None = None
    for _ in range(50):
        body = await api.gql(token, PAGE, {"first": first, "after": after, "order": order})
        assert "errors" not in body, (order, body)
        conn = body["data"]["customers"]
        assert conn["totalCount"] == 25
        ids += [e["node"]["id"] for e in conn["edges"]]
        sizes.append(len(conn["edges"]))
        if conn["edges"]:
            assert conn["pageInfo"]["endCursor"] == conn["edges"][-1]["cursor"]
        if not conn["pageInfo"]["hasNextPage"]:
            return ids, sizes
        after = conn["pageInfo"]["endCursor"]
    raise AssertionError(f"{order}: pagination did not end")


async def test_keyset_pagination_walks_every_customer_exactly_once_in_every_order(api: Api) -> None:
    assert {o.value for o in CustomerOrder} == set(EXPECTED_ORDER), "a new ordering needs an expectation here"
    admin = await api.user("alice", "admin")
    created = [await create_customer(api, admin, name=w) for w in itertools.islice(itertools.cycle(WORDS), 25)]

    # Spend: ties (several at 0 and at 100), and old purchases so that lifetime and 12-month orders differ.
    now = dt.datetime.now(dt.UTC)
    recent, old = now - dt.timedelta(days=3), now - dt.timedelta(days=800)
    amounts = ["100.00", "250.50", "100.00", "40.00", "999.99", "250.50", "10.00", "100.00", "0.01", "75.25"]
    items = [
        {"customerId": c["id"], "amount": a, "purchasedAt": recent.isoformat()}
        for c, a in zip(created, amounts, strict=False)
    ]
    items += [
        {"customerId": created[i]["id"], "amount": a, "purchasedAt": old.isoformat()}
        for i, a in ((3, "5000.00"), (12, "300.00"), (20, "100.00"), (6, "90.00"))
    ]
    await record_purchases(api, admin, *items)
    # Later updates move some customers up the UPDATED_AT_DESC order.
    for c in (created[5], created[17], created[0]):
        ok(
            await api.gql(admin, UPDATE_CUSTOMER, {"input": {"id": c["id"], "expectedVersion": 1, "locale": "de_DE"}}),
            "updateCustomer",
        )

    nodes = [e["node"] for e in (await api.gql(admin, ALL))["data"]["customers"]["edges"]]
    assert {n["id"] for n in nodes} == {c["id"] for c in created}
    spend = {n["id"]: _money(n["metrics"]["spend12m"]) for n in nodes}
    assert spend[created[3]["id"]] == Decimal("40.00")
    assert _money(next(n for n in nodes if n["id"] == created[3]["id"])["metrics"]["lifetimeSpend"]) == Decimal(
        "5040.00"
    )

    for order in EXPECTED_ORDER:
        value, descending = EXPECTED_ORDER[order]
        expected = [n["id"] for n in sorted(nodes, key=lambda n: (value(n), raw_id(n["id"])), reverse=descending)]
        for first in (7, 5):
            walked, sizes = await _walk(api, admin, order, first)
            assert len(walked) == len(set(walked)), f"{order}/{first}: a customer came twice"
            assert walked == expected, f"{order}/{first}: not the expected order"
            full_pages, rest = divmod(25, first)
            assert sizes == [first] * full_pages + ([rest] if rest else []), f"{order}/{first}: {sizes}"


async def test_a_cursor_resumes_after_its_row_even_when_that_row_was_deleted(api: Api) -> None:
    admin = await api.user("alice", "admin")
    created = [await create_customer(api, admin, name=f"c{i:02d}") for i in range(6)]
    first_page = (await api.gql(admin, PAGE, {"first": 3, "order": "CREATED_AT"}))["data"]["customers"]
    assert [e["node"]["id"] for e in first_page["edges"]] == [c["id"] for c in created[:3]]
    ok(
        await api.gql(admin, DELETE_CUSTOMER, {"input": {"id": created[2]["id"], "expectedVersion": 1}}),
        "deleteCustomer",
    )
    rest = await api.gql(admin, PAGE, {"first": 3, "order": "CREATED_AT", "after": first_page["pageInfo"]["endCursor"]})
    assert [e["node"]["id"] for e in rest["data"]["customers"]["edges"]] == [c["id"] for c in created[3:]]
    assert rest["data"]["customers"]["pageInfo"]["hasNextPage"] is False


async def test_total_count_counts_the_whole_filtered_list_not_the_page(api: Api) -> None:
    admin = await api.user("alice", "admin")
    for w in WORDS:
        await create_customer(api, admin, name=w)
    body = await api.gql(
        admin,
        """{
      all: customers(first: 2) { totalCount edges { node { id } } }
      alphas: customers(first: 1, filter: {nameContains: "ALPH"}) { totalCount edges { node { name } } }
      none: customers(first: 5, filter: {nameContains: "zulu"}) { totalCount edges { node { id } }
                                                                 pageInfo { hasNextPage endCursor } }
    }""",
    )
    data = body["data"]
    assert (data["all"]["totalCount"], len(data["all"]["edges"])) == (10, 2)
    assert data["alphas"]["totalCount"] == 2
    assert data["alphas"]["edges"] == [{"node": {"name": "alpha"}}]
    assert data["none"] == {"totalCount": 0, "edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}
