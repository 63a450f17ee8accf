"""customerDuplicates: candidate pairs by the configured criteria, matched on blind indexes of the
normalised values (never by decrypting), within one partner, live customers only; paginated.
dismissDuplicatePair / restoreDuplicatePair: a pair marked "not a duplicate" leaves the list, its
totalCount and the data-quality report's open candidates (includeDismissed lists it, flagged) until
restored; wrong requests write nothing; both are audited and granted to data stewards and admins only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from alembic import command
from sqlalchemy import text

from infra.migrate import alembic_config, upgrade
from tests.api.helpers import (
    DELETE_CUSTOMER,
    UPDATE_CUSTOMER,
    create_customer,
    error_codes,
    ok,
    payload,
    raw_id,
    scalar,
    snapshot,
)
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


# ---------------------------------------------------------------- dismissals ("not a duplicate")

DISMISS = """mutation($c: ID!, $o: ID!, $r: String) {
  dismissDuplicatePair(customerId: $c, otherId: $o, reason: $r) {
    changed pair { reasons dismissed dismissedBy dismissedAt dismissalReason a { id } b { id } }
    userErrors { field code message } } }"""
RESTORE = """mutation($c: ID!, $o: ID!) {
  restoreDuplicatePair(customerId: $c, otherId: $o) {
    changed pair { reasons dismissed dismissedBy a { id } b { id } } userErrors { field code message } } }"""
LISTED = """query($all: Boolean) { customerDuplicates(first: 50, includeDismissed: $all) {
  totalCount edges { node { reasons dismissed dismissedBy dismissalReason a { name } b { name } } } } }"""
OPEN_COUNTS = "{ dataQualityReport { duplicatePairs duplicates { criterion pairs } } }"
ERASE = "mutation($id: ID!) { eraseCustomer(id: $id) { userErrors { code message } } }"
MERGE = "mutation($s: ID!, $d: ID!) { mergeCustomers(survivorId: $s, duplicateId: $d) { userErrors { message } } }"
UNKNOWN = "Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"  # Customer:00000000-...


def _listed(body: dict[str, Any]) -> dict[frozenset[str], dict[str, Any]]:
    assert "errors" not in body, body
    return {
        frozenset((e["node"]["a"]["name"], e["node"]["b"]["name"])): e["node"]
        for e in body["data"]["customerDuplicates"]["edges"]
    }


async def _open_counts(api: Api, token: str) -> tuple[int, dict[str, int]]:
    body = await api.gql(token, OPEN_COUNTS)
    assert "errors" not in body, body
    r = body["data"]["dataQualityReport"]
    return r["duplicatePairs"], {x["criterion"]: x["pairs"] for x in r["duplicates"]}


async def _dismissal_rows(api: Api) -> list[tuple[Any, ...]]:
    async with api.services.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT customer_a_id, customer_b_id, reason, dismissed_by FROM duplicate_dismissals ORDER BY 1, 2")
        )
        return [tuple(r) for r in rows]


async def _audit(api: Api, action: str) -> list[dict[str, Any]]:
    found = await scalar(
        api,
        "SELECT coalesce(json_agg(json_build_object('actor', actor, 'ids', target_ids, 'before', before,"
        " 'after', after) ORDER BY id), '[]') FROM audit_log WHERE action = :a",
        a=action,
    )
    return list(found)


ALMA = frozenset({"Alma Ek", "Alma E."})
CEM = frozenset({"Cem Oz", "C. Oz"})
MARY = frozenset({"Mary Major", "mary major"})


async def test_a_dismissed_pair_leaves_the_list_the_count_and_the_report_until_restored(api: Api) -> None:
    admin = await api.user("alice", "admin")
    steward = await api.user("dora", "data_steward")
    made = await _population(api, admin)
    assert await _open_counts(api, steward) == (3, {"EMAIL": 1, "PHONE": 1, "NAME_DOB": 1})

    # b before a: the pair is stored once, ordered, whichever way round it is named.
    body = await api.gql(steward, DISMISS, {"c": made["b"]["id"], "o": made["a"]["id"], "r": "shared_email"})
    done = ok(body, "dismissDuplicatePair")
    assert done["changed"] is True
    pair = done["pair"]
    assert (pair["reasons"], pair["dismissed"], pair["dismissedBy"], pair["dismissalReason"]) == (
        ["EMAIL"],
        True,
        "user:dora",
        "shared_email",
    )
    assert pair["dismissedAt"]
    a, b = sorted((raw_id(made["a"]["id"]), raw_id(made["b"]["id"])))
    assert {raw_id(pair["a"]["id"]), raw_id(pair["b"]["id"])} == {a, b}
    assert await _dismissal_rows(api) == [(a, b, "shared_email", "user:dora")]

    # Gone from the default list, its totalCount and the report's open candidates (EMAIL: none left).
    default = await api.gql(steward, LISTED)
    assert set(_listed(default)) == {CEM, MARY}
    assert default["data"]["customerDuplicates"]["totalCount"] == 2
    assert (await api.gql(steward, PAIRS, {"first": 50, "criteria": ["EMAIL"]}))["data"]["customerDuplicates"] == {
        "totalCount": 0,
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }
    assert await _open_counts(api, steward) == (2, {"EMAIL": 0, "PHONE": 1, "NAME_DOB": 1})
    # Asked for, it is listed again, flagged (and counted with the list).
    everything = await api.gql(steward, LISTED, {"all": True})
    listed = _listed(everything)
    assert everything["data"]["customerDuplicates"]["totalCount"] == 3
    assert listed[ALMA] == {
        "reasons": ["EMAIL"],
        "dismissed": True,
        "dismissedBy": "user:dora",
        "dismissalReason": "shared_email",
        "a": listed[ALMA]["a"],
        "b": listed[ALMA]["b"],
    }
    assert [listed[k]["dismissed"] for k in (CEM, MARY)] == [False, False]
    assert [listed[k]["dismissedBy"] for k in (CEM, MARY)] == [None, None]

    # Dismissing again is idempotent: nothing changes, the first dismissal (author, reason) stays, no new audit.
    again = ok(await api.gql(admin, DISMISS, {"c": made["a"]["id"], "o": made["b"]["id"]}), "dismissDuplicatePair")
    assert (again["changed"], again["pair"]["dismissed"], again["pair"]["dismissedBy"]) == (False, True, "user:dora")
    assert await _dismissal_rows(api) == [(a, b, "shared_email", "user:dora")]
    assert await _audit(api, "duplicate_pair_dismissed") == [
        {
            "actor": "user:dora",
            "ids": [str(a), str(b)],
            "before": None,
            "after": {"a": str(a), "b": str(b), "reason": "shared_email", "criteria": ["email"]},
        }
    ]

    # Restored: an open candidate again, everywhere.
    restored = ok(await api.gql(admin, RESTORE, {"c": made["a"]["id"], "o": made["b"]["id"]}), "restoreDuplicatePair")
    assert (restored["changed"], restored["pair"]["dismissed"], restored["pair"]["reasons"]) == (True, False, ["EMAIL"])
    assert await _dismissal_rows(api) == []
    back = await api.gql(steward, LISTED)
    assert set(_listed(back)) == {ALMA, CEM, MARY}
    assert back["data"]["customerDuplicates"]["totalCount"] == 3
    assert await _open_counts(api, steward) == (3, {"EMAIL": 1, "PHONE": 1, "NAME_DOB": 1})
    [audit] = await _audit(api, "duplicate_pair_restored")
    assert (audit["actor"], audit["ids"], audit["after"]) == (
        "user:alice",
        [str(a), str(b)],
        {"a": str(a), "b": str(b), "criteria": ["email"]},
    )
    assert (audit["before"]["reason"], audit["before"]["dismissed_by"]) == ("shared_email", "user:dora")
    # Restoring an open pair changes nothing and is not audited.
    twice = ok(await api.gql(admin, RESTORE, {"c": made["b"]["id"], "o": made["a"]["id"]}), "restoreDuplicatePair")
    assert twice["changed"] is False
    assert len(await _audit(api, "duplicate_pair_restored")) == 1


async def test_a_dismissed_pair_that_comes_to_match_on_another_criterion_is_a_candidate_again(api: Api) -> None:
    """A dismissal covers the criteria the pair matched on then: new evidence (the same phone too) reopens it."""
    admin = await api.user("alice", "admin")
    steward = await api.user("dora", "data_steward")
    made = await _population(api, admin)
    ok(
        await api.gql(steward, DISMISS, {"c": made["a"]["id"], "o": made["b"]["id"], "r": "shared_email"}),
        "dismissDuplicatePair",
    )
    assert await _open_counts(api, steward) == (2, {"EMAIL": 0, "PHONE": 1, "NAME_DOB": 1})

    for key in ("a", "b"):  # both get the same phone number: the pair now matches on PHONE as well
        body = await api.gql(
            admin,
            UPDATE_CUSTOMER,
            {"input": {"id": made[key]["id"], "expectedVersion": made[key]["version"], "phone": "+49 40 5550101"}},
        )
        ok(body, "updateCustomer")
    default = _listed(await api.gql(steward, LISTED))
    assert default[ALMA]["reasons"] == ["EMAIL", "PHONE"]
    assert default[ALMA]["dismissed"] is False
    assert (default[ALMA]["dismissedBy"], default[ALMA]["dismissalReason"]) == ("user:dora", "shared_email")  # history
    assert await _open_counts(api, steward) == (3, {"EMAIL": 1, "PHONE": 2, "NAME_DOB": 1})

    # Dismissed once more, now for both criteria: the dismissal is replaced (and audited again).
    again = ok(
        await api.gql(steward, DISMISS, {"c": made["b"]["id"], "o": made["a"]["id"], "r": "family_member"}),
        "dismissDuplicatePair",
    )
    assert again["changed"] is True
    assert (again["pair"]["dismissed"], again["pair"]["dismissalReason"]) == (True, "family_member")
    assert await scalar(api, "SELECT criteria FROM duplicate_dismissals") == ["email", "phone"]
    assert await _open_counts(api, steward) == (2, {"EMAIL": 0, "PHONE": 1, "NAME_DOB": 1})
    assert ALMA not in _listed(await api.gql(steward, LISTED))
    assert _listed(await api.gql(steward, LISTED, {"all": True}))[ALMA]["dismissed"] is True
    repeat = ok(
        await api.gql(steward, DISMISS, {"c": made["a"]["id"], "o": made["b"]["id"], "r": "other"}),
        "dismissDuplicatePair",
    )
    assert (repeat["changed"], repeat["pair"]["dismissalReason"]) == (False, "family_member")
    assert [a["after"]["reason"] for a in await _audit(api, "duplicate_pair_dismissed")] == [
        "shared_email",
        "family_member",
    ]


async def test_dismissals_page_with_the_cursor_and_without_a_reason(api: Api) -> None:
    admin = await api.user("alice", "admin")
    made = await _population(api, admin)
    for x, y in (("c", "d"), ("e", "f")):
        ok(await api.gql(admin, DISMISS, {"c": made[x]["id"], "o": made[y]["id"]}), "dismissDuplicatePair")
    assert _names(await api.gql(admin, PAIRS, {"first": 50})) == [(["EMAIL"], set(ALMA))]
    seen: dict[frozenset[str], bool] = {}
    after = None
    query = """query($after: String) { customerDuplicates(first: 1, after: $after, includeDismissed: true) {
      edges { node { dismissed dismissalReason a { name } b { name } } } pageInfo { hasNextPage endCursor } } }"""
    for _ in range(5):
        page = (await api.gql(admin, query, {"after": after}))["data"]["customerDuplicates"]
        assert len(page["edges"]) == 1
        for e in page["edges"]:
            seen[frozenset((e["node"]["a"]["name"], e["node"]["b"]["name"]))] = e["node"]["dismissed"]
            assert e["node"]["dismissalReason"] is None  # dismissed without a reason, or never dismissed
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == {ALMA: False, CEM: True, MARY: True}


async def test_wrong_dismissals_are_refused_and_write_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    made = await _population(api, admin)
    shop, _ = await api.partner_token("Dup Shop")
    foreign = await create_customer(api, shop, name="Alma Ek", email="alma@ek.example")
    # A tombstone (tw2, merged into tw1, is still tw3's twin) and an erased customer.
    tw1 = await create_customer(api, admin, name="Tom Twin", email="tom@twin.example")
    tw2 = await create_customer(api, admin, name="Tom Twin", email="TOM@twin.example")
    tw3 = await create_customer(api, admin, name="Tom Twin", email="tom@twin.example")
    ok(await api.gql(admin, MERGE, {"s": tw1["id"], "d": tw2["id"]}), "mergeCustomers")
    erased = await create_customer(api, admin, name="Era Sed", phone="030 1234 5678")  # shares c/d's phone
    ok(await api.gql(admin, ERASE, {"id": erased["id"]}), "eraseCustomer")
    before = await snapshot(api)

    async def refused(mutation: str, name: str, variables: dict[str, Any]) -> tuple[str, str | None, str]:
        body = await api.gql(admin, mutation, variables)
        result = payload(body, name)
        assert result["pair"] is None, result
        [error] = result["userErrors"]
        return error["code"], error["field"], error["message"]

    a, c = made["a"]["id"], made["c"]["id"]
    cases = [
        ({"c": a, "o": a}, ("INVALID", "otherId")),
        ({"c": a, "o": UNKNOWN}, ("NOT_FOUND", "otherId")),
        ({"c": UNKNOWN, "o": a}, ("NOT_FOUND", "customerId")),
        ({"c": made["gone"]["id"], "o": a}, ("NOT_FOUND", "customerId")),  # deleted
        ({"c": tw3["id"], "o": tw2["id"]}, ("CONFLICT", "otherId")),  # merged (a tombstone)
        ({"c": c, "o": erased["id"]}, ("CONFLICT", "otherId")),
        ({"c": a, "o": foreign["id"]}, ("INVALID", "otherId")),  # another partner's customer
    ]
    for variables, expected in cases:
        assert (await refused(DISMISS, "dismissDuplicatePair", variables))[:2] == expected, variables
        assert (await refused(RESTORE, "restoreDuplicatePair", variables))[:2] == expected, variables
    # Only for dismissals: not a candidate pair at all, a reason that is not a code, an id of another type.
    code, field, message = await refused(DISMISS, "dismissDuplicatePair", {"c": a, "o": made["g"]["id"]})
    assert (code, field, message) == (
        "INVALID",
        "otherId",
        "these customers are not a duplicate candidate (no criterion matches)",
    )
    code, field, message = await refused(
        DISMISS, "dismissDuplicatePair", {"c": a, "o": made["b"]["id"], "r": "they are siblings, Alma and Bo"}
    )
    assert (code, field) == ("INVALID", "reason")
    assert message.startswith("reason is one of shared_email, shared_phone,")
    assert (await refused(DISMISS, "dismissDuplicatePair", {"c": a, "o": "not-an-id"}))[1] == "otherId"

    assert await snapshot(api) == before
    assert await _dismissal_rows(api) == []
    assert await _audit(api, "duplicate_pair_dismissed") == []
    assert await _audit(api, "duplicate_pair_restored") == []


async def test_only_data_stewards_and_admins_may_dismiss_or_restore(api: Api) -> None:
    admin = await api.user("alice", "admin")
    made = await _population(api, admin)
    variables = {"c": made["a"]["id"], "o": made["b"]["id"]}
    bob = await api.user("bob", "support_agent")
    ann = await api.user("ann", "analyst")
    shop, _ = await api.partner_token()
    for token in (bob, ann, shop):
        for mutation in (DISMISS, RESTORE):
            body = await api.gql(token, mutation, variables)
            assert error_codes(body) == ["FORBIDDEN"], body
    assert await _dismissal_rows(api) == []
    steward = await api.user("dora", "data_steward")
    assert ok(await api.gql(steward, DISMISS, variables), "dismissDuplicatePair")["changed"] is True
    assert ok(await api.gql(steward, RESTORE, variables), "restoreDuplicatePair")["changed"] is True
    assert ok(await api.gql(admin, DISMISS, variables), "dismissDuplicatePair")["changed"] is True
    grants = await scalar(
        api,
        "SELECT json_agg(v0 || ' ' || v1 ORDER BY v0, v1) FROM casbin_rules"
        " WHERE ptype = 'p' AND v1 LIKE 'Mutation.%DuplicatePair' AND v2 = 'write' AND v3 = 'allow'",
    )
    assert grants == [
        "role:admin Mutation.dismissDuplicatePair",
        "role:admin Mutation.restoreDuplicatePair",
        "role:data_steward Mutation.dismissDuplicatePair",
        "role:data_steward Mutation.restoreDuplicatePair",
    ]


async def test_migration_0011_downgrades_and_upgrades(fresh_database_url: Callable[[], Awaitable[str]]) -> None:
    url = await fresh_database_url()

    async def state() -> tuple[Any, int, int]:
        conn = await asyncpg.connect(url)
        try:
            return (
                await conn.fetchval("SELECT to_regclass('duplicate_dismissals')"),
                await conn.fetchval("SELECT count(*) FROM casbin_rules WHERE v1 LIKE '%DuplicatePair'"),
                await conn.fetchval("SELECT policy_version FROM authz_state"),
            )
        finally:
            await conn.close()

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0011")  # later migrations out of the way
    table, grants, version = await state()
    assert (table, grants) == ("duplicate_dismissals", 4)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0010")
    assert (await state())[:2] == (None, 0)
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0011")
    table, grants, again = await state()
    assert (table, grants) == ("duplicate_dismissals", 4)
    assert again == version + 2
    await asyncio.to_thread(upgrade, url)  # and on to the head again
    assert (await state())[:2] == ("duplicate_dismissals", 4)
