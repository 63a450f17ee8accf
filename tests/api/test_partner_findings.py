"""Issue 17, findings F1-F3, and the rules that keep partner tokens confined: system-administering roles
can't be given to a partner token (GraphQL, CLI), a grant can't make a role a token holds
system-administering, and a partner manages only its own partner's tokens. Over real HTTP, real tokens."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from api.edge import cli
from tests.api.security_helpers import PARTNER_A, PARTNER_B, World, build_world, raw_id, sql
from tests.conftest import Api


def token_id(token: str) -> uuid.UUID:
    return uuid.UUID(hex=token.removeprefix("tw_pat_").partition("_")[0])


def user_errors(body: dict[str, Any], op: str) -> list[dict[str, Any]]:
    assert body["_status"] == 200, body
    assert not body.get("errors"), body
    return list(body["data"][op]["userErrors"])


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def count(url: str, query: str, *args: Any) -> int:
    return int((await sql(url, query, *args))[0][0])


# ---------------------------------------------------------------- F1


async def test_f1_a_partner_token_holding_admin_stays_inside_its_partner(api: Api) -> None:
    """The admin role is refused at token creation; forced into the database, it still reaches nothing
    outside its partner: no token for another partner, no role for a staff user, no other partner's audit
    entries or tokens."""
    w = await build_world(api)
    north, _ = await api.forced_partner_token(PARTNER_A, "admin")
    # the other partner's customer read in full by staff: an audit entry naming that customer
    read = await w.gql("admin", "query($id: ID!) { customer(id: $id) { email } }", {"id": w.bruno})
    assert read["data"]["customer"]["email"], read
    tokens_before = await count(api.url, "SELECT count(*) FROM api_tokens")

    stolen = await api.gql(
        north,
        f"""mutation {{ createPartnerToken(partner: "{PARTNER_B}", name: "stolen") {{
        token apiToken {{ partnerId }} userErrors {{ field code message }} }} }}""",
    )
    assert stolen["data"]["createPartnerToken"]["token"] is None, stolen
    assert [e["code"] for e in user_errors(stolen, "createPartnerToken")] == ["FORBIDDEN"]
    assert await count(api.url, "SELECT count(*) FROM api_tokens") == tokens_before

    escalated = await api.gql(north, 'mutation { assignRole(user: "mallory", role: "admin") { ok } }')
    assert error_codes(escalated) == ["FORBIDDEN"], escalated
    assert await count(api.url, "SELECT count(*) FROM casbin_rules WHERE v0 = 'user:mallory'") == 0

    audit = await api.gql(north, "{ auditLog(first: 100) { edges { node { actor targetIds } } } }")
    assert not audit.get("errors"), audit
    mine = {f"token:{r[0]}" for r in await sql(api.url, "SELECT id FROM api_tokens WHERE partner_id = $1", w.partner_a)}
    entries = [e["node"] for e in audit["data"]["auditLog"]["edges"]]
    assert {e["actor"] for e in entries} <= mine, entries
    targets = {t for e in entries for t in e["targetIds"]}
    assert str(raw_id(w.bruno)) not in targets
    assert str(raw_id(w.ada)) not in targets
    assert await count(api.url, "SELECT count(*) FROM audit_log WHERE $1 = ANY(target_ids)", str(raw_id(w.bruno))) > 0

    listed = await api.gql(north, "{ apiTokens { id partnerId } }")
    assert not listed.get("errors"), listed
    assert listed["data"]["apiTokens"], listed
    assert {t["partnerId"] for t in listed["data"]["apiTokens"]} == {str(w.partner_a)}


# ---------------------------------------------------------------- F2


REPORTS = """{ reports {
    complaints { perThousandCustomers { tier complaints customers } topRootCauses { complaints } }
    surveyScores(metric: NPS, groupBy: [TIER]) { tier responses answers }
    fairness { tiers { tier complaints customers npsAnswers } }
    churnRisk { levels { tier customers } }
} tierDistribution { customers } }"""


async def _hand_count(url: str, partner: uuid.UUID) -> dict[str, Any]:
    """The partner's figures, counted straight from the rows."""
    live = "c.deleted_at IS NULL AND c.merged_into_id IS NULL AND c.partner_id = $1"
    return {
        "customers": await count(url, f"SELECT count(*) FROM customers c WHERE {live}", partner),
        "complaints": await count(
            url,
            "SELECT count(*) FROM complaints k JOIN customers c ON c.id = k.customer_id"
            " WHERE c.partner_id = $1 AND k.tier_at_open IS NOT NULL",
            partner,
        ),
        "nps_responses": await count(
            url,
            "SELECT count(DISTINCT r.id) FROM survey_responses r JOIN customers c ON c.id = r.customer_id"
            " JOIN survey_answers a ON a.response_id = r.id JOIN survey_questions q ON q.id = a.question_id"
            " WHERE c.partner_id = $1 AND q.kind = 'nps' AND a.score IS NOT NULL",
            partner,
        ),
        "churn": await count(
            url, f"SELECT count(*) FROM churn_scores s JOIN customers c ON c.id = s.customer_id WHERE {live}", partner
        ),
    }


def _figures(data: dict[str, Any]) -> dict[str, Any]:
    r = data["reports"]
    return {
        "customers": sum(t["customers"] for t in r["fairness"]["tiers"]),
        "complaints": sum(t["complaints"] for t in r["fairness"]["tiers"]),
        "rate_complaints": sum(x["complaints"] for x in r["complaints"]["perThousandCustomers"]),
        "root_cause_complaints": sum(x["complaints"] for x in r["complaints"]["topRootCauses"]),
        "nps_responses": sum(x["responses"] for x in r["surveyScores"]),
        "nps_answers": sum(t["npsAnswers"] for t in r["fairness"]["tiers"]),
        "churn": sum(x["customers"] for x in r["churnRisk"]["levels"]),
        "distribution": data["tierDistribution"]["customers"],
    }


async def _two_partners(api: Api) -> World:
    """The security world, plus a second partner's customers, complaints and survey answers, so that every
    report has figures of both partners (and of unowned customers) to keep apart."""
    w = await build_world(api)
    for n in range(3):
        made = await w.gql(
            "partner_b",
            """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
            customer { id } userErrors { code } } }""",
            {"input": {"name": f"South {n}", "externalRef": f"sw-x{n}"}},
        )
        customer = made["data"]["createCustomer"]["customer"]["id"]
        opened = await w.gql(
            "partner_b",
            """mutation($input: OpenComplaintInput!) { openComplaint(input: $input) {
            complaint { id } userErrors { code } } }""",
            {
                "input": {
                    "customerId": customer,
                    "subject": "s",
                    "description": "d",
                    "category": "delivery",
                    "severity": "LOW",
                    "channel": "WEB",
                }
            },
        )
        assert opened["data"]["openComplaint"]["userErrors"] == [], opened
        answered = await w.gql(
            "partner_b",
            """mutation($input: SubmitSurveyResponseInput!) {
            submitSurveyResponse(input: $input) { response { id } userErrors { code } } }""",
            {
                "input": {
                    "surveyId": w.survey,
                    "customerId": customer,
                    "channel": "EMAIL",
                    "externalId": f"sw-r{n}",
                    "answers": [{"questionId": w.question_nps, "score": n}],
                }
            },
        )
        assert answered["data"]["submitSurveyResponse"]["userErrors"] == [], answered
    return w


@pytest.mark.parametrize("role", ["analyst", "marketing"])
async def test_f2_reports_of_a_partner_token_count_only_its_partner(api: Api, role: str) -> None:
    w = await _two_partners(api)
    for partner_name, partner in ((PARTNER_A, w.partner_a), (PARTNER_B, w.partner_b)):
        token, _ = await api.partner_token(partner_name, role=role)
        body = await api.gql(token, REPORTS)
        assert partner is not None
        hand = await _hand_count(api.url, partner)
        r = body["data"]["reports"]
        if role == "marketing":  # marketing is denied the complaint and fairness reports: FORBIDDEN_FIELD
            assert r["complaints"] is None
            assert r["fairness"] is None
            assert sum(x["responses"] for x in r["surveyScores"]) == hand["nps_responses"], (partner_name, body)
            assert sum(x["customers"] for x in r["churnRisk"]["levels"]) == hand["churn"]
            continue
        assert not body.get("errors"), body
        got = _figures(body["data"])
        assert got == {
            "customers": hand["customers"],
            "complaints": hand["complaints"],
            "rate_complaints": hand["complaints"],
            "root_cause_complaints": 0,  # no complaint has a root cause yet
            "nps_responses": hand["nps_responses"],
            "nps_answers": hand["nps_responses"],  # one NPS question per response
            "churn": hand["churn"],
            "distribution": hand["customers"],
        }, (partner_name, hand)
    # the two partners' figures differ, and staff still see every partner's (from the summaries)
    assert (await _hand_count(api.url, w.partner_a)) != (await _hand_count(api.url, w.partner_b))
    everyone = await api.gql(w.tokens["analyst"], REPORTS)
    assert not everyone.get("errors"), everyone
    total = await count(api.url, "SELECT count(*) FROM customers WHERE deleted_at IS NULL AND merged_into_id IS NULL")
    assert _figures(everyone["data"])["customers"] == total


# ---------------------------------------------------------------- F3


@pytest.mark.parametrize("role", ["data_steward", "admin"])
async def test_f3_data_quality_report_for_a_partner_token(api: Api, role: str) -> None:
    w = await _two_partners(api)
    if role == "admin":
        token, _ = await api.forced_partner_token(PARTNER_B, role)
    else:
        token, _ = await api.partner_token(PARTNER_B, role=role)
    # a merge of the partner's own: the report's merges per month are scoped through the survivor
    body = await api.gql(
        token,
        """{ dataQualityReport { liveCustomers erasedCustomers mergedCustomers
        missing { field missing } duplicatePairs mergesByMonth { merges } metricsStaleness { customers } } }""",
    )
    assert not body.get("errors"), body
    report = body["data"]["dataQualityReport"]
    live = await count(
        api.url,
        "SELECT count(*) FROM customers WHERE partner_id = $1 AND deleted_at IS NULL AND merged_into_id IS NULL"
        " AND erased_at IS NULL",
        w.partner_b,
    )
    assert report["liveCustomers"] == live == 4
    assert report["metricsStaleness"]["customers"] == live
    missing_email = await count(
        api.url,
        "SELECT count(*) FROM customers WHERE partner_id = $1 AND email IS NULL AND deleted_at IS NULL"
        " AND merged_into_id IS NULL AND erased_at IS NULL",
        w.partner_b,
    )
    assert {m["field"]: m["missing"] for m in report["missing"]}.get("email", missing_email) == missing_email


# ---------------------------------------------------------------- no system administration for partner tokens


async def test_a_system_administering_role_is_refused_to_a_new_partner_token(api: Api) -> None:
    admin = await api.user("alice", "admin")
    body = await api.gql(
        admin,
        f"""mutation {{ createPartnerToken(partner: "{PARTNER_A}", name: "nw-admin",
        role: "admin") {{ token userErrors {{ field code message }} }} }}""",
    )
    (error,) = user_errors(body, "createPartnerToken")
    assert (error["field"], error["code"]) == ("role", "INVALID")
    assert "administers the whole system" in error["message"]
    assert body["data"]["createPartnerToken"]["token"] is None
    # a role inheriting admin is refused alike; a plain one is fine
    made = await api.gql(admin, 'mutation { createRole(name: "deputy", inherits: "admin") { ok } }')
    assert made["data"]["createRole"]["ok"], made
    deputy = await api.gql(
        admin,
        f"""mutation {{ createPartnerToken(partner: "{PARTNER_A}", name: "d",
        role: "deputy") {{ token userErrors {{ field code }} }} }}""",
    )
    assert [e["code"] for e in user_errors(deputy, "createPartnerToken")] == ["INVALID"]
    plain = await api.gql(
        admin,
        f"""mutation {{ createPartnerToken(partner: "{PARTNER_A}", name: "a",
        role: "analyst") {{ token userErrors {{ field code }} }} }}""",
    )
    assert user_errors(plain, "createPartnerToken") == []
    assert await count(api.url, "SELECT count(*) FROM api_tokens WHERE role <> 'analyst'") == 0


async def test_the_cli_refuses_a_system_administering_role_for_a_partner_token(
    api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TIERWISE_DATABASE_URL", api.url)
    argv = ["tokens", "create", "--partner", "Northwind Shop", "--name", "nw-admin", "--role", "admin"]
    assert await asyncio.to_thread(cli.main, argv) == 1
    assert "administers the whole system" in capsys.readouterr().err
    assert await count(api.url, "SELECT count(*) FROM api_tokens") == 0
    argv[-1] = "analyst"
    assert await asyncio.to_thread(cli.main, argv) == 0
    assert await count(api.url, "SELECT count(*) FROM api_tokens") == 1


async def test_a_grant_that_would_make_a_held_role_system_administering_is_refused(api: Api) -> None:
    admin = await api.user("alice", "admin")
    await api.partner_token(PARTNER_A)  # a live token holds "partner"
    # a token already holding admin (written by hand) is confined by its decisions and blocks no change
    await api.forced_partner_token(PARTNER_B, "admin")
    rules_before = await sql(api.url, "SELECT ptype, v0, v1, v2, v3 FROM casbin_rules ORDER BY id")
    for obj in ("Mutation.assignRole", "Mutation.*", "*"):
        body = await api.gql(
            admin,
            f"""mutation {{ grantAccess(role: "partner", object: "{obj}", action: WRITE) {{
            ok userErrors {{ field code message }} }} }}""",
        )
        (error,) = user_errors(body, "grantAccess")
        assert error["code"] == "INVALID", body
        assert "is held by a partner token and would administer the whole system" in error["message"]
    assert await sql(api.url, "SELECT ptype, v0, v1, v2, v3 FROM casbin_rules ORDER BY id") == rules_before
    # a role no live token holds may be granted it (and then can't go to a token)
    await api.gql(admin, 'mutation { createRole(name: "helper") { ok } }')
    fine = await api.gql(
        admin,
        """mutation { grantAccess(role: "helper", object: "Mutation.createRole",
        action: WRITE) { ok userErrors { code } } }""",
    )
    assert fine["data"]["grantAccess"]["ok"], fine
    # revoking a deny that keeps a held role from administering is refused too
    await api.gql(admin, 'mutation { createRole(name: "kept") { ok } }')
    for effect in ("DENY", "ALLOW"):  # deny overrides allow: "kept" does not administer
        granted = await api.gql(
            admin,
            f"""mutation {{ grantAccess(role: "kept", object: "Mutation.createRole",
            action: WRITE, effect: {effect}) {{ ok userErrors {{ code message }} }} }}""",
        )
        assert granted["data"]["grantAccess"]["ok"], granted
    await api.partner_token(PARTNER_A, role="kept")
    undeny = await api.gql(
        admin,
        """mutation { revokeAccess(role: "kept", object: "Mutation.createRole",
        action: WRITE, effect: DENY) { ok userErrors { code message } } }""",
    )
    assert [e["code"] for e in user_errors(undeny, "revokeAccess")] == ["INVALID"]
    assert await count(api.url, "SELECT count(*) FROM casbin_rules WHERE v0 = 'role:kept' AND v3 = 'deny'") == 1


async def test_assign_role_never_targets_a_token_subject(api: Api) -> None:
    admin = await api.user("alice", "admin")
    token, _ = await api.partner_token(PARTNER_A)
    body = await api.gql(
        admin,
        f'mutation {{ assignRole(user: "token:{token_id(token)}", role: "admin") {{ ok userErrors {{ code }} }} }}',
    )
    assert [e["code"] for e in user_errors(body, "assignRole")] == ["INVALID"]
    assert await count(api.url, "SELECT count(*) FROM casbin_rules WHERE v0 LIKE 'token:%'") == 0


async def test_a_partner_manages_only_its_own_tokens(api: Api) -> None:
    """A role granted token administration: a partner token holding it creates tokens for its own partner
    only, with its own roles and no wider scopes, and sees and revokes only its own partner's tokens."""
    admin = await api.user("alice", "admin")
    await api.gql(admin, 'mutation { createRole(name: "token_keeper", inherits: "partner") { ok } }')
    for obj, action in (
        ("Mutation.createPartnerToken", "WRITE"),
        ("Mutation.revokePartnerToken", "WRITE"),
        ("Query.apiTokens", "READ"),
        ("ApiToken.*", "READ"),
    ):
        granted = await api.gql(
            admin,
            f"""mutation {{ grantAccess(role: "token_keeper", object: "{obj}",
            action: {action}) {{ ok userErrors {{ message }} }} }}""",
        )
        assert granted["data"]["grantAccess"]["ok"], granted
    keeper, north = await api.partner_token(PARTNER_A, ("read:*", "write:*"), role="token_keeper")
    south, _ = await api.partner_token(PARTNER_B)

    create = """mutation($p: String!, $r: String!, $s: [String!]) { createPartnerToken(partner: $p, name: "n",
        role: $r, scopes: $s) { token apiToken { id partnerId } userErrors { field code } } }"""
    made = await api.gql(keeper, create, {"p": PARTNER_A, "r": "token_keeper", "s": ["read:Customer.*"]})
    assert user_errors(made, "createPartnerToken") == []
    assert made["data"]["createPartnerToken"]["apiToken"]["partnerId"] == str(north)
    child = made["data"]["createPartnerToken"]["token"]
    assert (await api.gql(child, "{ customers(first: 1) { totalCount } }"))["_status"] == 200
    for variables, field in (
        ({"p": PARTNER_B, "r": "token_keeper", "s": None}, "partner"),
        ({"p": PARTNER_A, "r": "analyst", "s": None}, "role"),
    ):
        refused = await api.gql(keeper, create, variables)
        assert [(e["field"], e["code"]) for e in user_errors(refused, "createPartnerToken")] == [(field, "FORBIDDEN")]
    narrow, _ = await api.partner_token(PARTNER_A, ("read:*", "write:Mutation.createPartnerToken"), role="token_keeper")
    wider = await api.gql(narrow, create, {"p": PARTNER_A, "r": "token_keeper", "s": ["write:*"]})
    assert [(e["field"], e["code"]) for e in user_errors(wider, "createPartnerToken")] == [("scopes", "FORBIDDEN")]

    listed = await api.gql(keeper, "{ apiTokens { id partnerId } }")
    assert {t["partnerId"] for t in listed["data"]["apiTokens"]} == {str(north)}
    revoke = "mutation($id: ID!) { revokePartnerToken(id: $id) { ok userErrors { code } } }"
    theirs = await api.gql(keeper, revoke, {"id": str(token_id(south))})
    assert [e["code"] for e in user_errors(theirs, "revokePartnerToken")] == ["NOT_FOUND"]
    assert (await api.gql(south, "{ customers(first: 1) { totalCount } }"))["_status"] == 200
    own = await api.gql(keeper, revoke, {"id": made["data"]["createPartnerToken"]["apiToken"]["id"]})
    assert own["data"]["revokePartnerToken"]["ok"], own
    assert (await api.gql(child, "{ customers(first: 1) { totalCount } }"))["_status"] == 401
    # a role a live token holds can't be turned into a system-administering one
    grown = await api.gql(
        admin,
        """mutation { grantAccess(role: "token_keeper", object: "Mutation.grantAccess",
        action: WRITE) { ok userErrors { code } } }""",
    )
    assert [e["code"] for e in user_errors(grown, "grantAccess")] == ["INVALID"]


# ---------------------------------------------------------------- the export's audit entries


async def test_a_partner_export_holds_only_the_audit_entries_of_its_own_tokens(api: Api) -> None:
    """exportCustomerData for a partner's token lists the audit entries its partner's tokens wrote, as
    auditLog does; entries written by staff about the same customer (who read what, when) stay out."""
    w = await build_world(api)
    # staff read Paula (partner A's customer) in full: an audit entry by a staff user naming her
    read = await w.gql("admin", "query($id: ID!) { customer(id: $id) { email phone } }", {"id": w.paula})
    assert read["data"]["customer"]["email"], read
    paula = str(raw_id(w.paula))
    staff_entries = await count(
        api.url, "SELECT count(*) FROM audit_log WHERE $1 = ANY(target_ids) AND actor NOT LIKE 'token:%'", paula
    )
    assert staff_entries > 0

    steward, _ = await api.partner_token(PARTNER_A, role="data_steward")
    own_read = await api.gql(steward, "query($id: ID!) { customer(id: $id) { email } }", {"id": w.paula})
    assert own_read["data"]["customer"]["email"], own_read  # audited, by the partner's token
    body = await api.gql(steward, "query($id: ID!) { exportCustomerData(id: $id) }", {"id": w.paula})
    assert not body.get("errors"), body
    entries = body["data"]["exportCustomerData"]["auditEntries"]
    mine = {f"token:{r[0]}" for r in await sql(api.url, "SELECT id FROM api_tokens WHERE partner_id = $1", w.partner_a)}
    assert entries, body  # the partner's own read of Paula is there
    assert {e["actor"] for e in entries} <= mine, entries

    # staff export the same customer with every entry, their own included
    staff = await w.gql("admin", "query($id: ID!) { exportCustomerData(id: $id) }", {"id": w.paula})
    actors = {e["actor"] for e in staff["data"]["exportCustomerData"]["auditEntries"]}
    assert actors - mine, actors
