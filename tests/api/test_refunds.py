"""Refunds and returns over HTTP with real tokens (issue 15): partial and full, never more than is left,
idempotent on the writer's external id, partner-confined, and followed in the same transaction by metrics,
tier (with the refund's hysteresis and its word in the tier history) and churn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.api.helpers import (
    USER_ERRORS,
    create_customer,
    module_api,
    ok,
    payload,
    raw_id,
    record_purchases,
    scalar,
    snapshot,
)
from tests.conftest import Api

RECORD_REFUNDS = f"""mutation($input: RecordRefundsInput!) {{ recordRefunds(input: $input) {{
    insertedCount refunds {{ id externalId purchaseId amount reason refundedAt customer {{ id }} }} {USER_ERRORS} }} }}"""


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


async def refund(api: Api, token: str, *items: dict[str, Any]) -> dict[str, Any]:
    return await api.gql(token, RECORD_REFUNDS, {"input": {"refunds": list(items)}})


async def buyer(api: Api, token: str, name: str, amount: str, ext: str) -> tuple[str, str]:
    """A customer with one purchase: (customer id, purchase id)."""
    customer = await create_customer(api, token, name=name)
    bought = await record_purchases(api, token, {"customerId": customer["id"], "amount": amount, "externalId": ext})
    return customer["id"], bought["purchases"][0]["id"]


async def metrics(api: Api, customer: str) -> tuple[Any, ...]:
    async with api.services.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT m.lifetime_spend, m.spend_12m, m.order_count, m.orders_12m, c.tier_code "
                    "FROM customer_metrics m JOIN customers c ON c.id = m.customer_id WHERE c.id = :id"
                ),
                {"id": raw_id(customer)},
            )
        ).one()
    return tuple(row)


async def test_partial_then_full_refund_follow_metrics_and_stop_at_what_was_paid(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer, purchase = await buyer(api, partner, "Rita Refund", "600.00", "p-rita")
    assert await metrics(api, customer) == (600, 600, 1, 1, "silver")

    first = ok(
        await refund(api, partner, {"purchaseId": purchase, "amount": "150.50", "externalId": "r-1"}), "recordRefunds"
    )
    assert first["insertedCount"] == 1
    assert first["refunds"][0]["amount"] == "150.50"
    assert first["refunds"][0]["customer"]["id"] == customer
    assert await metrics(api, customer) == (449.5, 449.5, 1, 1, "silver")

    before = await snapshot(api)
    too_much = payload(await refund(api, partner, {"purchaseId": purchase, "amount": "449.51"}), "recordRefunds")
    assert too_much["userErrors"] == [
        {
            "field": "refunds[0].amount",
            "code": "INVALID",
            "message": "at most 449.50 can be refunded (paid 600.00, refunded before 150.50)",
        }
    ]
    assert await snapshot(api) == before

    # without an amount: all that is left; the purchase no longer counts as an order
    rest = ok(
        await refund(api, partner, {"purchaseId": purchase, "externalId": "r-2", "reason": "changed_mind"}),
        "recordRefunds",
    )
    assert rest["refunds"][0]["amount"] == "449.50"
    assert await metrics(api, customer) == (0, 0, 0, 0, "silver")  # the tier waits: see the hysteresis test
    again = payload(await refund(api, partner, {"purchaseId": purchase, "amount": "1.00"}), "recordRefunds")
    assert again["userErrors"][0]["message"] == "the purchase of 600.00 is refunded in full already"


async def test_external_id_replay_has_one_effect_and_other_content_is_a_conflict(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer, purchase = await buyer(api, partner, "Ivo Idem", "100.00", "p-ivo")
    item = {"purchaseId": purchase, "amount": "10.00", "externalId": "r-ivo"}
    first = ok(await refund(api, partner, item), "recordRefunds")
    before = await snapshot(api)
    replay = ok(await refund(api, partner, item), "recordRefunds")
    assert replay["insertedCount"] == 0
    assert replay["refunds"] == first["refunds"]
    assert await snapshot(api) == before
    # the same id twice in one batch is one refund too
    twice = ok(await refund(api, partner, item, item), "recordRefunds")
    assert [r["id"] for r in twice["refunds"]] == [first["refunds"][0]["id"]] * 2

    other = payload(await refund(api, partner, {**item, "amount": "11.00"}), "recordRefunds")
    assert other["userErrors"] == [
        {
            "field": "refunds[0].externalId",
            "code": "CONFLICT",
            "message": "externalId already used with other content (differs in amount)",
        }
    ]
    assert await snapshot(api) == before
    # a new id twice in one batch with other content: the second item is the conflict, nothing is written
    fresh = {**item, "externalId": "r-ivo-2"}
    clash = payload(await refund(api, partner, fresh, {**fresh, "amount": "12.00"}), "recordRefunds")
    assert [(e["field"], e["code"]) for e in clash["userErrors"]] == [("refunds[1].externalId", "CONFLICT")]
    assert await snapshot(api) == before
    assert await scalar(api, "SELECT sum(amount) FROM refunds WHERE external_id = 'r-ivo'") == 10
    assert (await metrics(api, customer))[0] == 90


async def test_a_bad_item_writes_nothing_of_the_batch(api: Api) -> None:
    partner, _ = await api.partner_token()
    _, purchase = await buyer(api, partner, "Bea Batch", "50.00", "p-bea")
    before = await snapshot(api)
    body = payload(
        await refund(
            api,
            partner,
            {"purchaseId": purchase, "amount": "5.00", "externalId": "r-bea-1"},
            {"purchaseId": purchase, "amount": "-1", "externalId": "r-bea-2"},
            {"purchaseId": purchase, "amount": "1.001"},
            {"amount": "1.00"},
            {"purchaseId": purchase, "refundedAt": "2999-01-01T00:00:00Z"},
            {"purchaseId": purchase, "amount": "46.00"},  # 5 + 46 > 50
            {"purchaseId": purchase, "amount": "1.00", "reason": "my husband John broke it"},  # a code only
        ),
        "recordRefunds",
    )
    assert [(e["field"], e["code"]) for e in body["userErrors"]] == [
        ("refunds[1].amount", "INVALID"),
        ("refunds[2].amount", "INVALID"),
        ("refunds[3].purchaseId", "INVALID"),
        ("refunds[4].refundedAt", "INVALID"),
        ("refunds[6].reason", "INVALID"),
    ]
    body = payload(
        await refund(
            api,
            partner,
            {"purchaseId": purchase, "amount": "5.00", "externalId": "r-bea-1"},
            {"purchaseId": purchase, "amount": "46.00"},
        ),
        "recordRefunds",
    )
    assert [(e["field"], e["code"]) for e in body["userErrors"]] == [("refunds[1].amount", "INVALID")]
    assert "at most 45.00" in body["userErrors"][0]["message"]
    assert await snapshot(api) == before


async def test_a_partner_refunds_only_its_own_customers_purchases(api: Api) -> None:
    north, _ = await api.partner_token("Northwind Shop")
    south, _ = await api.partner_token("Southwind Traders")
    _, purchase = await buyer(api, north, "Nora North", "80.00", "p-nora")
    before = await snapshot(api)
    stolen = payload(await refund(api, south, {"purchaseId": purchase, "amount": "1.00"}), "recordRefunds")
    assert stolen["userErrors"] == [
        {"field": "refunds[0].purchaseId", "code": "NOT_FOUND", "message": "no such purchase"}
    ]
    # its own external ids name only its own purchases
    by_ext = payload(await refund(api, south, {"purchaseExternalId": "p-nora", "amount": "1.00"}), "recordRefunds")
    assert by_ext["userErrors"][0]["code"] == "NOT_FOUND"
    malformed = payload(await refund(api, south, {"purchaseId": "not-an-id", "amount": "1.00"}), "recordRefunds")
    assert malformed["userErrors"][0]["code"] == "NOT_FOUND"
    assert await snapshot(api) == before
    own = ok(await refund(api, north, {"purchaseExternalId": "p-nora", "amount": "1.00"}), "recordRefunds")
    assert own["insertedCount"] == 1


async def test_staff_roles_refund_as_granted(api: Api) -> None:
    partner, _ = await api.partner_token()
    _, purchase = await buyer(api, partner, "Sam Staff", "30.00", "p-sam")
    admin = await api.user("alice", "admin")
    before = await snapshot(api)
    for user, role in (("bob", "support_agent"), ("carol", "analyst"), ("dave", "marketing")):
        token = await api.user(user, role)
        body = await refund(api, token, {"purchaseId": purchase, "amount": "1.00"})
        assert body["data"]["recordRefunds"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], role
    assert await snapshot(api) == before
    done = ok(
        await refund(api, admin, {"purchaseId": purchase, "amount": "2.00", "externalId": "r-staff"}), "recordRefunds"
    )
    assert done["insertedCount"] == 1
    assert await scalar(api, "SELECT actor FROM refunds WHERE external_id = 'r-staff'") == "user:alice"


async def test_support_agents_see_refunds_without_amounts(api: Api) -> None:
    partner, _ = await api.partner_token()
    customer = await create_customer(api, partner, name="Una Unseen")
    admin = await api.user("alice", "admin")
    support = await api.user("bob", "support_agent")
    bought = await record_purchases(
        api, partner, {"customerId": customer["id"], "amount": "20.00", "externalId": "p-una"}
    )
    body = await refund(api, admin, {"purchaseId": bought["purchases"][0]["id"], "amount": "3.00"})
    assert ok(body, "recordRefunds")["refunds"][0]["amount"] == "3.00"
    seen = await api.gql(support, '{ viewer { fieldAccess(type: "Refund") { field access } } }')
    access = {f["field"]: f["access"] for f in seen["data"]["viewer"]["fieldAccess"]}
    assert access["Refund.amount"] == "DENIED"
    assert access["Refund.reason"] == "FULL"


async def test_a_refund_never_flips_a_tier_twice_in_a_day_and_says_so_in_the_history(api: Api) -> None:
    """Under a policy with no grace and no minimum stay, a purchase lifts a customer to silver; refunds the
    same day start the grace period (history: after a refund) but do not move it down before tomorrow."""
    admin = await api.user("alice", "admin")
    active = (await api.gql(admin, "{ activeTierPolicy { id } }"))["data"]["activeTierPolicy"]["id"]
    draft = ok(
        await api.gql(
            admin,
            """mutation($from: ID!) { createTierPolicyDraft(input: {name: "No grace", copyFrom: $from,
            graceDays: 0, minStayDays: 0}) { policy { id } userErrors { field code message } } }""",
            {"from": active},
        ),
        "createTierPolicyDraft",
    )["policy"]["id"]
    ok(
        await api.gql(
            admin, "mutation($id: ID!) { activateTierPolicy(id: $id) { userErrors { code } } }", {"id": draft}
        ),
        "activateTierPolicy",
    )
    partner, _ = await api.partner_token()
    customer, purchase = await buyer(api, partner, "Hanna Hysteresis", "600.00", "p-hanna")
    assert (await metrics(api, customer))[4] == "silver"
    ok(await refund(api, partner, {"purchaseId": purchase, "amount": "300.00"}), "recordRefunds")
    ok(await refund(api, partner, {"purchaseId": purchase, "amount": "100.00"}), "recordRefunds")
    assert (await metrics(api, customer))[4] == "silver"
    async with api.services.engine.connect() as conn:
        history = (
            await conn.execute(
                text("SELECT change_type, to_tier, reason FROM tier_changes WHERE customer_id = :id ORDER BY id"),
                {"id": raw_id(customer)},
            )
        ).all()
    assert [(h.change_type, h.to_tier) for h in history] == [
        ("initial", "bronze"),
        ("upgrade", "silver"),
        ("grace", "silver"),
    ]
    assert history[2].reason.endswith(" after a refund")
    assert "after a refund" not in history[1].reason
    # a purchase (not a refund) is decided under the policy as it is: no minimum stay, grace over
    await record_purchases(api, partner, {"customerId": customer, "amount": "1.00"})
    assert (await metrics(api, customer))[4] == "bronze"
