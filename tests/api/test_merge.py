"""mergeCustomers: everything keyed by the duplicate moves to the survivor in one transaction (counted
before and after), metrics and tier follow, the duplicate stays as a tombstone that partner writes
follow, the merge is recorded and audited; wrong merges are refused and write nothing."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import (
    SUBMIT_RESPONSE,
    create_customer,
    create_nps_survey,
    error_codes,
    ok,
    open_complaint,
    payload,
    raw_id,
    record_purchases,
    scalar,
    snapshot,
)
from tests.conftest import Api

MERGE = """
mutation($s: ID!, $d: ID!, $sv: Int, $dv: Int) {
  mergeCustomers(survivorId: $s, duplicateId: $d, expectedSurvivorVersion: $sv, expectedDuplicateVersion: $dv) {
    merge { survivorId duplicateId reasons filledFields moved actor mergedAt }
    survivor { id name email phone version metrics { orderCount lifetimeSpend } tier { code } }
    userErrors { field code message }
  }
}"""
DUPLICATES = """
query($after: String) { customerDuplicates(first: 50, after: $after) {
  totalCount edges { cursor node { reasons a { id name } b { id name } } } pageInfo { hasNextPage endCursor } } }"""

KEYED = {
    "purchases": "purchases",
    "complaints": "complaints",
    "tier_changes": "tier_changes",
    "survey_responses": "survey_responses",
    "survey_invitations": "survey_invitations",
    "consent_events": "consent_events",
}


async def _counts(api: Api, customer_gid: str) -> dict[str, int]:
    cid = raw_id(customer_gid)
    return {
        name: int(await scalar(api, f"SELECT count(*) FROM {table} WHERE customer_id = :c", c=cid))
        for name, table in KEYED.items()
    }


async def _pair(api: Api, admin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    survivor = await create_customer(
        api, admin, select="id name version", name="Ada Lovelace", email="ada@analytical.example"
    )
    duplicate = await create_customer(
        api,
        admin,
        select="id name version",
        name=" Ada   Lovelace ",
        email=" ADA@Analytical.example",
        phone="+49 30 1234567",
        birthDate="1985-12-10",
    )
    return survivor, duplicate


async def test_merge_moves_everything_recomputes_and_leaves_a_tombstone(api: Api) -> None:
    admin = await api.user("alice", "admin")
    survivor, duplicate = await _pair(api, admin)
    await record_purchases(api, admin, {"customerId": survivor["id"], "amount": "100.00"})
    await record_purchases(
        api,
        admin,
        {"customerId": duplicate["id"], "amount": "250.00"},
        {"customerId": duplicate["id"], "amount": "300.00"},
    )
    await open_complaint(api, admin, duplicate["id"])
    survey = await create_nps_survey(api, admin)
    ok(
        await api.gql(
            admin,
            SUBMIT_RESPONSE,
            {
                "input": {
                    "surveyId": survey["id"],
                    "customerId": duplicate["id"],
                    "channel": "WEB",
                    "answers": [{"questionId": survey["questions"][0]["id"], "score": 9}],
                }
            },
        ),
        "submitSurveyResponse",
    )
    ok(
        await api.gql(
            admin,
            "mutation($c: ID!) { setCustomerConsent(customerId: $c, channel: SMS, given: true) { changed userErrors { message } } }",
            {"c": duplicate["id"]},
        ),
        "setCustomerConsent",
    )

    listed = (await api.gql(admin, DUPLICATES))["data"]["customerDuplicates"]
    assert listed["totalCount"] == 1
    node = listed["edges"][0]["node"]
    assert node["reasons"] == ["EMAIL"]
    assert {node["a"]["id"], node["b"]["id"]} == {survivor["id"], duplicate["id"]}

    before_s, before_d = await _counts(api, survivor["id"]), await _counts(api, duplicate["id"])
    assert before_s == {
        "purchases": 1,
        "complaints": 0,
        "tier_changes": 1,
        "survey_responses": 0,
        "survey_invitations": 0,
        "consent_events": 0,
    }
    assert before_d["purchases"] == 2
    assert before_d["complaints"] == 1
    assert before_d["survey_responses"] == 1
    assert before_d["consent_events"] == 1
    assert before_d["tier_changes"] >= 1
    dup_version = int(await scalar(api, "SELECT version FROM customers WHERE id = :c", c=raw_id(duplicate["id"])))

    body = await api.gql(
        admin, MERGE, {"s": survivor["id"], "d": duplicate["id"], "sv": survivor["version"], "dv": dup_version}
    )
    merged = ok(body, "mergeCustomers")
    assert merged["merge"]["reasons"] == ["email"]
    assert merged["merge"]["filledFields"] == ["birth_date", "phone"]
    assert merged["merge"]["moved"]["purchases"] == 2
    assert merged["merge"]["actor"] == "user:alice"
    out = merged["survivor"]
    assert out["name"] == "Ada Lovelace"
    assert out["email"] == "ada@analytical.example"
    assert out["phone"] == "+49301234567"  # filled from the duplicate (the survivor had none)
    assert out["metrics"] == {"orderCount": 3, "lifetimeSpend": "650.00"}  # recomputed in the same transaction
    assert out["tier"]["code"] == "silver"  # 650 in 12 months: the entry rule of silver holds

    after_s, after_d = await _counts(api, survivor["id"]), await _counts(api, duplicate["id"])
    assert after_d == dict.fromkeys(KEYED, 0)
    for key in KEYED:
        if key == "tier_changes":  # + the upgrade written by the recompute
            assert after_s[key] == before_s[key] + before_d[key] + 1
        else:
            assert after_s[key] == before_s[key] + before_d[key], key

    dup = raw_id(duplicate["id"])
    tomb = await scalar(
        api,
        "SELECT json_build_object('into', merged_into_id, 'at', merged_at IS NOT NULL, 'deleted', deleted_at)"
        " FROM customers WHERE id = :c",
        c=dup,
    )
    assert tomb == {"into": str(raw_id(survivor["id"])), "at": True, "deleted": None}
    assert await scalar(api, "SELECT count(*) FROM customer_merges WHERE duplicate_id = :c", c=dup) == 1
    assert await scalar(api, "SELECT count(*) FROM customer_metrics WHERE customer_id = :c", c=dup) == 0
    audit = await scalar(
        api,
        "SELECT json_agg(json_build_object('actor', actor, 'ids', target_ids, 'fields', fields))"
        " FROM audit_log WHERE action = 'customers_merged'",
    )
    assert audit == [
        {"actor": "user:alice", "ids": [str(raw_id(survivor["id"])), str(dup)], "fields": ["birth_date", "phone"]}
    ]
    # The tombstone is gone from reads and from the candidates.
    gone = await api.gql(admin, "query($id: ID!) { customer(id: $id) { id } }", {"id": duplicate["id"]})
    assert error_codes(gone) == ["NOT_FOUND"]
    assert (await api.gql(admin, DUPLICATES))["data"]["customerDuplicates"]["totalCount"] == 0


async def test_partner_writes_with_the_duplicates_ref_land_on_the_survivor(api: Api) -> None:
    admin = await api.user("alice", "admin")
    shop, _ = await api.partner_token("Merge Shop")
    s = await create_customer(api, shop, name="Grace Hopper", externalRef="MS-1", email="grace@navy.example")
    d = await create_customer(api, shop, name="Grace Hopper", externalRef="MS-2", email="GRACE@navy.example")
    ok(await api.gql(admin, MERGE, {"s": s["id"], "d": d["id"]}), "mergeCustomers")

    pushed = await record_purchases(api, shop, {"customerExternalRef": "MS-2", "externalId": "O-1", "amount": "10.00"})
    assert pushed["insertedCount"] == 1
    owner = await scalar(api, "SELECT customer_id FROM purchases WHERE external_id = 'O-1'")
    assert owner == raw_id(s["id"])
    # A complaint by customer id of the tombstone is refused like an unknown customer.
    body = await api.gql(
        shop,
        'mutation($c: ID!) { openComplaint(input: {customerId: $c, subject: "x", description: "y", '
        'category: "delivery"}) { complaint { id } userErrors { code } } }',
        {"c": d["id"]},
    )
    assert payload(body, "openComplaint")["userErrors"] == [{"code": "NOT_FOUND"}]


async def test_wrong_merges_are_refused_and_write_nothing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    survivor, duplicate = await _pair(api, admin)
    shop, _ = await api.partner_token("Other Shop")
    foreign = await create_customer(api, shop, name="Ada Lovelace", email="ada@analytical.example")
    before = await snapshot(api)

    async def refused(variables: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = payload(await api.gql(admin, MERGE, variables), "mergeCustomers")["userErrors"]
        assert errors, variables
        return errors

    assert (await refused({"s": survivor["id"], "d": survivor["id"]}))[0]["field"] == "duplicateId"
    assert (await refused({"s": survivor["id"], "d": foreign["id"]}))[0]["message"] == (
        "both customers must belong to the same partner"
    )
    stale = await refused({"s": survivor["id"], "d": duplicate["id"], "sv": survivor["version"] + 5})
    assert stale[0]["code"] == "CONFLICT"
    unknown = await refused({"s": survivor["id"], "d": "Q3VzdG9tZXI6MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw"})
    assert unknown[0]["code"] == "NOT_FOUND"
    assert await snapshot(api) == before

    ok(await api.gql(admin, MERGE, {"s": survivor["id"], "d": duplicate["id"]}), "mergeCustomers")
    again = await refused({"s": survivor["id"], "d": duplicate["id"]})
    assert again[0]["code"] == "CONFLICT"
    into_tomb = await refused({"s": duplicate["id"], "d": survivor["id"]})
    assert into_tomb[0]["code"] == "CONFLICT"


async def test_support_agents_and_partners_may_not_merge_or_list_duplicates(api: Api) -> None:
    admin = await api.user("alice", "admin")
    survivor, duplicate = await _pair(api, admin)
    bob = await api.user("bob", "support_agent")
    shop, _ = await api.partner_token()
    for token in (bob, shop):
        body = await api.gql(token, MERGE, {"s": survivor["id"], "d": duplicate["id"]})
        assert error_codes(body) == ["FORBIDDEN"], body
        assert error_codes(await api.gql(token, DUPLICATES)) == ["FORBIDDEN"]
    assert await scalar(api, "SELECT count(*) FROM customer_merges") == 0
    steward = await api.user("dora", "data_steward")
    assert (await api.gql(steward, DUPLICATES))["data"]["customerDuplicates"]["totalCount"] == 1
    ok(await api.gql(steward, MERGE, {"s": survivor["id"], "d": duplicate["id"]}), "mergeCustomers")
