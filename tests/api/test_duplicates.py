"""customerDuplicates: candidate pairs by the configured criteria, matched on blind indexes of the
normalised values (never by decrypting), within one partner, live customers only; paginated."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import DELETE_CUSTOMER, create_customer, error_codes, ok
from tests.conftest import Api, running_api, test_settings

PAIRS = """query($first: Int!, $after: String, $criteria: [DuplicateCriterion!]) {
  customerDuplicates(first: $first, after: $after, criteria: $criteria) {
    totalCount edges { cursor node { reasons a { name } b { name } } } pageInfo { hasNextPage endCursor } } }"""


async def _population(api: Api, admin: str) -> dict[str, dict[str, Any]]:
    made = {}
    specs = {
        "a": {"name": "Alma Ek", "email": "alma@ek.example"},
        "b": {"name": "Alma E.", "email": "  ALMA@EK.example "},  # same e-mail, other case and spacing
        "c": {"name": "Cem Oz", "phone": "030 1234 5678"},
        "d": {"name": "C. Oz", "phone": "+49 30 12345678"},  # same number, national vs international form
        "e": {"name": "Mary  Major", "birthDate": "1990-01-01"},
        "f": {"name": "mary major", "birthDate": "1990-01-01"},  # same name (case, spaces) and birth date
        "g": {"name": "Mary Major", "birthDate": "1991-01-01"},  # another birth date: not a duplicate
        "h": {"name": "Nia Id", "nationalId": "X-1234-Y", "email": "nia@one.example"},
        "i": {"name": "Nia Id2", "nationalId": "x-1234-y", "email": "nia@two.example"},
        "gone": {"name": "Alma Gone", "email": "alma@ek.example"},  # deleted below: not a candidate
    }
    for key, fields in specs.items():
        made[key] = await create_customer(api, admin, select="id name version", **fields)
    ok(
        await api.gql(
            admin, DELETE_CUSTOMER, {"input": {"id": made["gone"]["id"], "expectedVersion": made["gone"]["version"]}}
        ),
        "deleteCustomer",
    )
    shop, _ = await api.partner_token("Dup Shop")
    await create_customer(api, shop, name="Alma Ek", email="alma@ek.example")  # another partner: not paired
    return made


def _names(body: dict[str, Any]) -> list[tuple[list[str], set[str]]]:
    assert "errors" not in body, body
    return sorted(
        (e["node"]["reasons"], {e["node"]["a"]["name"], e["node"]["b"]["name"]})
        for e in body["data"]["customerDuplicates"]["edges"]
    )


async def test_pairs_by_default_criteria_paginated(api: Api) -> None:
    admin = await api.user("alice", "admin")
    await _population(api, admin)
    body = await api.gql(admin, PAIRS, {"first": 50})
    assert body["data"]["customerDuplicates"]["totalCount"] == 3
    assert _names(body) == [
        (["EMAIL"], {"Alma Ek", "Alma E."}),
        (["NAME_DOB"], {"Mary Major", "mary major"}),
        (["PHONE"], {"Cem Oz", "C. Oz"}),
    ]
    seen: list[tuple[list[str], set[str]]] = []
    after = None
    for _ in range(5):
        page = await api.gql(admin, PAIRS, {"first": 1, "after": after})
        seen += _names(page)
        info = page["data"]["customerDuplicates"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert sorted(seen) == _names(body)
    only_phone = await api.gql(admin, PAIRS, {"first": 50, "criteria": ["PHONE"]})
    assert _names(only_phone) == [(["PHONE"], {"Cem Oz", "C. Oz"})]
    bad = await api.gql(admin, PAIRS, {"first": 5, "after": "not-a-cursor"})
    assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_criteria_come_from_settings(api: Api) -> None:
    admin = await api.user("alice", "admin")
    await _population(api, admin)
    settings = test_settings(duplicate_criteria="national_id, email")
    async with running_api(api.url, settings) as other:
        body = await other.gql(admin, PAIRS, {"first": 50})
    assert _names(body) == [(["EMAIL"], {"Alma Ek", "Alma E."}), (["NATIONAL_ID"], {"Nia Id", "Nia Id2"})]
    with pytest.raises(ValueError, match="unknown shoe_size"):
        test_settings(duplicate_criteria="email,shoe_size")


async def test_a_pair_matching_on_several_criteria_is_listed_once(api: Api) -> None:
    admin = await api.user("alice", "admin")
    for name in ("Ola Nor", "Ola  NOR"):
        await create_customer(
            api, admin, name=name, email="ola@nor.example", phone="+4930555555", birthDate="1970-05-05"
        )
    body = await api.gql(admin, PAIRS, {"first": 10})
    assert body["data"]["customerDuplicates"]["totalCount"] == 1
    assert _names(body) == [(["EMAIL", "NAME_DOB", "PHONE"], {"Ola Nor", "Ola NOR"})]
