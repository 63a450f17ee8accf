"""Normalisation and validation on every write path (staff create and update, partner create and
ingest): values are stored normalised; an invalid value is a userError naming the field, and nothing
is written, not even the valid fields beside it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.api.helpers import (
    CREATE_CUSTOMER,
    RECORD_PURCHASES,
    UPDATE_CUSTOMER,
    create_customer,
    ok,
    payload,
    raw_id,
    scalar,
    snapshot,
)
from tests.conftest import Api, running_api, test_settings

READ = """query($id: ID!) { customer(id: $id) {
  name email phone nationalId birthDate externalRef address { line1 postalCode city country } } }"""


def _fields(body: dict[str, Any], name: str) -> list[str]:
    return sorted(e["field"] for e in payload(body, name)["userErrors"])


async def test_create_stores_normalised_values(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(
        api,
        admin,
        name="  Anna   Maria\tSchmidt ",
        email=" Anna.Schmidt@Example.COM ",
        phone="030 1234567",  # national form: the default region (DE) applies
        nationalId=" ab-123 456 ",
        birthDate="1990-02-28",
        externalRef="  REF-77 ",
        address={"line1": " Hauptstr.   5 ", "postalCode": " 10115", "city": "  Berlin ", "country": "de"},
    )
    got = (await api.gql(admin, READ, {"id": c["id"]}))["data"]["customer"]
    assert got == {
        "name": "Anna Maria Schmidt",
        "email": "anna.schmidt@example.com",
        "phone": "+49301234567",
        "nationalId": "AB-123 456",
        "birthDate": "1990-02-28",
        "externalRef": "REF-77",
        "address": {"line1": "Hauptstr. 5", "postalCode": "10115", "city": "Berlin", "country": "DE"},
    }


INVALID = [
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"phone": "12"}, "phone"),
    ({"phone": "+49 30"}, "phone"),
    ({"phone": "call me"}, "phone"),
    ({"birthDate": (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()}, "birthDate"),
    ({"birthDate": "1850-01-01"}, "birthDate"),
    ({"nationalId": "!"}, "nationalId"),
    ({"address": {"line1": "x"}}, "address"),
    ({"address": {"city": "Berlin", "country": "Germany"}}, "address.country"),
    ({"address": {"city": "Berlin", "country": "DE", "postalCode": "1" * 40}}, "address.postalCode"),
    ({"address": {"city": "Ber\x01lin", "country": "DE"}}, "address.city"),
    ({"name": "   "}, "name"),
    ({"name": "Bad\x07Bell"}, "name"),
    ({"name": "Zero\u200bWidth"}, "name"),
    ({"name": "12345"}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"externalRef": "R\x1b[31m"}, "externalRef"),
    ({"locale": "english"}, "locale"),
]


async def test_invalid_values_are_user_errors_and_write_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    before = await snapshot(api)
    for fields, field in INVALID:
        body = await api.gql(admin, CREATE_CUSTOMER, {"input": {"name": "Valid Name", **fields}})
        assert _fields(body, "createCustomer") == [field], fields
        assert payload(body, "createCustomer")["customer"] is None
    assert await snapshot(api) == before


async def test_every_problem_is_reported_at_once(api: Api) -> None:
    admin = await api.user("alice", "admin")
    before = await snapshot(api)
    body = await api.gql(
        admin,
        CREATE_CUSTOMER,
        {"input": {"name": "Ok Name", "email": "nope", "phone": "0", "birthDate": "2999-01-01", "nationalId": "?"}},
    )
    assert _fields(body, "createCustomer") == ["birthDate", "email", "nationalId", "phone"]
    assert await snapshot(api) == before


async def test_an_update_with_one_bad_field_changes_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    c = await create_customer(api, admin, name="Keep Me", email="keep@me.example")
    before = await snapshot(api)
    body = await api.gql(
        admin,
        UPDATE_CUSTOMER,
        {"input": {"id": c["id"], "expectedVersion": c["version"], "name": "New Name", "phone": "+1 000"}},
    )
    assert _fields(body, "updateCustomer") == ["phone"]
    assert await snapshot(api) == before
    fixed = ok(
        await api.gql(
            admin,
            UPDATE_CUSTOMER,
            {
                "input": {
                    "id": c["id"],
                    "expectedVersion": c["version"],
                    "name": " New   Name",
                    "email": "NEW@me.example",
                }
            },
        ),
        "updateCustomer",
    )["customer"]
    assert (fixed["name"], fixed["email"]) == ("New Name", "new@me.example")
    # The blind index follows the normalised value: a lookup in another spelling finds it.
    found = await api.gql(admin, '{ customers(filter: {email: " New@ME.example"}) { totalCount } }')
    assert found["data"]["customers"]["totalCount"] == 1


async def test_partner_writes_are_validated_the_same_way(api: Api) -> None:
    shop, _ = await api.partner_token("Validation Shop")
    before = await snapshot(api)
    body = await api.gql(
        shop,
        "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { customer { id } userErrors { field } } }",
        {"input": {"name": "Shop Person", "externalRef": "VS-1", "email": "x@", "birthDate": "2100-01-01"}},
    )
    assert _fields(body, "createCustomer") == ["birthDate", "email"]
    assert await snapshot(api) == before
    c = await create_customer(api, shop, name="  Shop   Person ", externalRef=" VS-1 ", phone="0171 2345678")
    assert c["name"] == "Shop Person"
    stored = await scalar(api, "SELECT external_ref FROM customers WHERE id = :c", c=raw_id(c["id"]))
    assert stored == "VS-1"
    # Ingest: purchases with impossible dates are refused, the batch writes nothing.
    bad = await api.gql(
        shop,
        RECORD_PURCHASES,
        {
            "input": {
                "purchases": [
                    {"customerExternalRef": "VS-1", "externalId": "P-1", "amount": "5.00"},
                    {"customerExternalRef": "VS-1", "amount": "5.00", "purchasedAt": "1899-12-31T00:00:00Z"},
                ]
            }
        },
    )
    assert _fields(bad, "recordPurchases") == ["purchases[1].purchasedAt"]
    assert await scalar(api, "SELECT count(*) FROM purchases") == 0


async def test_the_default_phone_region_comes_from_settings(fresh_database_url: Any) -> None:
    async with running_api(await fresh_database_url(), test_settings(default_phone_region="US")) as api:
        admin = await api.user("alice", "admin")
        c = await create_customer(api, admin, name="Sam Us", phone="(650) 253-0000")
        got = (await api.gql(admin, READ, {"id": c["id"]}))["data"]["customer"]
        assert got["phone"] == "+16502530000"
        body = await api.gql(admin, CREATE_CUSTOMER, {"input": {"name": "Sam De", "phone": "030 1234567"}})
        assert _fields(body, "createCustomer") == ["phone"]  # a German national number is not a US one
