"""The economics report over HTTP with real tokens (issue 15): every figure checked against a hand computation on
a small data set, the CSV form, who may read it, a partner-scoped caller's own customers only, bad input."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from tests.api.helpers import (
    USER_ERRORS,
    create_customer,
    create_nps_survey,
    module_api,
    ok,
    open_complaint,
    raw_id,
    record_purchases,
)
from tests.conftest import Api

REPORT = """query($from: DateTime!, $to: DateTime!, $hourly: Decimal, $survey: Decimal) {
  tierEconomics(from: $from, to: $to, hourlyServiceCost: $hourly, surveyCost: $survey) {
    hourlyServiceCost surveyCost tierBasis csv
    rows { tier rank customers revenue refunds netRevenue benefitUses benefitCost complaints complaintHours
           surveyResponses serviceCost contribution contributionPerCustomer againstTierBelow } } }"""
NOW = dt.datetime.now(dt.UTC)
PERIOD = {"from": (NOW - dt.timedelta(days=1)).isoformat(), "to": (NOW + dt.timedelta(hours=1)).isoformat()}


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    """Two silver and two bronze customers of one partner, with purchases, a refund, two benefit uses, a complaint
    handled for two hours and one survey response; nothing else in the database."""
    async with module_api(template_db) as running:
        admin = await running.user("alice", "admin")
        active = (await running.gql(admin, "{ activeTierPolicy { id } }"))["data"]["activeTierPolicy"]["id"]
        draft = ok(
            await running.gql(
                admin,
                """mutation($from: ID!) { createTierPolicyDraft(input: {name: "Priced", copyFrom: $from}) {
                policy { id } userErrors { field code message } } }""",
                {"from": active},
            ),
            "createTierPolicyDraft",
        )["policy"]["id"]
        benefits = [
            {"code": "ship", "name": "Free shipping", "kind": "FREE_SHIPPING", "costModel": "FIXED_PER_USE",
             "costValue": "5.00", "tiers": ["silver"]},
            {"code": "off10", "name": "10 % off", "kind": "DISCOUNT", "costModel": "PERCENT_OF_ORDER",
             "costValue": "10", "tiers": ["silver"]},
        ]  # fmt: skip
        ok(
            await running.gql(
                admin,
                f"""mutation($input: SetTierPolicyBenefitsInput!) {{ setTierPolicyBenefits(input: $input) {{
                catalogue {{ policyVersion }} {USER_ERRORS} }} }}""",
                {"input": {"policyId": draft, "expectedRevision": 1, "benefits": benefits}},
            ),
            "setTierPolicyBenefits",
        )
        ok(
            await running.gql(
                admin, "mutation($id: ID!) { activateTierPolicy(id: $id) { userErrors { code } } }", {"id": draft}
            ),
            "activateTierPolicy",
        )
        partner, _ = await running.partner_token()
        a = await create_customer(running, partner, name="Ann Silver")
        b = await create_customer(running, partner, name="Ben Silver")
        c = await create_customer(running, partner, name="Cid Bronze")
        await create_customer(running, partner, name="Dot Bronze")
        bought = await record_purchases(
            running,
            partner,
            {"customerId": a["id"], "amount": "600.00", "externalId": "e-a"},
            {"customerId": b["id"], "amount": "550.00", "externalId": "e-b"},
            {"customerId": c["id"], "amount": "100.00", "externalId": "e-c"},
        )
        ok(
            await running.gql(
                partner,
                f"""mutation($input: RecordRefundsInput!) {{ recordRefunds(input: $input) {{ insertedCount {USER_ERRORS} }} }}""",
                {"input": {"refunds": [{"purchaseId": bought["purchases"][0]["id"], "amount": "100.00"}]}},
            ),
            "recordRefunds",
        )
        ok(
            await running.gql(
                partner,
                f"""mutation($input: RecordBenefitRedemptionsInput!) {{ recordBenefitRedemptions(input: $input) {{
                insertedCount {USER_ERRORS} }} }}""",
                {
                    "input": {
                        "redemptions": [
                            {"customerId": a["id"], "benefitCode": "ship"},
                            {"customerId": a["id"], "benefitCode": "off10", "orderAmount": "200.00"},
                        ]
                    }
                },
            ),
            "recordBenefitRedemptions",
        )
        complaint = await open_complaint(running, partner, b["id"])
        # handled for exactly two hours: times set here so that the figure does not depend on the clock
        async with running.services.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE complaints SET status = 'resolved', opened_at = now() - interval '3 hours',"
                    " resolved_at = now() - interval '1 hour' WHERE id = :id"
                ),
                {"id": raw_id(complaint["id"])},
            )
        survey = await create_nps_survey(running, admin)
        ok(
            await running.gql(
                partner,
                f"""mutation($input: SubmitSurveyResponseInput!) {{ submitSurveyResponse(input: $input) {{
                response {{ id }} {USER_ERRORS} }} }}""",
                {
                    "input": {
                        "surveyId": survey["id"],
                        "customerId": c["id"],
                        "channel": "WEB",
                        "answers": [{"questionId": survey["questions"][0]["id"], "score": 9}],
                    }
                },
            ),
            "submitSurveyResponse",
        )
        yield running


def rows_by_tier(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert "errors" not in body, body
    return {r["tier"]: r for r in body["data"]["tierEconomics"]["rows"]}


async def test_every_figure_matches_the_hand_computation(api: Api) -> None:
    analyst = await api.user("carol", "analyst")
    body = await api.gql(analyst, REPORT, {**PERIOD, "hourly": "40.00", "survey": "0.50"})
    rows = rows_by_tier(body)
    # silver: Ann 600 - 100 refunded, shipping 5.00 + 10 % of 200; Ben 550, a complaint of 2 h at 40.00
    assert rows["silver"] == {
        "tier": "silver", "rank": 1, "customers": 2, "revenue": "1150.00", "refunds": "100.00",
        "netRevenue": "1050.00", "benefitUses": 2, "benefitCost": "25.00", "complaints": 1, "complaintHours": "2.00",
        "surveyResponses": 0, "serviceCost": "80.00", "contribution": "945.00", "contributionPerCustomer": "472.50",
        "againstTierBelow": "422.75",
    }  # fmt: skip
    # bronze: Cid 100 and one survey at 0.50; Dot nothing
    assert rows["bronze"] == {
        "tier": "bronze", "rank": 0, "customers": 2, "revenue": "100.00", "refunds": "0.00", "netRevenue": "100.00",
        "benefitUses": 0, "benefitCost": "0.00", "complaints": 0, "complaintHours": "0.00", "surveyResponses": 1,
        "serviceCost": "0.50", "contribution": "99.50", "contributionPerCustomer": "49.75", "againstTierBelow": None,
    }  # fmt: skip
    # tiers without customers are listed, without per-customer figures
    assert rows["gold"]["customers"] == 0
    assert rows["gold"]["contributionPerCustomer"] is None
    assert [r["tier"] for r in body["data"]["tierEconomics"]["rows"]] == ["platinum", "gold", "silver", "bronze"]
    report = body["data"]["tierEconomics"]
    lines = report["csv"].split("\r\n")
    assert lines[0] == (
        "tier,customers,revenue,refunds,net_revenue,benefit_uses,benefit_cost,complaints,complaint_hours,"
        "survey_responses,service_cost,contribution,contribution_per_customer,against_tier_below"
    )
    assert lines[3] == "silver,2,1150.00,100.00,1050.00,2,25.00,1,2.00,0,80.00,945.00,472.50,422.75"
    assert lines[4] == "bronze,2,100.00,0.00,100.00,0,0.00,0,0.00,1,0.50,99.50,49.75,"


async def test_costs_default_to_the_settings(api: Api) -> None:
    analyst = await api.user("carol", "analyst")
    body = await api.gql(analyst, REPORT, PERIOD)
    report = body["data"]["tierEconomics"]
    hourly, survey = api.settings.service_hourly_cost, api.settings.survey_cost
    assert (report["hourlyServiceCost"], report["surveyCost"]) == (str(hourly), str(survey))
    assert rows_by_tier(body)["silver"]["serviceCost"] == str((2 * hourly).quantize(hourly.__class__("0.01")))


async def test_a_period_without_the_events_counts_customers_only(api: Api) -> None:
    analyst = await api.user("carol", "analyst")
    body = await api.gql(analyst, REPORT, {"from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"})
    rows = rows_by_tier(body)
    assert rows["silver"]["customers"] == 2
    assert rows["silver"]["revenue"] == "0.00"
    assert rows["silver"]["contribution"] == "0.00"


async def test_bad_input_is_refused(api: Api) -> None:
    analyst = await api.user("carol", "analyst")
    for variables in (
        {"from": PERIOD["to"], "to": PERIOD["from"]},
        {"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        {**PERIOD, "hourly": "-1"},
        {**PERIOD, "survey": "1e9"},
        {"from": "2020-01-01T00:00:00", "to": "2020-02-01T00:00:00"},
    ):
        body = await api.gql(analyst, REPORT, variables)
        assert body["data"] is None or body["data"]["tierEconomics"] is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"], body


async def test_only_analysts_and_admins_read_it_and_a_partner_scope_holds(api: Api) -> None:
    for user, role in (("bob", "support_agent"), ("dave", "marketing")):
        body = await api.gql(await api.user(user, role), REPORT, PERIOD)
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], role
    partner, _ = await api.partner_token()
    assert [e["extensions"]["code"] for e in (await api.gql(partner, REPORT, PERIOD))["errors"]] == ["FORBIDDEN"]
    admin = await api.user("alice", "admin")
    assert rows_by_tier(await api.gql(admin, REPORT, PERIOD))["silver"]["customers"] == 2
    # a partner token given the analyst role sees its own partner's customers only
    other, _ = await api.partner_token("Southwind Traders", role="analyst")
    rows = rows_by_tier(await api.gql(other, REPORT, PERIOD))
    assert {t: r["customers"] for t, r in rows.items()} == {"platinum": 0, "gold": 0, "silver": 0, "bronze": 0}


EFFECT = """query($tier: String!, $window: Int!, $start: DateTime, $bandwidth: Decimal) {
  tierEffect(tier: $tier, windowDays: $window, start: $start, bandwidth: $bandwidth) {
    tier threshold start end windowDays bandwidth method
    outcomes { outcome effect ciLow ciHigh stdError below above tooSmall note } } }"""


async def test_the_effect_counts_customers_near_the_threshold_and_says_when_too_few(api: Api) -> None:
    """Silver asks for 500 of spend: with a bandwidth of 125, customers with 375 < spend < 625 before the start take
    part (net of refunds made before it); six are far too few to tell."""
    partner, _ = await api.partner_token("Eastwind Effects")
    start = NOW - dt.timedelta(days=30)
    before = (start - dt.timedelta(days=10)).isoformat()
    after = (start + dt.timedelta(days=5)).isoformat()
    spends = {"e1": "400.00", "e2": "450.00", "e3": "480.00", "e4": "520.00", "e5": "550.00", "e6": "600.00"}
    spends |= {"far": "300.00", "refunded": "560.00"}
    ids = {}
    for name, amount in spends.items():
        customer = await create_customer(api, partner, name=f"Eff {name}")
        ids[name] = customer["id"]
        bought = await record_purchases(
            api, partner, {"customerId": customer["id"], "amount": amount, "purchasedAt": before, "externalId": name}
        )
        if name == "refunded":  # 560 - 100 refunded before the start: 460, below
            ok(
                await api.gql(
                    partner,
                    f"""mutation($input: RecordRefundsInput!) {{ recordRefunds(input: $input) {{
                    insertedCount {USER_ERRORS} }} }}""",
                    {
                        "input": {
                            "refunds": [
                                {"purchaseId": bought["purchases"][0]["id"], "amount": "100.00", "refundedAt": before}
                            ]
                        }
                    },
                ),
                "recordRefunds",
            )
    await record_purchases(api, partner, {"customerId": ids["e5"], "amount": "80.00", "purchasedAt": after})
    analyst, _ = await api.partner_token("Eastwind Effects", role="analyst")  # its own customers only
    body = await api.gql(analyst, EFFECT, {"tier": "silver", "window": 30, "start": start.isoformat()})
    assert "errors" not in body, body
    effect = body["data"]["tierEffect"]
    assert (effect["threshold"], effect["bandwidth"], effect["windowDays"]) == ("500", "125", 30)
    assert effect["method"].startswith("sharp local-linear regression discontinuity")
    assert [o["outcome"] for o in effect["outcomes"]] == ["spend", "churn", "nps"]
    spend = effect["outcomes"][0]
    assert (spend["below"], spend["above"], spend["tooSmall"], spend["effect"]) == (4, 3, True, None)
    assert spend["note"] == (
        "sample too small to tell: 4 customers below and 3 above the threshold within the bandwidth "
        "(at least 30 on each side needed)"
    )
    nps = effect["outcomes"][2]
    assert (nps["below"], nps["above"]) == (0, 0)  # no survey answers in the window


async def test_the_effect_needs_a_threshold_and_good_input(api: Api) -> None:
    analyst = await api.user("carol", "analyst")
    base = await api.gql(analyst, EFFECT, {"tier": "bronze", "window": 90})
    assert base["data"]["tierEffect"]["outcomes"] == []
    assert base["data"]["tierEffect"]["method"] == (
        "the entry rule of bronze has no spend threshold: there is no threshold to compare around"
    )
    for variables in (
        {"tier": "diamond", "window": 90},
        {"tier": "silver", "window": 3},
        {"tier": "silver", "window": 90, "start": NOW.isoformat()},
        {"tier": "silver", "window": 90, "bandwidth": "0"},
    ):
        body = await api.gql(analyst, EFFECT, variables)
        assert body["data"]["tierEffect"] is None, body
        assert [e["extensions"]["code"] for e in body["errors"]] in (["BAD_USER_INPUT"], ["NOT_FOUND"]), body
    support = await api.user("bob", "support_agent")
    refused = await api.gql(support, EFFECT, {"tier": "silver", "window": 90})
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
