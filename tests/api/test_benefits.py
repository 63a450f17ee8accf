"""Benefits with costs over HTTP with real tokens (issue 15): the catalogue versioned with the tier policy, uses
within eligibility, cost from the model at the time of use, idempotency, budgets that warn, and who sees costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.helpers import USER_ERRORS, create_customer, module_api, ok, payload, record_purchases, snapshot
from tests.conftest import Api

CATALOGUE_FIELDS = """policyVersion status comparedWithVersion
    benefits { code name kind tiers costModel costValue budget budgetPeriod } changes { code change fields }"""
SET_BENEFITS = f"""mutation($input: SetTierPolicyBenefitsInput!) {{ setTierPolicyBenefits(input: $input) {{
    catalogue {{ {CATALOGUE_FIELDS} }} {USER_ERRORS} }} }}"""
CATALOGUE = f"query($id: ID) {{ benefitCatalogue(policyId: $id) {{ {CATALOGUE_FIELDS} }} }}"
REDEEM = f"""mutation($input: RecordBenefitRedemptionsInput!) {{ recordBenefitRedemptions(input: $input) {{
    insertedCount redemptions {{ id externalId benefitCode tier orderAmount cost customer {{ id }} }}
    warnings {{ benefit tier exceeded budget spent share message }} {USER_ERRORS} }} }}"""
# what partners and support agents may read of a use (no costs, no budget figures)
REDEEM_PLAIN = f"""mutation($input: RecordBenefitRedemptionsInput!) {{ recordBenefitRedemptions(input: $input) {{
    insertedCount redemptions {{ id externalId benefitCode tier orderAmount customer {{ id }} }}
    warnings {{ benefit tier exceeded }} {USER_ERRORS} }} }}"""

BENEFITS = [
    {
        "code": "discount10",
        "name": "10 % off",
        "kind": "DISCOUNT",
        "costModel": "PERCENT_OF_ORDER",
        "costValue": "10",
        "tiers": ["silver", "gold", "platinum"],
    },
    {
        "code": "free_shipping",
        "name": "Free shipping",
        "kind": "FREE_SHIPPING",
        "costModel": "FIXED_PER_USE",
        "costValue": "4.90",
        "tiers": ["silver", "gold"],
        "budget": "10.00",
        "budgetPeriod": "MONTH",
    },
    {
        "code": "manager",
        "name": "Dedicated manager",
        "kind": "DEDICATED_MANAGER",
        "costModel": "PER_CUSTOMER_MONTH",
        "costValue": "50.00",
        "tiers": ["silver"],
    },
    {
        "code": "lounge",
        "name": "Gold lounge",
        "kind": "EVENT_ACCESS",
        "costModel": "FIXED_PER_USE",
        "costValue": "30.00",
        "tiers": ["gold", "platinum"],
    },
]


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        admin = await running.user("alice", "admin")
        active = (await running.gql(admin, "{ activeTierPolicy { id } }"))["data"]["activeTierPolicy"]["id"]
        draft = ok(
            await running.gql(
                admin,
                """mutation($from: ID!) { createTierPolicyDraft(input: {name: "With benefits", copyFrom: $from}) {
                policy { id revision } userErrors { field code message } } }""",
                {"from": active},
            ),
            "createTierPolicyDraft",
        )["policy"]
        running.draft = draft["id"]  # type: ignore[attr-defined]
        running.previous = active  # type: ignore[attr-defined]
        yield running


async def set_benefits(api: Api, token: str, benefits: list[dict[str, Any]], revision: int) -> dict[str, Any]:
    body = await api.gql(
        token,
        SET_BENEFITS,
        {"input": {"policyId": api.draft, "expectedRevision": revision, "benefits": benefits}},  # type: ignore[attr-defined]
    )
    return payload(body, "setTierPolicyBenefits")


async def test_01_the_catalogue_is_drafted_with_the_policy_and_shows_its_change(api: Api) -> None:
    admin = await api.user("alice", "admin")
    before = await snapshot(api)
    bad = await set_benefits(
        api,
        admin,
        [
            {**BENEFITS[0], "costValue": "120"},
            {**BENEFITS[1], "tiers": ["diamond"]},
            {**BENEFITS[2], "code": "Bad Code"},
            {**BENEFITS[3], "budget": "5.00"},
            {**BENEFITS[3]},
        ],
        1,
    )
    assert [(e["field"], e["code"]) for e in bad["userErrors"]] == [
        ("benefits[0].costValue", "INVALID"),
        ("benefits[1].tiers", "INVALID"),
        ("benefits[2].code", "INVALID"),
        ("benefits[3].budget", "INVALID"),
        ("benefits[4].code", "INVALID"),
    ]
    assert bad["userErrors"][1]["message"] == "the policy has no tier diamond"
    assert await snapshot(api) == before

    done = await set_benefits(api, admin, BENEFITS, 1)
    assert done["userErrors"] == []
    cat = done["catalogue"]
    assert cat["status"] == "draft"
    assert [b["code"] for b in cat["benefits"]] == ["discount10", "free_shipping", "lounge", "manager"]
    assert {c["code"]: c["change"] for c in cat["changes"]} == dict.fromkeys(
        ("discount10", "free_shipping", "lounge", "manager"), "added"
    )
    stale = await set_benefits(api, admin, BENEFITS, 1)
    assert [e["code"] for e in stale["userErrors"]] == ["CONFLICT"]

    # a second draft copied from this one starts with its benefits; changing one shows as a change
    copy = ok(
        await api.gql(
            admin,
            """mutation($from: ID!) { createTierPolicyDraft(input: {name: "Copy", copyFrom: $from}) {
            policy { id } userErrors { field code message } } }""",
            {"from": api.draft},  # type: ignore[attr-defined]
        ),
        "createTierPolicyDraft",
    )["policy"]["id"]
    copied = (await api.gql(admin, CATALOGUE, {"id": copy}))["data"]["benefitCatalogue"]
    assert copied["benefits"] == cat["benefits"]

    activated = ok(
        await api.gql(
            admin,
            "mutation($id: ID!) { activateTierPolicy(id: $id) { userErrors { field code message } } }",
            {"id": api.draft},  # type: ignore[attr-defined]
        ),
        "activateTierPolicy",
    )
    assert activated["userErrors"] == []
    active = (await api.gql(admin, CATALOGUE, {"id": None}))["data"]["benefitCatalogue"]
    assert active["status"] == "active"
    assert active["comparedWithVersion"] is not None
    assert len(active["changes"]) == 4
    # only a draft's benefits change
    again = await set_benefits(api, admin, BENEFITS[:1], 2)
    assert [e["code"] for e in again["userErrors"]] == ["ILLEGAL_TRANSITION"]
    # the copy, compared with the active policy now: one change, named
    body = await api.gql(
        admin,
        SET_BENEFITS,
        {
            "input": {
                "policyId": copy,
                "expectedRevision": 1,
                "benefits": [{**BENEFITS[0], "costValue": "12.5"}, *BENEFITS[1:]],
            }
        },
    )
    changed = ok(body, "setTierPolicyBenefits")["catalogue"]
    assert changed["changes"] == [{"code": "discount10", "change": "changed", "fields": ["cost_value"]}]


async def test_02_uses_within_eligibility_cost_from_the_model(api: Api) -> None:
    partner, _ = await api.partner_token()
    bronze = await create_customer(api, partner, name="Bo Bronze")
    silver = await create_customer(api, partner, name="Sil Silver")
    await record_purchases(api, partner, {"customerId": silver["id"], "amount": "600.00", "externalId": "p-sil"})
    before = await snapshot(api)
    refused = payload(
        await api.gql(
            partner,
            REDEEM_PLAIN,
            {
                "input": {
                    "redemptions": [{"customerId": bronze["id"], "benefitCode": "discount10", "orderAmount": "50.00"}]
                }
            },
        ),
        "recordBenefitRedemptions",
    )
    assert refused["userErrors"] == [
        {
            "field": "redemptions[0].benefitCode",
            "code": "NOT_ELIGIBLE",
            "message": "10 % off is for tier silver, gold, platinum: this customer is bronze",
        }
    ]
    gold_only = payload(
        await api.gql(
            partner, REDEEM, {"input": {"redemptions": [{"customerId": silver["id"], "benefitCode": "lounge"}]}}
        ),
        "recordBenefitRedemptions",
    )
    assert [e["code"] for e in gold_only["userErrors"]] == ["NOT_ELIGIBLE"]
    no_order = payload(
        await api.gql(
            partner, REDEEM, {"input": {"redemptions": [{"customerId": silver["id"], "benefitCode": "discount10"}]}}
        ),
        "recordBenefitRedemptions",
    )
    assert [(e["field"], e["code"]) for e in no_order["userErrors"]] == [("redemptions[0].orderAmount", "INVALID")]
    unknown = payload(
        await api.gql(
            partner, REDEEM, {"input": {"redemptions": [{"customerId": silver["id"], "benefitCode": "spa"}]}}
        ),
        "recordBenefitRedemptions",
    )
    assert [e["code"] for e in unknown["userErrors"]] == ["NOT_FOUND"]
    assert await snapshot(api) == before

    items = [
        {"customerId": silver["id"], "benefitCode": "discount10", "orderAmount": "199.99", "externalId": "u-1"},
        {"customerId": silver["id"], "benefitCode": "manager", "externalId": "u-2"},
        {"customerId": silver["id"], "benefitCode": "manager", "externalId": "u-3"},
    ]
    done = ok(await api.gql(partner, REDEEM_PLAIN, {"input": {"redemptions": items}}), "recordBenefitRedemptions")
    assert done["insertedCount"] == 3
    # a partner does not read costs (financial): asked for, they are refused field by field; the admin reads them
    costs = await api.gql(partner, REDEEM, {"input": {"redemptions": items}})
    assert [r["cost"] for r in costs["data"]["recordBenefitRedemptions"]["redemptions"]] == [None, None, None]
    assert {e["extensions"]["code"] for e in costs["errors"]} == {"FORBIDDEN_FIELD"}
    admin = await api.user("alice", "admin")
    replay = ok(await api.gql(admin, REDEEM, {"input": {"redemptions": items}}), "recordBenefitRedemptions")
    assert replay["insertedCount"] == 3  # the admin is another writer: its own external ids
    assert [r["cost"] for r in replay["redemptions"]] == ["20.00", "0.00", "0.00"]  # the month is charged already
    assert [r["tier"] for r in replay["redemptions"]] == ["silver"] * 3

    before = await snapshot(api)
    same = ok(await api.gql(partner, REDEEM_PLAIN, {"input": {"redemptions": items}}), "recordBenefitRedemptions")
    assert same["insertedCount"] == 0
    assert [r["id"] for r in same["redemptions"]] == [r["id"] for r in done["redemptions"]]
    other = payload(
        await api.gql(partner, REDEEM_PLAIN, {"input": {"redemptions": [{**items[0], "orderAmount": "10.00"}]}}),
        "recordBenefitRedemptions",
    )
    assert other["userErrors"][0]["code"] == "CONFLICT"
    assert await snapshot(api) == before


async def test_03_budgets_warn_before_they_are_exceeded(api: Api) -> None:
    partner, _ = await api.partner_token()
    analyst = await api.user("carol", "analyst")
    support = await api.user("bob", "support_agent")
    customer = await create_customer(api, partner, name="Bud Get")
    await record_purchases(api, partner, {"customerId": customer["id"], "amount": "700.00", "externalId": "p-bud"})

    def use(n: int) -> dict[str, Any]:
        return {
            "input": {
                "redemptions": [{"customerId": customer["id"], "benefitCode": "free_shipping", "externalId": f"s-{n}"}]
            }
        }

    first = ok(await api.gql(support, REDEEM_PLAIN, use(1)), "recordBenefitRedemptions")  # staff record uses too
    assert first["warnings"] == []
    # support agents see a budget run out, not its figures (asked for, they are refused field by field)
    second = await api.gql(support, REDEEM, use(2))
    warnings = second["data"]["recordBenefitRedemptions"]["warnings"]
    assert [(w["benefit"], w["tier"], w["exceeded"], w["spent"]) for w in warnings] == [
        ("free_shipping", "silver", False, None)
    ]
    assert {e["extensions"]["code"] for e in second["errors"]} == {"FORBIDDEN_FIELD"}
    # an analyst may not record uses, and reads the figures
    refused = await api.gql(analyst, REDEEM, use(3))
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    admin = await api.user("alice", "admin")
    third = ok(await api.gql(admin, REDEEM, use(3)), "recordBenefitRedemptions")
    assert third["warnings"] == [
        {
            "benefit": "free_shipping",
            "tier": "silver",
            "exceeded": True,
            "budget": "10.00",
            "spent": "14.70",
            "share": "1.4700",
            "message": "budget of free_shipping for tier silver exceeded: 14.70 of 10.00 (147.0%)",
        }
    ]


async def test_04_who_sees_the_catalogue_and_its_costs(api: Api) -> None:
    partner, _ = await api.partner_token()
    analyst = await api.user("carol", "analyst")
    for token, costs in ((partner, False), (await api.user("bob", "support_agent"), False), (analyst, True)):
        body = await api.gql(token, "{ benefitCatalogue { benefits { code tiers costModel costValue budget } } }")
        benefits = body["data"]["benefitCatalogue"]["benefits"]
        assert [b["code"] for b in benefits] == ["discount10", "free_shipping", "lounge", "manager"]
        assert (benefits[1]["costValue"] == "4.90") is costs, body
        codes = {e["extensions"]["code"] for e in body.get("errors") or []}
        assert codes == (set() if costs else {"FORBIDDEN_FIELD"})
    other, _ = await api.partner_token("Southwind Traders")
    theirs = await create_customer(api, other, name="Tess Theirs")
    refused = payload(
        await api.gql(
            partner, REDEEM, {"input": {"redemptions": [{"customerId": theirs["id"], "benefitCode": "manager"}]}}
        ),
        "recordBenefitRedemptions",
    )
    assert refused["userErrors"] == [
        {"field": "redemptions[0].customerId", "code": "NOT_FOUND", "message": "no such customer"}
    ]
    denied = await api.gql(
        partner,
        SET_BENEFITS,
        {"input": {"policyId": api.draft, "expectedRevision": 1, "benefits": BENEFITS}},  # type: ignore[attr-defined]
    )
    assert [e["extensions"]["code"] for e in denied["errors"]] == ["FORBIDDEN"]


async def test_05_simulating_a_policy_projects_the_benefit_cost_of_its_moves(api: Api) -> None:
    """The copy raises the discount from 10 % to 12.5 %. Over the last 90 days (3 months) the two silver customers
    used: the discount on 2 x 199.99 of orders, free shipping 3 times at 4.90, the manager in 1 customer-month at 50;
    nobody was eligible for the gold lounge. Per silver customer and month: now 0.10 x 399.98 / 6 + 3 x 4.90 / 6 +
    50 / 6 = 17.4497, simulated 0.125 x 399.98 / 6 + 2.45 + 8.3333 = 19.1162; two silver customers stay silver."""
    admin = await api.user("alice", "admin")
    policies = (await api.gql(admin, "{ tierPolicies { id name status } }"))["data"]["tierPolicies"]
    copy = next(p["id"] for p in policies if p["name"] == "Copy")
    body = await api.gql(
        admin,
        """query($id: ID!) { simulateTierPolicy(draftId: $id) { changing benefitCost { lookbackDays monthlyNow
        monthlyAtActivation monthlyEventual changeAtActivation rates { tier now simulated } unobservedBenefits } } }""",
        {"id": copy},
    )
    assert "errors" not in body, body
    sim = body["data"]["simulateTierPolicy"]
    assert sim["changing"] == 0
    assert sim["benefitCost"] == {
        "lookbackDays": 90,
        "monthlyNow": "34.90",
        "monthlyAtActivation": "38.23",
        "monthlyEventual": "38.23",
        "changeAtActivation": "3.33",
        "rates": [
            {"tier": "gold", "now": "9.12", "simulated": "10.78"},
            {"tier": "platinum", "now": "6.67", "simulated": "8.33"},
            {"tier": "silver", "now": "17.45", "simulated": "19.12"},
        ],
        "unobservedBenefits": ["lounge"],
    }
