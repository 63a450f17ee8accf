"""Surveys over HTTP (issue 5): invitations with the per-customer throttle and consent, one response
per customer, and the scores report (NPS, CSAT, CES with responses and response rates) on a
hand-checked data set, also recomputed from the raw answers with direct SQL.

The data set (8 customers; c1-c3 silver, c4-c8 bronze; c1-c4 consented to e-mail):

survey A (periodic; e-mail, web, SMS): all 8 invited on 5 Jan 2025 (c1-c4 by e-mail, c5-c8 on the web)
    NPS      c1 10, c2 9, c3 7 (answered 10 Jan) | c4 6, c5 3, c6 10 (answered 10 Feb); c7, c8 silent
    CSAT     c1 5, c2 4, c3 3, c4 2, c5 1, c6 4
    CES      c1 7, c2 5, c3 4, c5 1, c6 6 (c4 skipped the optional question)
survey B (manual; web, in-app): c1, c2, c7 invited on 15 Feb 2025 (in-app); c1 and c7 answered on 20 Feb
    NPS      c1 8, c7 0
    CSAT     c1 4, c7 2

By hand: NPS of A = (3 promoters - 2 detractors) / 6 = 16.67; of both surveys = (3 - 3) / 8 = 0; by
tier at response, silver (10, 9, 7, 8) = 50 and bronze (6, 3, 10, 0) = -50. CSAT of A = 3 of 6 = 50;
CES of A = 3 of 5 = 60. Response rate: A 6 of 8, B 2 of 3, both 8 of 11.

Invitations and responses are tested on a second database, so the scores stay hand-checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from domain.surveys import nps
from tests.api.helpers import (
    CREATE_SURVEY,
    SUBMIT_RESPONSE,
    USER_ERRORS,
    create_customer,
    error_codes,
    global_id,
    module_api,
    ok,
    payload,
    raw_id,
    record_purchases,
)
from tests.conftest import Api, running_api

INVITE = f"""mutation($input: InviteToSurveyInput!) {{ inviteToSurvey(input: $input) {{
  invitations {{ id channel trigger tierAtInvitation customer {{ id }} survey {{ id }} }}
  skipped {{ customerId reason }} {USER_ERRORS} }} }}"""
SCORES = """query($metric: ScoreMetric!, $groupBy: [ScoreGroup!], $period: ReportPeriod! = MONTH,
                  $from: DateTime, $to: DateTime, $surveyId: ID) {
  reports { surveyScores(metric: $metric, groupBy: $groupBy, period: $period, from: $from, to: $to,
                         surveyId: $surveyId) {
    surveyId tier channel dimension periodStart responses answers positive negative score invitations
    answeredInvitations responseRate } } }"""


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc]


@dataclass
class Data:
    admin: str
    marketing: str
    analyst: str
    c: list[str]  # customer ids, c[1]..c[8] (c[0] unused)
    a: dict[str, Any]
    b: dict[str, Any]


async def _survey(api: Api, token: str, title: str, channels: list[str], trigger: str, questions: list[Any]) -> Any:
    body = await api.gql(
        token,
        CREATE_SURVEY,
        {"input": {"title": title, "channels": channels, "trigger": trigger, "questions": questions}},
    )
    survey = ok(body, "createSurvey")["survey"]
    survey["q"] = {q["kind"]: q["id"] for q in survey["questions"]}
    return survey


async def _answer(api: Api, token: str, survey: Any, customer: str, channel: str, **scores: int) -> str:
    answers = [{"questionId": survey["q"][kind.upper()], "score": s} for kind, s in scores.items()]
    body = await api.gql(
        token,
        SUBMIT_RESPONSE,
        {"input": {"surveyId": survey["id"], "customerId": customer, "channel": channel, "answers": answers}},
    )
    return str(ok(body, "submitSurveyResponse")["response"]["id"])


async def _sql(api: Api, sql: str, **params: Any) -> list[Any]:
    async with api.services.engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


@pytest.fixture(scope="module")
async def data(api: Api) -> Data:
    admin = await api.user("alice", "admin")
    marketing = await api.user("dave", "marketing")
    analyst = await api.user("carol", "analyst")
    c = [""]
    for n in range(1, 9):
        c.append((await create_customer(api, admin, name=f"Customer {n}", email=f"c{n}@example.com"))["id"])
    await record_purchases(api, admin, *[{"customerId": c[n], "amount": "600.00"} for n in (1, 2, 3)])
    await record_purchases(api, admin, *[{"customerId": c[n], "amount": "20.00"} for n in range(4, 9)])
    await _sql(
        api,
        "UPDATE customers SET consent_email_at = now() WHERE id = ANY(:ids)",
        ids=[raw_id(c[n]) for n in (1, 2, 3, 4)],
    )
    a = await _survey(
        api,
        admin,
        "Relationship",
        ["EMAIL", "WEB", "SMS"],
        "PERIODIC",
        [
            {"kind": "NPS", "dimension": "loyalty", "prompt": "Recommend us?"},
            {"kind": "CSAT", "dimension": "service", "prompt": "Service?"},
            {"kind": "CES", "dimension": "effort", "prompt": "Easy?", "required": False},
            {"kind": "TEXT", "dimension": "comment", "prompt": "Why?", "required": False},
        ],
    )
    b = await _survey(
        api,
        admin,
        "Delivery",
        ["WEB", "IN_APP"],
        "MANUAL",
        [
            {"kind": "NPS", "dimension": "loyalty", "prompt": "Recommend us?"},
            {"kind": "CSAT", "dimension": "delivery", "prompt": "Delivery?"},
        ],
    )
    invited = ok(
        await api.gql(marketing, INVITE, {"input": {"surveyId": a["id"], "customerIds": c[1:]}}), "inviteToSurvey"
    )
    assert [(i["customer"]["id"], i["channel"], i["tierAtInvitation"]) for i in invited["invitations"]] == [
        *[(c[n], "EMAIL", "silver") for n in (1, 2, 3)],
        (c[4], "EMAIL", "bronze"),
        *[(c[n], "WEB", "bronze") for n in (5, 6, 7, 8)],
    ]
    answers_a = {1: (10, 5, 7), 2: (9, 4, 5), 3: (7, 3, 4), 4: (6, 2, None), 5: (3, 1, 1), 6: (10, 4, 6)}
    for n, (n_score, csat, ces) in answers_a.items():
        extra = {"ces": ces} if ces is not None else {}
        await _answer(api, admin, a, c[n], "EMAIL" if n <= 4 else "WEB", nps=n_score, csat=csat, **extra)
    await _sql(
        api, "UPDATE survey_invitations SET sent_at = :at WHERE survey_id = :s", at=utc(2025, 1, 5), s=raw_id(a["id"])
    )
    for n, at in (
        (1, utc(2025, 1, 10)),
        (2, utc(2025, 1, 10)),
        (3, utc(2025, 1, 10)),
        (4, utc(2025, 2, 10)),
        (5, utc(2025, 2, 10)),
        (6, utc(2025, 2, 10)),
    ):
        await _sql(
            api,
            "UPDATE survey_responses SET submitted_at = :at WHERE survey_id = :s AND customer_id = :c",
            at=at,
            s=raw_id(a["id"]),
            c=raw_id(c[n]),
        )
    ok(
        await api.gql(marketing, INVITE, {"input": {"surveyId": b["id"], "customerIds": [c[1], c[2], c[7]]}}),
        "inviteToSurvey",
    )
    await _answer(api, admin, b, c[1], "IN_APP", nps=8, csat=4)
    await _answer(api, admin, b, c[7], "IN_APP", nps=0, csat=2)
    await _sql(
        api, "UPDATE survey_invitations SET sent_at = :at WHERE survey_id = :s", at=utc(2025, 2, 15), s=raw_id(b["id"])
    )
    await _sql(
        api,
        "UPDATE survey_responses SET submitted_at = :at WHERE survey_id = :s",
        at=utc(2025, 2, 20),
        s=raw_id(b["id"]),
    )
    return Data(admin, marketing, analyst, c, a, b)


async def scores(api: Api, token: str, metric: str, *groups: str, **args: Any) -> list[dict[str, Any]]:
    body = await api.gql(token, SCORES, {"metric": metric, "groupBy": list(groups), **args})
    assert "errors" not in body, body
    rows: list[dict[str, Any]] = body["data"]["reports"]["surveyScores"]
    return rows


def pick(rows: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(r[k] for k in keys) for r in rows]


# ---------------------------------------------------------------- scores


async def test_nps_overall_by_survey_and_by_tier(api: Api, data: Data) -> None:
    [overall] = await scores(api, data.analyst, "NPS")
    assert pick(
        [overall],
        "responses",
        "answers",
        "positive",
        "negative",
        "score",
        "invitations",
        "answeredInvitations",
        "responseRate",
    ) == [(8, 8, 3, 3, 0.0, 11, 8, 0.7273)]
    by_survey = {r["surveyId"]: r for r in await scores(api, data.analyst, "NPS", "SURVEY")}
    assert pick([by_survey[data.a["id"]]], "responses", "score", "invitations", "responseRate") == [(6, 16.67, 8, 0.75)]
    assert pick([by_survey[data.b["id"]]], "responses", "score", "invitations", "responseRate") == [
        (2, -50.0, 3, 0.6667)
    ]
    by_tier = await scores(api, data.marketing, "NPS", "TIER")  # marketing reads survey results
    # tier at response / at invitation: silver c1-c3 (A: 3 of 3; B: c1, c2 invited, c1 answered)
    assert pick(by_tier, "tier", "answers", "positive", "negative", "score", "invitations", "answeredInvitations") == [
        ("bronze", 4, 1, 3, -50.0, 6, 4),
        ("silver", 4, 2, 0, 50.0, 5, 4),
    ]


async def test_csat_and_ces_by_dimension_and_channel(api: Api, data: Data) -> None:
    csat = await scores(api, data.analyst, "CSAT", "DIMENSION")
    assert pick(csat, "dimension", "answers", "positive", "score", "invitations", "responseRate") == [
        ("delivery", 2, 1, 50.0, 3, 0.6667),
        ("service", 6, 3, 50.0, 8, 0.75),
    ]
    [ces] = await scores(api, data.analyst, "CES")
    assert pick([ces], "responses", "answers", "positive", "negative", "score") == [(5, 5, 3, 0, 60.0)]
    by_channel = await scores(api, data.analyst, "NPS", "CHANNEL", surveyId=data.a["id"])
    assert pick(by_channel, "channel", "answers", "score", "invitations", "answeredInvitations", "responseRate") == [
        ("EMAIL", 4, 25.0, 4, 4, 1.0),  # 10, 9, 7, 6
        ("WEB", 2, 0.0, 4, 2, 0.5),  # 3, 10
    ]


async def test_scores_by_period_with_a_range(api: Api, data: Data) -> None:
    months = await scores(api, data.analyst, "NPS", "PERIOD")
    assert pick(months, "periodStart", "answers", "score", "invitations", "answeredInvitations") == [
        ("2025-01-01T00:00:00+00:00", 3, 66.67, 8, 6),  # A's answers of January; A's invitations
        ("2025-02-01T00:00:00+00:00", 5, -40.0, 3, 2),  # 6, 3, 10, 8, 0; B's invitations
    ]
    weeks = await scores(api, data.analyst, "NPS", "PERIOD", period="WEEK")
    assert pick(weeks, "periodStart", "answers", "score", "invitations", "responseRate") == [
        ("2024-12-30T00:00:00+00:00", 0, None, 8, 0.75),
        ("2025-01-06T00:00:00+00:00", 3, 66.67, 0, None),
        ("2025-02-10T00:00:00+00:00", 3, -33.33, 3, 0.6667),
        ("2025-02-17T00:00:00+00:00", 2, -50.0, 0, None),
    ]
    [february] = await scores(
        api, data.analyst, "NPS", **{"from": "2025-02-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}
    )
    assert pick([february], "answers", "score", "invitations") == [(5, -40.0, 3)]
    bad = await api.gql(
        data.analyst, SCORES, {"metric": "NPS", "from": "2025-03-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"}
    )
    assert error_codes(bad) == ["BAD_USER_INPUT"]


async def test_the_report_agrees_with_the_raw_answers(api: Api, data: Data) -> None:
    """Direct SQL of the raw answers, scored in Python with domain/surveys.nps: the same numbers."""
    raw = await _sql(
        api,
        "SELECT r.tier_at_response, r.channel, a.score FROM survey_answers a"
        " JOIN survey_responses r ON r.id = a.response_id JOIN survey_questions q ON q.id = a.question_id"
        " WHERE q.kind = 'nps' AND a.score IS NOT NULL",
    )
    groups: dict[tuple[str, str], list[int]] = {}
    for tier, channel, score in raw:
        groups.setdefault((tier, channel.upper()), []).append(score)
    report = await scores(api, data.analyst, "NPS", "TIER", "CHANNEL")
    assert {(r["tier"], r["channel"]): (r["answers"], r["score"]) for r in report if r["answers"]} == {
        key: (len(values), round(nps(values) or 0, 2)) for key, values in groups.items()
    }
    invited = await _sql(
        api,
        "SELECT count(DISTINCT (survey_id, customer_id)) FILTER (WHERE EXISTS (SELECT 1 FROM survey_responses r"
        " WHERE r.survey_id = i.survey_id AND r.customer_id = i.customer_id)), count(DISTINCT (survey_id, customer_id))"
        " FROM survey_invitations i",
    )
    [overall] = await scores(api, data.analyst, "NPS")
    assert (overall["answeredInvitations"], overall["invitations"]) == tuple(invited[0])


async def test_reports_need_their_grant(api: Api, data: Data) -> None:
    agent = await api.user("bob", "support_agent")
    partner, _ = await api.partner_token()
    for token in (agent, partner):
        body = await api.gql(token, SCORES, {"metric": "NPS"})
        assert error_codes(body) == ["FORBIDDEN"]
        assert body["data"] == {"reports": None}


# ---------------------------------------------------------------- invitations and responses


@pytest.fixture(scope="module")
async def side(template_db: str) -> AsyncIterator[Api]:
    async with module_api(template_db) as running:
        yield running


async def test_invitations_respect_the_throttle_consent_and_answers(side: Api) -> None:
    api = side
    admin = await api.user("alice", "admin")
    marketing = await api.user("dave", "marketing")
    ann = (await create_customer(api, admin, name="Ann Answered", email="ann@example.com"))["id"]
    ben = (await create_customer(api, admin, name="Ben Browser", email="ben@example.com"))["id"]
    fresh = (await create_customer(api, admin, name="Fresh Face", phone="+49 30 1234567"))["id"]
    await _sql(api, "UPDATE customers SET consent_email_at = now() WHERE id = :id", id=raw_id(ann))
    poll = await _survey(
        api, admin, "Poll", ["EMAIL", "WEB"], "MANUAL", [{"kind": "CSAT", "dimension": "poll", "prompt": "Ok?"}]
    )
    sms_only = await _survey(
        api, admin, "SMS poll", ["SMS"], "MANUAL", [{"kind": "CSAT", "dimension": "poll", "prompt": "Ok?"}]
    )

    def invite(survey: Any, *customers: str, **extra: Any) -> Any:
        return api.gql(
            marketing, INVITE, {"input": {"surveyId": survey["id"], "customerIds": list(customers), **extra}}
        )

    body = ok(await invite(sms_only, fresh), "inviteToSurvey")
    assert body["skipped"] == [{"customerId": fresh, "reason": "no_channel"}]  # a phone, but no SMS consent
    await _sql(api, "UPDATE customers SET consent_sms_at = now() WHERE id = :id", id=raw_id(fresh))
    body = ok(await invite(sms_only, fresh), "inviteToSurvey")
    assert [(i["channel"], i["trigger"]) for i in body["invitations"]] == [("SMS", "MANUAL")]

    unknown = global_id("Customer", "00000000-0000-4000-8000-000000000000")
    body = ok(await invite(poll, fresh, ann, ben, unknown), "inviteToSurvey")
    assert [(i["customer"]["id"], i["channel"]) for i in body["invitations"]] == [(ann, "EMAIL"), (ben, "WEB")]
    assert sorted((s["customerId"], s["reason"]) for s in body["skipped"]) == sorted(
        [(fresh, "throttled"), (unknown, "not_found")]  # fresh: invited a moment ago, other survey and channel
    )
    await _answer(api, admin, poll, ann, "EMAIL", csat=5)
    await _sql(api, "UPDATE survey_invitations SET sent_at = sent_at - interval '15 days'")  # the throttle is 14 days
    body = ok(await invite(poll, ann, ben), "inviteToSurvey")
    assert body["skipped"] == [{"customerId": ann, "reason": "answered"}]
    assert [i["customer"]["id"] for i in body["invitations"]] == [ben]  # a reminder, after the throttle
    body = ok(await invite(poll, ben), "inviteToSurvey")
    assert body["skipped"] == [{"customerId": ben, "reason": "throttled"}]

    wrong = await invite(poll, ben, channel="SMS")
    assert [e["field"] for e in payload(wrong, "inviteToSurvey")["userErrors"]] == ["channel"]
    partner, _ = await api.partner_token()
    forbidden = await api.gql(partner, INVITE, {"input": {"surveyId": poll["id"], "customerIds": [ben]}})
    assert error_codes(forbidden) == ["FORBIDDEN"]
    assert await _sql(api, "SELECT count(*) FROM survey_invitations WHERE survey_id = :s", s=raw_id(poll["id"])) == [
        (3,)
    ]


async def test_one_response_per_customer_idempotent_and_in_range(side: Api) -> None:
    api = side
    admin = await api.user("alice", "admin")
    partner, _ = await api.partner_token("Survey Vendor")
    customer = await create_customer(api, partner, name="Vera Vendor", select="id")
    survey = await _survey(
        api,
        admin,
        "Vendor survey",
        ["WEB"],
        "MANUAL",
        [
            {"kind": "NPS", "dimension": "loyalty", "prompt": "Recommend us?"},
            {"kind": "CSAT", "dimension": "service", "prompt": "Service?"},
        ],
    )
    answers = [{"questionId": survey["q"]["NPS"], "score": 9}, {"questionId": survey["q"]["CSAT"], "score": 5}]
    submission = {
        "surveyId": survey["id"],
        "customerId": customer["id"],
        "channel": "WEB",
        "externalId": "V-1",
        "answers": answers,
    }
    out_of_range = await api.gql(
        partner,
        SUBMIT_RESPONSE,
        {
            "input": {
                **submission,
                "answers": [
                    {"questionId": survey["q"]["NPS"], "score": 11},
                    {"questionId": survey["q"]["CSAT"], "score": 0},
                ],
            }
        },
    )
    assert [(e["field"], e["code"]) for e in payload(out_of_range, "submitSurveyResponse")["userErrors"]] == [
        ("answers[0].score", "INVALID"),
        ("answers[1].score", "INVALID"),
    ]
    mine = "SELECT count(*) FROM survey_responses WHERE customer_id = :c"
    assert await _sql(api, mine, c=raw_id(customer["id"])) == [(0,)]
    first = ok(await api.gql(partner, SUBMIT_RESPONSE, {"input": submission}), "submitSurveyResponse")
    again = ok(await api.gql(partner, SUBMIT_RESPONSE, {"input": submission}), "submitSurveyResponse")
    assert again["response"]["id"] == first["response"]["id"]
    other = await api.gql(partner, SUBMIT_RESPONSE, {"input": {**submission, "externalId": "V-2"}})
    assert [e["code"] for e in payload(other, "submitSurveyResponse")["userErrors"]] == ["INVALID"]
    assert await _sql(api, mine, c=raw_id(customer["id"])) == [(1,)]


# ---------------------------------------------------------------- triggered invitations


async def test_purchases_and_the_periodic_survey_trigger_invitations(fresh_database_url: Any) -> None:
    from infra.survey_triggers import send_due_invitations

    async with running_api(await fresh_database_url()) as api:
        admin = await api.user("alice", "admin")
        after_purchase = await _survey(
            api,
            admin,
            "Delivery",
            ["EMAIL", "WEB"],
            "PURCHASE",
            [{"kind": "CSAT", "dimension": "delivery", "prompt": "Delivery?"}],
        )
        periodic = await _survey(
            api,
            admin,
            "Relationship",
            ["WEB"],
            "PERIODIC",
            [{"kind": "NPS", "dimension": "loyalty", "prompt": "Recommend us?"}],
        )
        names = ("Delivered", "Just Bought", "Long Ago", "Never")
        ids = {n: (await create_customer(api, admin, name=n))["id"] for n in names}
        now = dt.datetime.now(dt.UTC)
        await record_purchases(
            api,
            admin,
            {
                "customerId": ids["Delivered"],
                "amount": "30.00",
                "purchasedAt": (now - dt.timedelta(days=3)).isoformat(),
            },
            {
                "customerId": ids["Just Bought"],
                "amount": "30.00",
                "purchasedAt": (now - dt.timedelta(hours=1)).isoformat(),
            },
            {
                "customerId": ids["Long Ago"],
                "amount": "30.00",
                "purchasedAt": (now - dt.timedelta(days=200)).isoformat(),
            },
        )
        async with api.services.engine.begin() as conn:
            first = await send_due_invitations(conn, api.settings)
        async with api.services.engine.begin() as conn:
            second = await send_due_invitations(conn, api.settings)
        got = await _sql(
            api,
            "SELECT c.name, i.survey_id, i.trigger, i.channel, i.purchase_id IS NOT NULL FROM survey_invitations i"
            " JOIN customers c ON c.id = i.customer_id ORDER BY c.name",
        )
        assert [tuple(r) for r in got] == [
            ("Delivered", raw_id(after_purchase["id"]), "purchase", "web", True),  # delivered: asked about it
            ("Just Bought", raw_id(periodic["id"]), "periodic", "web", False),  # too early for the delivery survey
            ("Long Ago", raw_id(periodic["id"]), "periodic", "web", False),  # a customer of the last year
        ]  # "Delivered" is also due for the periodic survey: one invitation per customer (throttle)
        assert (first, second) == ({"purchase": 1, "periodic": 2, "skipped": 1}, {})
