"""The benefit holdout over HTTP with real tokens (issue 15): off by default; set on a draft (audited) and in force
once active; upgraded customers drawn into it in the statement that moves their tier (the draw recomputed in
Python); the new tier's benefits refused to the held-out ones (WITHHELD) and given to the others; held-out
customers left out of the fairness report; the report comparing the groups checked against a hand computation,
saying when a sample is too small; who may read and set it."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from domain import holdout
from tests.api.helpers import (
    USER_ERRORS,
    create_customer,
    error_codes,
    module_api,
    ok,
    open_complaint,
    payload,
    raw_id,
    record_purchases,
)
from tests.conftest import Api

SET_HOLDOUT = f"""mutation($input: SetTierPolicyHoldoutInput!) {{ setTierPolicyHoldout(input: $input) {{
    catalogue {{ policyVersion status holdout {{ share days enabled }} }} {USER_ERRORS} }} }}"""
SET_BENEFITS = f"""mutation($input: SetTierPolicyBenefitsInput!) {{ setTierPolicyBenefits(input: $input) {{
    catalogue {{ policyVersion }} {USER_ERRORS} }} }}"""
REDEEM = f"""mutation($input: RecordBenefitRedemptionsInput!) {{ recordBenefitRedemptions(input: $input) {{
    insertedCount {USER_ERRORS} }} }}"""
REPORT = """query($tier: String!) { benefitHoldout(tier: $tier) {
    tier treated { customers complete } held { customers complete } method
    outcomes { outcome treatedMean heldMean effect ciLow ciHigh stdError treated held tooSmall note } } }"""
FAIRNESS = "{ reports { fairness { tiers { tier complaints customers } } } }"
BENEFITS = [
    {
        "code": "basic_gift",
        "name": "Welcome gift",
        "kind": "GIFT",
        "costModel": "FIXED_PER_USE",
        "costValue": "1.00",
        "tiers": ["bronze", "silver", "gold", "platinum"],
    },
    {
        "code": "silver_lounge",
        "name": "Silver lounge",
        "kind": "EVENT_ACCESS",
        "costModel": "FIXED_PER_USE",
        "costValue": "20.00",
        "tiers": ["silver", "gold", "platinum"],
    },
]
CUSTOMERS = 100  # at a share of 0.5, fewer than 30 in a group has a probability of about 4e-5


def _policy(admin: str) -> str:
    return f"""mutation($from: ID!) {{ createTierPolicyDraft(input: {{name: "{admin}", copyFrom: $from}}) {{
        policy {{ id revision }} {USER_ERRORS} }} }}"""


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


async def _held_rows(api: Api) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text(
                        "SELECT customer_id, policy_version, from_tier, to_tier, held, share, starts_at, ends_at"
                        " FROM benefit_holdouts ORDER BY customer_id"
                    )
                )
            ).all()
        )


async def _redeem(api: Api, token: str, customer: str, code: str) -> dict[str, Any]:
    return payload(
        await api.gql(token, REDEEM, {"input": {"redemptions": [{"customerId": customer, "benefitCode": code}]}}),
        "recordBenefitRedemptions",
    )


async def test_01_off_by_default_then_set_on_a_draft_and_activated(api: Api) -> None:
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token()
    active = (await api.gql(admin, "{ activeTierPolicy { id } }"))["data"]["activeTierPolicy"]["id"]
    shown = (await api.gql(admin, "{ benefitCatalogue { holdout { share days enabled } } }"))["data"]
    assert shown["benefitCatalogue"]["holdout"] == {"share": "0", "days": 0, "enabled": False}
    early = await create_customer(api, partner, name="Early Upgrade")
    await record_purchases(api, partner, {"customerId": early["id"], "amount": "600.00"})
    assert await _held_rows(api) == []  # no holdout: an upgrade draws nobody

    draft = ok(await api.gql(admin, _policy("With holdout"), {"from": active}), "createTierPolicyDraft")["policy"]
    bad = payload(
        await api.gql(
            admin, SET_HOLDOUT, {"input": {"policyId": draft["id"], "expectedRevision": 1, "share": "0.6", "days": 0}}
        ),
        "setTierPolicyHoldout",
    )
    assert [(e["field"], e["code"]) for e in bad["userErrors"]] == [("share", "INVALID")]
    half = payload(
        await api.gql(
            admin, SET_HOLDOUT, {"input": {"policyId": draft["id"], "expectedRevision": 1, "share": "0.5", "days": 0}}
        ),
        "setTierPolicyHoldout",
    )
    assert half["userErrors"][0]["message"] == "a holdout needs a share and a number of days (both 0: off)"
    # an analyst reads it, but setting it is an admin's
    analyst = await api.user("ann", "analyst")
    denied = await api.gql(
        analyst, SET_HOLDOUT, {"input": {"policyId": draft["id"], "expectedRevision": 1, "share": "0.5", "days": 30}}
    )
    assert error_codes(denied) == ["FORBIDDEN"]
    ok(
        await api.gql(
            admin,
            SET_BENEFITS,
            {"input": {"policyId": draft["id"], "expectedRevision": 1, "benefits": BENEFITS}},
        ),
        "setTierPolicyBenefits",
    )
    done = ok(
        await api.gql(
            admin, SET_HOLDOUT, {"input": {"policyId": draft["id"], "expectedRevision": 2, "share": "0.5", "days": 30}}
        ),
        "setTierPolicyHoldout",
    )
    assert done["catalogue"]["holdout"] == {"share": "0.5", "days": 30, "enabled": True}
    async with api.services.engine.connect() as conn:
        audit = (
            await conn.execute(
                text("SELECT before, after FROM audit_log WHERE action = 'tier_policy_holdout_set' ORDER BY id")
            )
        ).all()
    assert [(a.before, a.after) for a in audit] == [({"share": "0", "days": 0}, {"share": "0.5", "days": 30})]
    ok(
        await api.gql(
            admin,
            "mutation($id: ID!) { activateTierPolicy(id: $id) { userErrors { field code message } } }",
            {"id": draft["id"]},
        ),
        "activateTierPolicy",
    )
    api.policy_version = done["catalogue"]["policyVersion"]  # type: ignore[attr-defined]


async def test_02_upgrades_are_drawn_in_the_same_statement_and_audited(api: Api) -> None:
    partner, _ = await api.partner_token()
    version = api.policy_version  # type: ignore[attr-defined]
    customers = [await create_customer(api, partner, name=f"Up {n}") for n in range(CUSTOMERS)]
    await record_purchases(api, partner, *({"customerId": c["id"], "amount": "600.00"} for c in customers))
    rows = await _held_rows(api)
    assert len(rows) == CUSTOMERS  # every upgrade under the holdout is drawn, held or not
    ids = {raw_id(c["id"]) for c in customers}
    assert {r.customer_id for r in rows} == ids
    for r in rows:
        assert (r.policy_version, r.from_tier, r.to_tier, r.share) == (version, "bronze", "silver", Decimal("0.5"))
        assert r.held == holdout.held(r.customer_id, version, "silver", Decimal("0.5"))
        assert (r.ends_at - r.starts_at).days == 30
    held = sorted(str(r.customer_id) for r in rows if r.held)
    assert holdout.MIN_PER_GROUP <= len(held) <= CUSTOMERS - holdout.MIN_PER_GROUP
    async with api.services.engine.connect() as conn:
        audit = (
            await conn.execute(
                text("SELECT target_ids, after FROM audit_log WHERE action = 'benefit_holdout_assigned' ORDER BY id")
            )
        ).all()
        changes = (
            await conn.execute(
                text("SELECT count(*) FROM tier_changes WHERE change_type = 'upgrade' AND customer_id = ANY(:ids)"),
                {"ids": list(ids)},
            )
        ).scalar_one()
    assert changes == CUSTOMERS
    assert len(audit) == 1
    assert sorted(audit[0].target_ids) == sorted(str(i) for i in ids)
    assert sorted(audit[0].after["held"]) == held
    assert audit[0].after["treated"] == CUSTOMERS - len(held)
    assert (audit[0].after["share"], audit[0].after["days"]) == (0.5, 30)
    api.customers = customers  # type: ignore[attr-defined]
    api.held = {uuid.UUID(h) for h in held}  # type: ignore[attr-defined]


async def test_03_sql_draw_equals_python_over_generated_ids(api: Api) -> None:
    from infra.tiering import holdout_draw_sql

    generated = [(uuid.uuid4(), n % 7 + 1, ("silver", "gold", "x_y")[n % 3]) for n in range(500)]
    sql = (
        "SELECT " + holdout_draw_sql("CAST(c AS uuid)", "v", "t") + " AS d "
        "FROM unnest(CAST(:c AS text[]), CAST(:v AS integer[]), CAST(:t AS text[])) WITH ORDINALITY AS x(c, v, t, n)"
        " ORDER BY n"
    )
    async with api.services.engine.connect() as conn:
        got = (
            await conn.execute(
                text(sql),
                {"c": [str(g[0]) for g in generated], "v": [g[1] for g in generated], "t": [g[2] for g in generated]},
            )
        ).scalars()
        assert list(got) == [holdout.draw(*g) for g in generated]


async def test_04_withheld_benefits_are_refused_to_the_held_out_only(api: Api) -> None:
    partner, _ = await api.partner_token()
    customers = api.customers  # type: ignore[attr-defined]
    held = next(c for c in customers if raw_id(c["id"]) in api.held)  # type: ignore[attr-defined]
    treated = next(c for c in customers if raw_id(c["id"]) not in api.held)  # type: ignore[attr-defined]
    refused = await _redeem(api, partner, held["id"], "silver_lounge")
    ends = next(r.ends_at for r in await _held_rows(api) if r.customer_id == raw_id(held["id"]))
    assert refused["userErrors"] == [
        {
            "field": "redemptions[0].benefitCode",
            "code": "WITHHELD",
            "message": f"Silver lounge is withheld from this customer until {ends:%Y-%m-%d %H:%M} UTC: it was upgraded "
            "to silver into the benefit holdout that measures the tier's effect; the benefits of bronze still apply",
        }
    ]
    assert refused["insertedCount"] == 0
    assert (await _redeem(api, partner, held["id"], "basic_gift"))["insertedCount"] == 1  # bronze's still apply
    assert (await _redeem(api, partner, treated["id"], "silver_lounge"))["insertedCount"] == 1
    # upgraded again while held out: not drawn again, still held out
    await record_purchases(api, partner, *([{"customerId": held["id"], "amount": "320.00"}] * 8))
    admin = await api.user("alice", "admin")
    shown = await api.gql(admin, "query($id: ID!) { customer(id: $id) { tier { code } } }", {"id": held["id"]})
    assert shown["data"]["customer"]["tier"]["code"] == "gold"
    assert [r.to_tier for r in await _held_rows(api) if r.customer_id == raw_id(held["id"])] == ["silver"]
    assert [e["code"] for e in (await _redeem(api, partner, held["id"], "silver_lounge"))["userErrors"]] == ["WITHHELD"]


async def test_05_fairness_leaves_the_held_out_customers_out(api: Api) -> None:
    admin = await api.user("alice", "admin")
    customers = api.customers  # type: ignore[attr-defined]
    held = [c for c in customers if raw_id(c["id"]) in api.held]  # type: ignore[attr-defined]
    treated = [c for c in customers if raw_id(c["id"]) not in api.held]  # type: ignore[attr-defined]

    def silver(body: dict[str, Any]) -> dict[str, Any]:
        return next(t for t in body["data"]["reports"]["fairness"]["tiers"] if t["tier"] == "silver")

    before = silver(await api.gql(admin, FAIRNESS))
    # the held customers now in silver (one moved up to gold) are not counted among silver's customers
    async with api.services.engine.connect() as conn:
        in_silver = (
            await conn.execute(
                text("SELECT count(*) FROM customers WHERE tier_code = 'silver' AND deleted_at IS NULL"),
            )
        ).scalar_one()
        held_in_silver = (
            await conn.execute(
                text("SELECT count(*) FROM customers WHERE tier_code = 'silver' AND id = ANY(:ids)"),
                {"ids": list(api.held)},  # type: ignore[attr-defined]
            )
        ).scalar_one()
    assert before["customers"] == in_silver - held_in_silver
    await open_complaint(api, admin, held[1]["id"])
    await open_complaint(api, admin, treated[1]["id"])
    after = silver(await api.gql(admin, FAIRNESS))
    assert after["complaints"] == before["complaints"] + 1  # the treated customer's only


async def test_06_the_report_compares_the_groups(api: Api) -> None:
    partner, _ = await api.partner_token()
    analyst = await api.user("ann", "analyst")
    customers = api.customers  # type: ignore[attr-defined]
    held_ids = api.held  # type: ignore[attr-defined]
    # after the upgrade: treated customers buy more; one in four of each group buys nothing
    spend: dict[bool, list[float]] = {True: [], False: []}
    churn: dict[bool, list[float]] = {True: [], False: []}
    items = []
    regraded = next(c for c in customers if raw_id(c["id"]) in held_ids)  # bought 8 x 320.00 more in test_04
    for n, c in enumerate(customers):
        is_held = raw_id(c["id"]) in held_ids
        amount = Decimal(0) if n % 4 == 0 else Decimal(40 + n % 7 * 10 + (0 if is_held else 300))
        if amount:
            items.append({"customerId": c["id"], "amount": f"{amount}.00"})
        total = amount + (Decimal(2560) if c is regraded else 0)
        spend[is_held].append(float(total))
        churn[is_held].append(0.0 if total else 1.0)
    await record_purchases(api, partner, *items)
    body = await api.gql(analyst, REPORT, {"tier": "silver"})
    assert "errors" not in body, body
    got = body["data"]["benefitHoldout"]
    assert got["treated"] == {"customers": len(spend[False]), "complete": 0}
    assert got["held"] == {"customers": len(spend[True]), "complete": 0}
    by = {o["outcome"]: o for o in got["outcomes"]}
    for name, data, places in (("spend", spend, "0.01"), ("churn", churn, "0.0001")):
        t, h = data[False], data[True]
        effect = statistics.mean(t) - statistics.mean(h)
        se = (statistics.variance(t) / len(t) + statistics.variance(h) / len(h)) ** 0.5

        def dec(x: float, places: str = places) -> str:
            return str(Decimal(repr(x)).quantize(Decimal(places)))

        o = by[name]
        assert (o["treated"], o["held"], o["tooSmall"]) == (len(t), len(h), False)
        assert o["treatedMean"] == dec(statistics.mean(t))
        assert o["heldMean"] == dec(statistics.mean(h))
        assert o["effect"] == dec(effect)
        assert o["stdError"] == dec(se)
        assert o["ciLow"] == dec(effect - holdout.Z95 * se)
        assert o["ciHigh"] == dec(effect + holdout.Z95 * se)
    assert by["spend"]["note"] == "the interval excludes zero"
    assert by["nps"] == {
        "outcome": "nps",
        "treatedMean": None,
        "heldMean": None,
        "effect": None,
        "ciLow": None,
        "ciHigh": None,
        "stdError": None,
        "treated": 0,
        "held": 0,
        "tooSmall": True,
        "note": "sample too small to tell: 0 treated and 0 held-out customers (at least 30 in each group needed)",
    }
    gold = (await api.gql(analyst, REPORT, {"tier": "gold"}))["data"]["benefitHoldout"]
    assert (gold["treated"]["customers"], gold["held"]["customers"]) == (0, 0)
    assert all(o["tooSmall"] for o in gold["outcomes"])
    # support agents and partners do not read it
    agent = await api.user("sam", "support_agent")
    assert error_codes(await api.gql(agent, REPORT, {"tier": "silver"})) == ["FORBIDDEN"]
    assert error_codes(await api.gql(partner, REPORT, {"tier": "silver"})) == ["FORBIDDEN"]
    unknown = await api.gql(analyst, REPORT, {"tier": "diamond"})
    assert error_codes(unknown) == ["NOT_FOUND"]
