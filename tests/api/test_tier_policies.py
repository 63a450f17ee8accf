"""Tier policies over HTTP: drafts validated when saved (bad rules are userErrors and write nothing),
simulation that changes nothing and predicts what activation does, activation (exactly one active),
manual overrides with expiry, explanations, the tier reports, and who may do what."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import text

from api.usecases import tiers as tier_usecases
from infra.tiering import run_full_retier
from tests.api.helpers import USER_ERRORS, create_customer, error_codes, ok, payload, raw_id, record_purchases
from tests.conftest import Api

POLICY_FIELDS = """id version status revision name graceDays minStayDays spendWindowDays activatedBy retiredBy
  tiers { code name rank entryRule retainRule benefits }"""
CREATE_DRAFT = f"""mutation($input: CreateTierPolicyDraftInput!) {{
  createTierPolicyDraft(input: $input) {{ policy {{ {POLICY_FIELDS} }} {USER_ERRORS} }} }}"""
UPDATE_DRAFT = f"""mutation($input: UpdateTierPolicyDraftInput!) {{
  updateTierPolicyDraft(input: $input) {{ policy {{ {POLICY_FIELDS} }} {USER_ERRORS} }} }}"""
ACTIVATE = f"""mutation($id: ID!, $rev: Int) {{ activateTierPolicy(id: $id, expectedRevision: $rev) {{
  policy {{ {POLICY_FIELDS} }} retiredVersion retier {{ mode customers changes graceStartedOrEnded jobId message }}
  {USER_ERRORS} }} }}"""
SIMULATE = """query($id: ID!) { simulateTierPolicy(draftId: $id) {
  customers changing
  moves { fromTier toTier customers revenue } eventualMoves { fromTier toTier customers revenue }
  tiers { tier customers customerShare revenue revenueShare } } }"""
OVERRIDE = f"""mutation($input: OverrideCustomerTierInput!) {{
  overrideCustomerTier(input: $input) {{ customer {{ id tier {{ code }} }} {USER_ERRORS} }} }}"""
EXPLAIN = """query($id: ID!) { customer(id: $id) { tier { code } tierExplanation {
  tier basis policyVersion text pending nextTier graceSince downgradeNotBefore
  heldBy { kind holds text conditions { metric op threshold actual holds gap } }
  toNextTier { kind holds text score minScore pointsMissing conditions { metric op threshold actual holds gap }
               terms { metric weight actual neededAlone } } } } }"""

ALWAYS = {"always": True}


def spend(op: str, value: float) -> dict[str, Any]:
    return {"metric": "spend_12m", "op": op, "value": value}


def strict_tiers() -> list[dict[str, Any]]:
    """bronze; silver from 300 spent (kept from 250); gold from 1000 (kept from 800). No platinum."""
    return [
        {"code": "bronze", "name": "Bronze", "rank": 0, "entryRule": ALWAYS, "retainRule": ALWAYS},
        {
            "code": "silver",
            "name": "Silver",
            "rank": 1,
            "entryRule": {"all": [spend(">=", 300)]},
            "retainRule": {"all": [spend(">=", 250)]},
            "benefits": ["Free returns"],
        },
        {
            "code": "gold",
            "name": "Gold",
            "rank": 2,
            "entryRule": {"all": [spend(">=", 1000)]},
            "retainRule": {"all": [spend(">=", 800)]},
        },
    ]


def draft_input(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "Spend only",
        "graceDays": 10,
        "minStayDays": 5,
        "spendWindowDays": 365,
        "tiers": strict_tiers(),
        **overrides,
    }


async def create_draft(api: Api, token: str, **overrides: Any) -> dict[str, Any]:
    policy: dict[str, Any] = ok(
        await api.gql(token, CREATE_DRAFT, {"input": draft_input(**overrides)}), "createTierPolicyDraft"
    )["policy"]
    return policy


async def rows(api: Api, sql: str, **params: Any) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def policy_tables(api: Api) -> list[Any]:
    return await rows(
        api,
        "SELECT (SELECT count(*) FROM tier_policies), (SELECT count(*) FROM tiers),"
        " (SELECT count(*) FROM audit_log WHERE target_type = 'TierPolicy'),"
        " (SELECT string_agg(status || revision, ',' ORDER BY version) FROM tier_policies)",
    )


async def customers_with_spend(api: Api, token: str, spends: list[tuple[str, list[str]]]) -> dict[str, str]:
    """Customers by name, each with purchases of the given amounts (one batch); returns name -> id."""
    ids = {}
    items = []
    for name, amounts in spends:
        ids[name] = (await create_customer(api, token, name=name))["id"]
        items += [{"customerId": ids[name], "amount": a} for a in amounts]
    if items:
        await record_purchases(api, token, *items)
    return ids


# ---------------------------------------------------------------- drafts and validation


async def test_a_draft_is_saved_listed_read_and_updated_with_its_revision(api: Api) -> None:
    admin = await api.user("alice", "admin")
    draft = await create_draft(api, admin)
    assert (draft["status"], draft["revision"], draft["graceDays"], draft["minStayDays"]) == ("DRAFT", 1, 10, 5)
    assert [t["code"] for t in draft["tiers"]] == ["bronze", "silver", "gold"]
    assert draft["tiers"][1]["benefits"] == ["Free returns"]

    listed = await api.gql(admin, "{ tierPolicies { id status } }")
    assert [p["status"] for p in listed["data"]["tierPolicies"]] == ["DRAFT", "ACTIVE"]
    one = await api.gql(admin, "query($id: ID!) { tierPolicy(id: $id) { name version } }", {"id": draft["id"]})
    assert one["data"]["tierPolicy"] == {"name": "Spend only", "version": draft["version"]}

    changed = ok(
        await api.gql(admin, UPDATE_DRAFT, {"input": {"id": draft["id"], "expectedRevision": 1, "graceDays": 20}}),
        "updateTierPolicyDraft",
    )["policy"]
    assert (changed["revision"], changed["graceDays"], changed["tiers"]) == (2, 20, draft["tiers"])

    stale = payload(
        await api.gql(admin, UPDATE_DRAFT, {"input": {"id": draft["id"], "expectedRevision": 1, "graceDays": 1}}),
        "updateTierPolicyDraft",
    )
    assert [e["code"] for e in stale["userErrors"]] == ["CONFLICT"]

    active_id = (await api.gql(admin, "{ activeTierPolicy { id } }"))["data"]["activeTierPolicy"]["id"]
    frozen = payload(
        await api.gql(admin, UPDATE_DRAFT, {"input": {"id": active_id, "expectedRevision": 1, "graceDays": 1}}),
        "updateTierPolicyDraft",
    )
    assert [e["code"] for e in frozen["userErrors"]] == ["ILLEGAL_TRANSITION"]

    copied = ok(
        await api.gql(admin, CREATE_DRAFT, {"input": {"name": "Copy", "copyFrom": active_id}}), "createTierPolicyDraft"
    )["policy"]
    assert [t["code"] for t in copied["tiers"]] == ["bronze", "silver", "gold", "platinum"]


def _tiers_with(index: int, **changes: Any) -> list[dict[str, Any]]:
    tiers = strict_tiers()
    tiers[index] = {**tiers[index], **changes}
    return tiers


BAD_DRAFTS = {
    "unknown metric": (
        {"tiers": _tiers_with(1, entryRule={"all": [{"metric": "karma", "op": ">=", "value": 1}]})},
        "tiers[1].entryRule.all[0].metric",
    ),
    "impossible threshold": (
        {"tiers": _tiers_with(1, entryRule={"all": [{"metric": "latest_csat", "op": ">", "value": 5}]})},
        "tiers[1].entryRule.all[0].value",
    ),
    "overlapping tiers": ({"tiers": _tiers_with(2, entryRule={"all": [spend(">=", 300)]})}, "tiers[1].entryRule"),
    "unreachable: a lower tier stricter": (
        {"tiers": _tiers_with(1, entryRule={"all": [spend(">=", 5000)]}, retainRule={"all": [spend(">=", 10)]})},
        "tiers[1].entryRule",
    ),
    "retain stricter than entry": (
        {"tiers": _tiers_with(2, retainRule={"all": [spend(">=", 1200)]})},
        "tiers[2].retainRule",
    ),
    "duplicate code": ({"tiers": _tiers_with(2, code="silver")}, "tiers[2].code"),
    "duplicate rank": ({"tiers": _tiers_with(2, rank=1)}, "tiers[2].rank"),
    "two tiers for everyone": ({"tiers": _tiers_with(1, entryRule=ALWAYS)}, "tiers[1].entryRule"),
    "no base tier": ({"tiers": _tiers_with(0, entryRule={"all": [spend(">=", 1)]})}, "tiers[0].entryRule"),
    "not a rule": ({"tiers": _tiers_with(1, entryRule={"sometimes": True})}, "tiers[1].entryRule"),
    "grace days": ({"graceDays": -3}, "graceDays"),
    "spend window": ({"spendWindowDays": 0}, "spendWindowDays"),
    "no tiers": ({"tiers": []}, "tiers"),
}


async def test_each_bad_rule_is_a_user_error_and_nothing_is_written(api: Api) -> None:
    admin = await api.user("alice", "admin")
    draft = await create_draft(api, admin)
    before = await policy_tables(api)
    for case, (overrides, field) in BAD_DRAFTS.items():
        body = await api.gql(admin, CREATE_DRAFT, {"input": draft_input(**overrides)})
        errors = payload(body, "createTierPolicyDraft")["userErrors"]
        assert field in [e["field"] for e in errors], (case, errors)
        assert body["data"]["createTierPolicyDraft"]["policy"] is None
        # the same rule refused on an update of an existing draft
        update = {"id": draft["id"], "expectedRevision": 1, **overrides}
        errors = payload(await api.gql(admin, UPDATE_DRAFT, {"input": update}), "updateTierPolicyDraft")["userErrors"]
        assert field in [e["field"] for e in errors], (case, errors)
    assert await policy_tables(api) == before


# ---------------------------------------------------------------- simulation and activation


async def test_simulation_changes_nothing_and_activation_does_what_it_predicted(api: Api) -> None:
    from tests.api.helpers import snapshot

    admin = await api.user("alice", "admin")
    ids = await customers_with_spend(
        api,
        admin,
        [
            ("Nil", []),
            ("Low", ["100.00"]),
            ("Edge", ["300.00"]),  # bronze today (silver needs 500): silver under the draft
            ("Mid", ["700.00"]),  # silver today and under the draft
            ("Busy", ["10.00"] * 6),  # silver today by 6 orders; fails the draft's retain rule: grace
            ("High", ["1200.00"]),  # silver today (gold needs orders too): gold under the draft
            ("Top", ["9600.00"]),  # platinum by score today; the draft has no platinum: placed in gold
        ],
    )
    tiers_now = {r.name: r.tier_code for r in await rows(api, "SELECT name, tier_code FROM customers")}
    assert tiers_now == {
        "Nil": "bronze",
        "Low": "bronze",
        "Edge": "bronze",
        "Mid": "silver",
        "Busy": "silver",
        "High": "silver",
        "Top": "platinum",
    }
    draft = await create_draft(api, admin)

    before = await snapshot(api)
    policies_before = await policy_tables(api)
    body = await api.gql(admin, SIMULATE, {"id": draft["id"]})
    assert "errors" not in body, body
    sim = body["data"]["simulateTierPolicy"]
    assert await snapshot(api) == before
    assert await policy_tables(api) == policies_before

    moves = {(m["fromTier"], m["toTier"]): m["customers"] for m in sim["moves"]}
    assert moves == {
        ("bronze", "bronze"): 2,
        ("bronze", "silver"): 1,
        ("silver", "silver"): 2,
        ("silver", "gold"): 1,
        ("platinum", "gold"): 1,
    }
    eventual = {(m["fromTier"], m["toTier"]): m["customers"] for m in sim["eventualMoves"]}
    assert eventual[("silver", "bronze")] == 1  # Busy, once its grace period is over
    assert (sim["customers"], sim["changing"]) == (7, 3)
    shares = {t["tier"]: t for t in sim["tiers"]}
    assert shares["gold"]["customers"] == 2
    assert shares["gold"]["revenue"] == "10800.00"
    assert shares["gold"]["revenueShare"] == pytest.approx(10800 / 11960, abs=1e-6)
    assert sum(t["customerShare"] for t in sim["tiers"]) == pytest.approx(1)

    activated = ok(await api.gql(admin, ACTIVATE, {"id": draft["id"], "rev": 1}), "activateTierPolicy")
    assert activated["policy"]["status"] == "ACTIVE"
    assert activated["policy"]["activatedBy"] == "user:alice"
    assert activated["retiredVersion"] == 1
    assert activated["retier"]["mode"] == "INLINE"
    assert (activated["retier"]["customers"], activated["retier"]["changes"]) == (7, 3)
    assert activated["retier"]["graceStartedOrEnded"] == 1

    after = {r.name: r.tier_code for r in await rows(api, "SELECT name, tier_code FROM customers")}
    produced = Counter((tiers_now[name], tier) for name, tier in after.items())
    assert dict(produced) == moves
    grace = await rows(api, "SELECT name, tier_grace_since FROM customers WHERE tier_grace_since IS NOT NULL")
    assert [r.name for r in grace] == ["Busy"]
    statuses = await rows(api, "SELECT version, status, retired_by FROM tier_policies ORDER BY version")
    assert [(r.status, r.retired_by) for r in statuses] == [("retired", "user:alice"), ("active", None)]
    history = await rows(
        api,
        "SELECT c.name, t.change_type, t.policy_version FROM tier_changes t JOIN customers c ON c.id = t.customer_id"
        " WHERE t.policy_version = :v ORDER BY c.name",
        v=draft["version"],
    )
    assert [(r.name, r.change_type) for r in history] == [
        ("Busy", "grace"),
        ("Edge", "upgrade"),
        ("High", "upgrade"),
        ("Top", "initial"),
    ]

    # A second activation of the same (now active) policy is refused; the draft can't change any more.
    again = payload(await api.gql(admin, ACTIVATE, {"id": draft["id"]}), "activateTierPolicy")
    assert [e["code"] for e in again["userErrors"]] == ["ILLEGAL_TRANSITION"]
    assert ids


async def test_activation_keeps_exactly_one_active_policy(api: Api) -> None:
    admin = await api.user("alice", "admin")
    first = await create_draft(api, admin, name="A")
    second = await create_draft(api, admin, name="B")
    ok(await api.gql(admin, ACTIVATE, {"id": first["id"]}), "activateTierPolicy")
    ok(await api.gql(admin, ACTIVATE, {"id": second["id"]}), "activateTierPolicy")
    states = await rows(api, "SELECT name, status FROM tier_policies ORDER BY version")
    assert [(r.name, r.status) for r in states] == [("Default standard", "retired"), ("A", "retired"), ("B", "active")]
    active = (await api.gql(admin, "{ activeTierPolicy { name activatedBy } }"))["data"]["activeTierPolicy"]
    assert active == {"name": "B", "activatedBy": "user:alice"}
    audit = await rows(api, "SELECT action FROM audit_log WHERE target_type = 'TierPolicy' ORDER BY id")
    assert [r.action for r in audit] == [
        "tier_policy_created",
        "tier_policy_created",
        "tier_policy_activated",
        "tier_policy_activated",
    ]


async def test_a_large_customer_base_is_re_tiered_by_the_job(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tier_usecases, "INLINE_RETIER_MAX_CUSTOMERS", 1)
    admin = await api.user("alice", "admin")
    await customers_with_spend(api, admin, [("A", ["400.00"]), ("B", ["50.00"])])
    draft = await create_draft(api, admin)
    activated = ok(await api.gql(admin, ACTIVATE, {"id": draft["id"]}), "activateTierPolicy")
    assert activated["retier"]["mode"] == "DEFERRED"
    assert activated["retier"]["jobId"] is not None
    assert [r.tier_code for r in await rows(api, "SELECT tier_code FROM customers ORDER BY name")] == [
        "bronze",
        "bronze",
    ]
    from infra.jobs import QUEUE

    await api.services.jobs.run_worker_async(queues=[QUEUE], wait=False, install_signal_handlers=False)
    assert [r.tier_code for r in await rows(api, "SELECT tier_code FROM customers ORDER BY name")] == [
        "silver",
        "bronze",
    ]
    [run] = await rows(api, "SELECT status, policy_version, customers_done FROM tier_runs")
    assert (run.status, run.policy_version, run.customers_done) == ("done", draft["version"], 2)


# ---------------------------------------------------------------- overrides


async def test_manual_override_wins_until_it_expires_and_is_audited(api: Api) -> None:
    admin = await api.user("alice", "admin")
    ids = await customers_with_spend(api, admin, [("Vip", ["100.00"])])
    cid = ids["Vip"]
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    refused = payload(
        await api.gql(
            admin, OVERRIDE, {"input": {"customerId": cid, "tier": "diamond", "reason": "x", "expiresAt": expires}}
        ),
        "overrideCustomerTier",
    )
    assert [e["field"] for e in refused["userErrors"]] == ["tier"]
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    refused = payload(
        await api.gql(
            admin, OVERRIDE, {"input": {"customerId": cid, "tier": "gold", "reason": " ", "expiresAt": past}}
        ),
        "overrideCustomerTier",
    )
    assert {e["field"] for e in refused["userErrors"]} == {"reason", "expiresAt"}

    done = ok(
        await api.gql(
            admin,
            OVERRIDE,
            {"input": {"customerId": cid, "tier": "gold", "reason": "Goodwill after outage", "expiresAt": expires}},
        ),
        "overrideCustomerTier",
    )
    assert done["customer"]["tier"] == {"code": "gold"}
    await record_purchases(api, admin, {"customerId": cid, "amount": "5.00"})  # an event: the override still wins
    explained = (await api.gql(admin, EXPLAIN, {"id": cid}))["data"]["customer"]
    assert explained["tier"] == {"code": "gold"}
    assert explained["tierExplanation"]["basis"] == "OVERRIDE"
    assert "Goodwill after outage" in explained["tierExplanation"]["text"]

    [audit] = await rows(api, "SELECT actor, target_ids, after FROM audit_log WHERE action = 'tier_override'")
    assert (audit.actor, audit.target_ids) == ("user:alice", [str(raw_id(cid))])
    assert audit.after["reason"] == "Goodwill after outage"

    async with api.services.engine.begin() as conn:  # time passes: the override expired yesterday
        await conn.execute(text("UPDATE customers SET tier_override_expires_at = now() - interval '1 day'"))
    progress = await run_full_retier(api.services.engine, actor="job:retier")  # the nightly job
    assert progress is not None
    [row] = await rows(api, "SELECT tier_code, tier_override_code, tier_override_reason FROM customers")
    assert tuple(row) == ("bronze", None, None)
    history = await rows(api, "SELECT from_tier, to_tier, change_type, reason FROM tier_changes ORDER BY id")
    assert [(h.from_tier, h.to_tier, h.change_type) for h in history] == [
        (None, "bronze", "initial"),
        ("bronze", "gold", "manual_override"),
        ("gold", "bronze", "manual_override"),
    ]
    assert history[-1].reason.startswith("manual override ended")
    assert await rows(api, "SELECT actor FROM audit_log WHERE action = 'tier_override_ended'") == [("job:retier",)]


async def test_clearing_an_override_places_the_customer_by_the_rules(api: Api) -> None:
    admin = await api.user("alice", "admin")
    cid = (await customers_with_spend(api, admin, [("Ann", ["600.00"])]))["Ann"]
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    ok(
        await api.gql(
            admin,
            OVERRIDE,
            {"input": {"customerId": cid, "tier": "bronze", "reason": "Fraud check", "expiresAt": expires}},
        ),
        "overrideCustomerTier",
    )
    cleared = ok(
        await api.gql(
            admin,
            f"""mutation($input: ClearCustomerTierOverrideInput!) {{ clearCustomerTierOverride(input: $input) {{
              customer {{ tier {{ code }} }} {USER_ERRORS} }} }}""",
            {"input": {"customerId": cid, "reason": "Check passed"}},
        ),
        "clearCustomerTierOverride",
    )
    assert cleared["customer"]["tier"] == {"code": "silver"}
    actions = await rows(api, "SELECT action FROM audit_log WHERE action LIKE 'tier_override%' ORDER BY id")
    assert [a.action for a in actions] == ["tier_override", "tier_override_cleared", "tier_override_ended"]


# ---------------------------------------------------------------- explanation


async def test_explanation_in_words_and_numbers_and_what_it_takes_to_move_up(api: Api) -> None:
    admin = await api.user("alice", "admin")
    agent = await api.user("bob", "support_agent")
    cid = (await customers_with_spend(api, admin, [("Ann", ["400.00", "150.00", "20.00"])]))["Ann"]

    e = (await api.gql(admin, EXPLAIN, {"id": cid}))["data"]["customer"]["tierExplanation"]
    assert (e["tier"], e["basis"], e["policyVersion"], e["nextTier"], e["pending"]) == (
        "silver",
        "ENTRY",
        1,
        "gold",
        "keep",
    )
    assert e["heldBy"]["kind"] == "any"
    assert {c["metric"]: (c["actual"], c["holds"]) for c in e["heldBy"]["conditions"]} == {
        "spend_12m": (570.0, True),
        "orders_12m": (3.0, False),
    }
    gaps = {c["metric"]: c["gap"] for c in e["toNextTier"]["conditions"]}
    assert gaps["spend_12m"] == 1430
    assert gaps["orders_12m"] == 5
    assert gaps["days_since_last_purchase"] == 0
    assert "The entry rule of Silver holds" in e["text"]
    assert "spend in the policy window >= 2000 (now 570: 1430 more needed)" in e["text"]

    # The support agent may not read spend figures: the explanation carries none of them.
    seen = (await api.gql(agent, EXPLAIN, {"id": cid}))["data"]["customer"]["tierExplanation"]
    spend_checks = [
        c for c in seen["heldBy"]["conditions"] + seen["toNextTier"]["conditions"] if c["metric"] == "spend_12m"
    ]
    assert all(c["actual"] is None and c["gap"] is None for c in spend_checks)
    assert "570" not in seen["text"]
    assert "1430" not in seen["text"]
    orders = [c for c in seen["toNextTier"]["conditions"] if c["metric"] == "orders_12m"]
    assert orders[0]["actual"] == 3


async def test_score_explanation_gives_points_missing(api: Api) -> None:
    admin = await api.user("alice", "admin")
    cid = (await customers_with_spend(api, admin, [("Gil", ["250.00"] * 8 + ["3000.00"])]))["Gil"]
    e = (await api.gql(admin, EXPLAIN, {"id": cid}))["data"]["customer"]["tierExplanation"]
    assert (e["tier"], e["nextTier"]) == ("gold", "platinum")
    nxt = e["toNextTier"]
    assert nxt["kind"] == "score"
    assert nxt["minScore"] == 95
    assert nxt["score"] == pytest.approx(50 + 13.5, abs=0.1)  # 5000 x 0.01 + 9 x 1.5 (+ tenure ~0)
    assert nxt["pointsMissing"] == pytest.approx(95 - nxt["score"])
    assert "points missing" in e["text"]


# ---------------------------------------------------------------- reports


DISTRIBUTION = (
    "{ tierDistribution { policyVersion customers revenue tiers { tier customers customerShare revenue "
    "revenueShare } } }"
)
MIGRATIONS = """query($since: DateTime!, $until: DateTime) { tierMigrations(since: $since, until: $until) {
  customers moved cells { fromTier toTier customers } changes { changeType count } } }"""


async def test_reports_equal_direct_sql_aggregates(api: Api) -> None:
    admin = await api.user("alice", "admin")
    analyst = await api.user("carol", "analyst")
    await customers_with_spend(api, admin, [("A", ["10.00"]), ("B", ["600.00"]), ("C", ["700.00"]), ("D", [])])
    start = dt.datetime.now(dt.UTC)
    ids = await customers_with_spend(api, admin, [("E", ["20.00"])])
    await record_purchases(api, admin, {"customerId": ids["E"], "amount": "900.00"})

    body = await api.gql(analyst, DISTRIBUTION)
    assert "errors" not in body, body
    report = body["data"]["tierDistribution"]
    expected = await rows(
        api,
        "SELECT c.tier_code, count(*) AS n, coalesce(sum(m.spend_12m), 0) AS revenue FROM customers c"
        " LEFT JOIN customer_metrics m ON m.customer_id = c.id GROUP BY 1",
    )
    total = sum(r.n for r in expected)
    total_revenue = sum(r.revenue for r in expected)
    got = {t["tier"]: t for t in report["tiers"]}
    assert report["customers"] == total == 5
    assert report["revenue"] == f"{total_revenue:.2f}"
    for r in expected:
        assert got[r.tier_code]["customers"] == r.n
        assert got[r.tier_code]["revenue"] == f"{r.revenue:.2f}"
        assert got[r.tier_code]["customerShare"] == pytest.approx(r.n / total, abs=1e-6)
        assert got[r.tier_code]["revenueShare"] == pytest.approx(float(r.revenue / total_revenue), abs=1e-6)
    assert got["platinum"]["customers"] == 0  # every tier of the policy is listed

    body = await api.gql(analyst, MIGRATIONS, {"since": start.isoformat()})
    assert "errors" not in body, body
    m = body["data"]["tierMigrations"]
    history = await rows(api, "SELECT customer_id, to_tier, changed_at FROM tier_changes ORDER BY changed_at, id")
    at_start: dict[Any, str] = {}
    at_end: dict[Any, str] = {}
    for h in history:
        at_end[h.customer_id] = h.to_tier
        if h.changed_at < start:
            at_start[h.customer_id] = h.to_tier
    cells = Counter((at_start.get(c), t) for c, t in at_end.items())
    assert {(c["fromTier"], c["toTier"]): c["customers"] for c in m["cells"]} == dict(cells)
    assert m["customers"] == 5
    assert m["moved"] == 1  # E: new in the period (none -> silver)
    assert {c["changeType"]: c["count"] for c in m["changes"]} == {"initial": 1, "upgrade": 1}

    bad = await api.gql(analyst, MIGRATIONS, {"since": start.isoformat(), "until": "2000-01-01T00:00:00Z"})
    assert error_codes(bad) == ["BAD_USER_INPUT"]


# ---------------------------------------------------------------- access control


async def test_who_may_do_what(api: Api) -> None:
    admin = await api.user("alice", "admin")
    agent = await api.user("bob", "support_agent")
    analyst = await api.user("carol", "analyst")
    marketer = await api.user("dan", "marketing")
    partner, _ = await api.partner_token()
    draft = await create_draft(api, admin)
    own = await create_customer(api, partner, name="Pat", externalRef="p-1")
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    operations: dict[str, tuple[str, dict[str, Any]]] = {
        "create": (CREATE_DRAFT, {"input": draft_input()}),
        "activate": (ACTIVATE, {"id": draft["id"]}),
        "simulate": (SIMULATE, {"id": draft["id"]}),
        "override": (
            OVERRIDE,
            {"input": {"customerId": own["id"], "tier": "gold", "reason": "r", "expiresAt": expires}},
        ),
        "distribution": (DISTRIBUTION, {}),
        "migrations": (MIGRATIONS, {"since": "2020-01-01T00:00:00Z"}),
        "runs": ("{ tierRuns { id } }", {}),
    }
    allowed = {
        agent: set(),
        partner: set(),
        analyst: {"distribution", "migrations"},
        marketer: {"distribution", "migrations"},
    }
    before = await policy_tables(api)
    for token, may in allowed.items():
        for name, (query, variables) in operations.items():
            body = await api.gql(token, query, variables)
            if name in may:
                assert "errors" not in body, (name, body)
            else:
                assert error_codes(body) == ["FORBIDDEN"], (name, body)
    assert await policy_tables(api) == before
    assert await rows(api, "SELECT count(*) FROM customers WHERE tier_override_code IS NOT NULL") == [(0,)]

    # Partners see the explanation of their own customers' tier, without a single metric value.
    seen = await api.gql(partner, EXPLAIN, {"id": own["id"]})
    assert "errors" not in seen, seen
    e = seen["data"]["customer"]["tierExplanation"]
    assert e["tier"] == "bronze"
    assert all(c["actual"] is None for c in e["toNextTier"]["conditions"])
