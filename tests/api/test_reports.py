"""Complaint analytics and the fairness report over GraphQL (issue 5): on a hand-checked data set,
recomputed with direct SQL, on the seeded demo data, and behind their grants.

The data set: customers b1-b4 bronze, s1-s2 silver, p1 platinum; complaints (medium severity) opened
on 3 March 2025 10:00 UTC, their clocks set with SQL:

    K1 b1 delivery  answered after 2 h, resolved after 10 h of which 1 h waiting on the customer, cause partner
    K2 b2 delivery  answered after 4 h, resolved after 20 h (reopened once on the way), cause partner
    K3 b3 billing   answered after 9 h (bronze x medium: 8 h allowed), not resolved: breached
    P1 p1 delivery  answered after 30 min, resolved after 3 h, cause partner
    S1 s1 billing   answered after 1 h, resolved after 5 h, cause process

NPS survey: b1, b2 and p1 invited; b1 answered 3, p1 answered 10.

By hand: bronze medians 240 min (2, 4, 9 h) and 870 min (9 h and 20 h), breach rate 1/3; platinum 30 min,
180 min, 0. Ratios bronze/platinum: 8 and 4.8333. Complaints per 1 000 customers: bronze delivery 2 of 4
customers = 500, bronze billing 250, silver billing 1 of 2 = 500, platinum delivery 1000. Root causes:
partner 3 (75 %), process 1 (25 %). Reopen rate: bronze 1 of 2, overall 1 of 4.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from demo.seed import seed
from domain import sla
from infra.repos.clocks import breached_sql
from tests.api.helpers import (
    SUBMIT_RESPONSE,
    TRANSITION_COMPLAINT,
    create_customer,
    create_nps_survey,
    error_codes,
    module_api,
    ok,
    open_complaint,
    raw_id,
    record_purchases,
)
from tests.conftest import Api

OPENED = dt.datetime(2025, 3, 3, 10, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
RESOLVE = {"to": "RESOLVED", "assignee": "bob", "resolutionCode": "fix"}
FAIRNESS = """query($from: DateTime, $to: DateTime) { reports { fairness(from: $from, to: $to) {
  lowestTier highestTier
  tiers { tier rank complaints complaintsWithSla breachedComplaints medianFirstResponseMinutes
          medianResolutionMinutes slaBreachRate customers customersInvited customersAnswered invitedShare
          answeredShare npsAnswers nps }
  comparisons { measure lowest highest ratio difference } } } }"""
ANALYTICS = """query($from: DateTime, $to: DateTime, $tier: String) { reports {
  complaints(from: $from, to: $to, tier: $tier, topRootCauses: 5) {
    perThousandCustomers { tier category complaints customers perThousand }
    topRootCauses { code label complaints sharePercent }
    reopenRates { tier overall resolved reopened reopens rate } } } }"""
CHURN = "{ reports { churnRisk { levels { tier level customers meanScore } signals { code customers } } } }"


async def _sql(api: Api, sql: str, **params: Any) -> list[Any]:
    async with api.services.engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def set_clock(
    api: Api, complaint: str, *, responded: float, resolved: float | None = None, paused: float = 0
) -> None:
    """Open at OPENED, answered and resolved that many hours later; the deadlines keep their offsets."""
    await _sql(
        api,
        "UPDATE complaints SET"
        " first_response_due_at = CAST(:opened AS timestamptz) + (first_response_due_at - opened_at),"
        " resolution_due_at = CAST(:opened AS timestamptz) + (resolution_due_at - opened_at)"
        "     + make_interval(secs => :paused),"
        " opened_at = :opened, first_responded_at = :responded, resolved_at = :resolved,"
        " paused_seconds = :paused, paused_since = NULL,"
        " first_response_breached = false, resolution_breached = false WHERE id = :id",
        opened=OPENED,
        responded=OPENED + responded * H,
        resolved=OPENED + resolved * H if resolved is not None else None,
        paused=int(paused * 3600),
        id=raw_id(complaint),
    )


@dataclass
class World:
    admin: str
    analyst: str
    marketing: str


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


@pytest.fixture(scope="module")
async def world(api: Api) -> World:
    admin = await api.user("alice", "admin")
    spend = {
        "b1": "10.00",
        "b2": "10.00",
        "b3": "10.00",
        "b4": "10.00",
        "s1": "600.00",
        "s2": "600.00",
        "p1": "9500.00",
    }
    ids = {}
    for name, amount in spend.items():
        ids[name] = (await create_customer(api, admin, name=f"Customer {name}"))["id"]
        await record_purchases(api, admin, {"customerId": ids[name], "amount": amount})

    async def complaint(who: str, category: str, steps: list[dict[str, Any]]) -> str:
        c = await open_complaint(api, admin, ids[who], category=category)
        for version, step in enumerate(steps, start=1):
            ok(
                await api.gql(
                    admin, TRANSITION_COMPLAINT, {"input": {"id": c["id"], "expectedVersion": version, **step}}
                ),
                "transitionComplaint",
            )
        return str(c["id"])

    opened = {"to": "OPEN", "assignee": "bob"}
    k1 = await complaint(
        "b1", "delivery", [opened, {"to": "PENDING_CUSTOMER"}, {"to": "OPEN"}, {**RESOLVE, "rootCauseCode": "partner"}]
    )
    k2 = await complaint(
        "b2",
        "delivery",
        [opened, {**RESOLVE, "rootCauseCode": "partner"}, {"to": "OPEN"}, {**RESOLVE, "rootCauseCode": "partner"}],
    )
    k3 = await complaint("b3", "billing", [opened])
    p1 = await complaint("p1", "delivery", [opened, {**RESOLVE, "rootCauseCode": "partner"}])
    s1 = await complaint("s1", "billing", [opened, {**RESOLVE, "rootCauseCode": "process"}])
    await set_clock(api, k1, responded=2, resolved=10, paused=1)
    await set_clock(api, k2, responded=4, resolved=20)
    await set_clock(api, k3, responded=9)
    await set_clock(api, p1, responded=0.5, resolved=3)
    await set_clock(api, s1, responded=1, resolved=5)

    marketing = await api.user("dave", "marketing")
    survey = await create_nps_survey(api, admin)
    ok(
        await api.gql(
            marketing,
            """mutation($input: InviteToSurveyInput!) { inviteToSurvey(input: $input) {
        userErrors { message } } }""",
            {"input": {"surveyId": survey["id"], "customerIds": [ids["b1"], ids["b2"], ids["p1"]]}},
        ),
        "inviteToSurvey",
    )
    for who, score in (("b1", 3), ("p1", 10)):
        ok(
            await api.gql(
                admin,
                SUBMIT_RESPONSE,
                {
                    "input": {
                        "surveyId": survey["id"],
                        "customerId": ids[who],
                        "channel": "WEB",
                        "answers": [{"questionId": survey["questions"][0]["id"], "score": score}],
                    }
                },
            ),
            "submitSurveyResponse",
        )
    return World(admin, await api.user("carol", "analyst"), marketing)


async def report(api: Api, token: str, query: str, **variables: Any) -> dict[str, Any]:
    body = await api.gql(token, query, variables)
    assert "errors" not in body, body
    reports: dict[str, Any] = body["data"]["reports"]
    return reports


# ---------------------------------------------------------------- fairness


async def test_fairness_puts_the_tiers_side_by_side(api: Api, world: World) -> None:
    got = (await report(api, world.analyst, FAIRNESS))["fairness"]
    assert (got["lowestTier"], got["highestTier"]) == ("bronze", "platinum")
    tiers = {t["tier"]: t for t in got["tiers"]}
    assert [t["tier"] for t in got["tiers"]] == ["bronze", "silver", "gold", "platinum"]
    assert tiers["bronze"] == {
        "tier": "bronze",
        "rank": 0,
        "complaints": 3,
        "complaintsWithSla": 3,
        "breachedComplaints": 1,
        "medianFirstResponseMinutes": 240.0,
        "medianResolutionMinutes": 870.0,
        "slaBreachRate": 0.3333,
        "customers": 4,
        "customersInvited": 2,
        "customersAnswered": 1,
        "invitedShare": 0.5,
        "answeredShare": 0.25,
        "npsAnswers": 1,
        "nps": -100.0,
    }
    assert tiers["platinum"] == {
        "tier": "platinum",
        "rank": 3,
        "complaints": 1,
        "complaintsWithSla": 1,
        "breachedComplaints": 0,
        "medianFirstResponseMinutes": 30.0,
        "medianResolutionMinutes": 180.0,
        "slaBreachRate": 0.0,
        "customers": 1,
        "customersInvited": 1,
        "customersAnswered": 1,
        "invitedShare": 1.0,
        "answeredShare": 1.0,
        "npsAnswers": 1,
        "nps": 100.0,
    }
    assert (tiers["silver"]["medianFirstResponseMinutes"], tiers["silver"]["medianResolutionMinutes"]) == (60.0, 300.0)
    assert (tiers["gold"]["complaints"], tiers["gold"]["medianFirstResponseMinutes"], tiers["gold"]["nps"]) == (
        0,
        None,
        None,
    )
    assert {c["measure"]: (c["lowest"], c["highest"], c["ratio"], c["difference"]) for c in got["comparisons"]} == {
        "medianFirstResponseMinutes": (240.0, 30.0, 8.0, 210.0),
        "medianResolutionMinutes": (870.0, 180.0, 4.8333, 690.0),
        "slaBreachRate": (0.3333, 0.0, None, 0.3333),
        "invitedShare": (0.5, 1.0, 0.5, -0.5),
        "answeredShare": (0.25, 1.0, 0.25, -0.75),
        "nps": (-100.0, 100.0, -1.0, -200.0),
    }


async def test_the_range_bounds_complaints_and_survey_coverage(api: Api, world: World) -> None:
    march = {"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"}
    tiers = {t["tier"]: t for t in (await report(api, world.analyst, FAIRNESS, **march))["fairness"]["tiers"]}
    assert (tiers["bronze"]["complaints"], tiers["bronze"]["customersInvited"], tiers["bronze"]["npsAnswers"]) == (
        3,
        0,
        0,
    )  # the invitations and answers are of today
    later = {"from": "2025-04-01T00:00:00Z"}
    tiers = {t["tier"]: t for t in (await report(api, world.analyst, FAIRNESS, **later))["fairness"]["tiers"]}
    assert (tiers["bronze"]["complaints"], tiers["bronze"]["customersInvited"]) == (0, 2)


async def test_fairness_agrees_with_direct_sql(api: Api, world: World) -> None:
    """Medians from the raw clocks through domain/sla.py, breach rates through infra/repos/clocks.py's definition."""
    raw = await _sql(api, "SELECT tier_at_open, " + ", ".join(sla.CLOCK_FIELDS) + " FROM complaints")
    by_tier: dict[str, list[sla.Clock]] = {}
    for row in raw:
        by_tier.setdefault(row[0], []).append(sla.Clock(*row[1:]))
    got = {t["tier"]: t for t in (await report(api, world.analyst, FAIRNESS))["fairness"]["tiers"]}
    for tier, clocks in by_tier.items():
        first = [s for c in clocks if (s := sla.first_response_seconds(c)) is not None]
        work = [s for c in clocks if (s := sla.resolution_work_seconds(c)) is not None]
        assert got[tier]["medianFirstResponseMinutes"] == round(statistics.median(first) / 60, 2)
        assert got[tier]["medianResolutionMinutes"] == round(statistics.median(work) / 60, 2)
        breached = await _sql(
            api, f"SELECT count(*) FILTER (WHERE {breached_sql('k')}) FROM complaints k WHERE tier_at_open = '{tier}'"
        )
        assert got[tier]["slaBreachRate"] == round(breached[0][0] / len(clocks), 4)


# ---------------------------------------------------------------- complaint analytics


async def test_complaint_rates_root_causes_and_reopen_rates(api: Api, world: World) -> None:
    got = (await report(api, world.analyst, ANALYTICS))["complaints"]
    rates = {
        (r["tier"], r["category"]): (r["complaints"], r["customers"], r["perThousand"])
        for r in got["perThousandCustomers"]
    }
    assert rates[("bronze", "delivery")] == (2, 4, 500.0)
    assert rates[("bronze", "billing")] == (1, 4, 250.0)
    assert rates[("bronze", "website")] == (0, 4, 0.0)  # the grid has its zeros
    assert rates[("silver", "billing")] == (1, 2, 500.0)
    assert rates[("platinum", "delivery")] == (1, 1, 1000.0)
    assert rates[("gold", "delivery")] == (0, 0, None)  # no gold customers
    assert len(rates) == 4 * 6
    assert got["topRootCauses"] == [
        {"code": "partner", "label": "Partner or carrier", "complaints": 3, "sharePercent": 75.0},
        {"code": "process", "label": "Process gap", "complaints": 1, "sharePercent": 25.0},
    ]
    assert got["reopenRates"] == [
        {"tier": "bronze", "overall": False, "resolved": 2, "reopened": 1, "reopens": 1, "rate": 0.5},
        {"tier": "silver", "overall": False, "resolved": 1, "reopened": 0, "reopens": 0, "rate": 0.0},
        {"tier": "platinum", "overall": False, "resolved": 1, "reopened": 0, "reopens": 0, "rate": 0.0},
        {"tier": None, "overall": True, "resolved": 4, "reopened": 1, "reopens": 1, "rate": 0.25},
    ]
    bronze = (await report(api, world.analyst, ANALYTICS, tier="bronze"))["complaints"]["topRootCauses"]
    assert [(r["code"], r["complaints"], r["sharePercent"]) for r in bronze] == [("partner", 2, 100.0)]
    empty = (await report(api, world.analyst, ANALYTICS, **{"from": "2025-04-01T00:00:00Z"}))["complaints"]
    assert {r["complaints"] for r in empty["perThousandCustomers"]} == {0}
    assert empty["topRootCauses"] == []


async def test_complaint_rates_agree_with_direct_sql(api: Api, world: World) -> None:
    counts = await _sql(
        api,
        "SELECT k.tier_at_open, k.category_code, count(*),"
        " (SELECT count(*) FROM customers c WHERE c.tier_code = k.tier_at_open AND c.deleted_at IS NULL)"
        " FROM complaints k GROUP BY 1, 2",
    )
    got = (await report(api, world.analyst, ANALYTICS))["complaints"]["perThousandCustomers"]
    nonzero = {(r["tier"], r["category"]): r["perThousand"] for r in got if r["complaints"]}
    assert nonzero == {(t, c): round(1000 * n / customers, 2) for t, c, n, customers in counts}


# ---------------------------------------------------------------- access


async def test_aggregates_need_their_own_grant(api: Api, world: World) -> None:
    body = await api.gql(
        world.marketing,
        "{ reports { complaints { topRootCauses { code } } fairness { lowestTier } churnRisk { levels { level } } } }",
    )
    assert sorted(e["path"][-1] for e in body["errors"]) == ["complaints", "fairness"]
    assert set(error_codes(body)) == {"FORBIDDEN_FIELD"}
    assert body["data"]["reports"]["churnRisk"] is not None  # marketing: survey results and churn
    agent = await api.user("bob", "support_agent")
    partner, _ = await api.partner_token()
    for token in (agent, partner):
        denied = await api.gql(token, FAIRNESS)
        assert error_codes(denied) == ["FORBIDDEN"]
        assert denied["data"] == {"reports": None}
    admin_body = await api.gql(world.admin, FAIRNESS)
    assert "errors" not in admin_body


# ---------------------------------------------------------------- the demo data


async def test_the_reports_answer_on_the_seeded_demo_data(fresh_database_url: Any) -> None:
    from tests.conftest import running_api

    async with running_api(await fresh_database_url()) as api:
        await seed(api.services.engine, customers=150, progress=False)
        analyst = await api.user("carol", "analyst")
        everything = """{ reports {
          complaints { perThousandCustomers { tier complaints } topRootCauses { code complaints }
                       reopenRates { tier overall resolved reopened rate } }
          surveyScores(metric: NPS, groupBy: [TIER]) { tier answers score invitations responseRate }
          csat: surveyScores(metric: CSAT, groupBy: [SURVEY, CHANNEL]) { survey { title } channel score }
          fairness { tiers { tier complaints slaBreachRate nps } comparisons { measure ratio } }
          churnRisk { levels { tier level customers } signals { code customers } } } }"""
        got = await report(api, analyst, everything)
        complaints = await _sql(api, "SELECT count(*) FROM complaints WHERE tier_at_open IS NOT NULL")
        assert sum(r["complaints"] for r in got["complaints"]["perThousandCustomers"]) == complaints[0][0]
        [overall] = [r for r in got["complaints"]["reopenRates"] if r["overall"]]
        reopen = await _sql(
            api,
            "SELECT count(*) FILTER (WHERE status IN ('resolved', 'closed') OR reopen_count > 0),"
            " count(*) FILTER (WHERE reopen_count > 0) FROM complaints",
        )
        assert (overall["resolved"], overall["reopened"]) == tuple(reopen[0])
        nps_rows = await _sql(
            api,
            "SELECT r.tier_at_response, count(*), round(100.0 * (count(*) FILTER (WHERE a.score >= 9)"
            " - count(*) FILTER (WHERE a.score <= 6)) / count(*), 2) FROM survey_answers a"
            " JOIN survey_responses r ON r.id = a.response_id JOIN survey_questions q ON q.id = a.question_id"
            " WHERE q.kind = 'nps' GROUP BY 1",
        )
        assert {r["tier"]: (r["answers"], r["score"]) for r in got["surveyScores"] if r["answers"]} == {
            t: (n, float(s)) for t, n, s in nps_rows
        }
        assert all(r["invitations"] > 0 for r in got["surveyScores"])  # the seeded invitations carry their tier
        assert {r["survey"]["title"] for r in got["csat"]} == {"Post-resolution CSAT", "Delivery experience"}
        assert [t["tier"] for t in got["fairness"]["tiers"]] == ["bronze", "silver", "gold", "platinum"]
        assert len(got["fairness"]["comparisons"]) == 6
        scored = await _sql(api, "SELECT count(*) FROM churn_scores")
        assert sum(r["customers"] for r in got["churnRisk"]["levels"]) == scored[0][0] == 150
        assert {r["level"] for r in got["churnRisk"]["levels"]} <= {"green", "yellow", "red"}
