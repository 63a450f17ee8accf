"""The privacy, reports, SLA-policy, taxonomy and invitation use-cases called directly, as the CLI, jobs or
a console would: a database, a caller (api/usecases/caller.py) and a plain command — no HTTP, no GraphQL
(issue 13, item 2). Each checks its result and its effect in the database: merges and erasures with the
after-change step in their transaction, the export's full-read rule and its audit row, consent, duplicate
candidates, the partner scope of every aggregate, and bad commands that write nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from api.usecases import complaints, customers, privacy, reports, surveys
from api.usecases.caller import Caller
from domain import quality as quality_rules
from domain.errors import Conflict, Forbidden, Invalid, NotFound, ValidationFailed
from domain.sla import SlaTarget
from infra.db import RequestDb
from infra.repos import customers as customers_repo
from infra.repos.base import ALL, Scope
from tests.api.helpers import caller_of, scalar, snapshot
from tests.conftest import Api, test_settings

STAFF = Caller(actor="user:privacy-staff", request_id="req-privacy")  # no principal, scope ALL
SETTINGS = test_settings()


@pytest.fixture
async def db(api: Api) -> AsyncIterator[RequestDb]:
    request_db = RequestDb(api.services.engine.connect)
    yield request_db
    await request_db.close()


async def _customer(db: RequestDb, caller: Caller, **fields: Any) -> UUID:
    done = await customers.create_customer(db, caller, customers.CreateCustomer(fields), settings=SETTINGS)
    return done.customer_id


async def _rows(api: Api, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with api.services.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


# ---------------------------------------------------------------- privacy


async def test_duplicates_dismissed_restored_and_merged(api: Api, db: RequestDb) -> None:
    survivor = await _customer(db, STAFF, name="Jo Bloggs", email="jo@example.org")
    duplicate = await _customer(db, STAFF, name="Joanne Bloggs", email="JO@example.org")
    at = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
    purchase = customers.NewPurchase(amount="25.00", customer_id=duplicate, external_id="dup-1", purchased_at=at)
    await customers.record_purchases(db, STAFF, customers.RecordPurchases([purchase]), settings=SETTINGS)

    listed = await privacy.duplicate_pairs(db, STAFF, privacy.DuplicateQuery(first=10), settings=SETTINGS)
    assert [({r["a_id"], r["b_id"]}, r["reasons"]) for r in listed.rows] == [({survivor, duplicate}, ["email"])]
    assert await listed.count() == 1
    with pytest.raises(ValidationFailed) as bad_cursor:
        await privacy.duplicate_pairs(db, STAFF, privacy.DuplicateQuery(first=10, after="nonsense"), settings=SETTINGS)
    assert bad_cursor.value.field == "after"
    by_phone = privacy.DuplicateQuery(first=10, criteria=["phone"])
    assert (await privacy.duplicate_pairs(db, STAFF, by_phone, settings=SETTINGS)).rows == []

    dismissed = await privacy.dismiss_duplicate_pair(
        db, STAFF, privacy.DismissPair(survivor, duplicate, "family_member")
    )
    assert (dismissed["changed"], dismissed["dismissal"]["dismissed_by"]) == (True, STAFF.actor)
    assert (await privacy.duplicate_pairs(db, STAFF, privacy.DuplicateQuery(first=10), settings=SETTINGS)).rows == []
    with_dismissed = privacy.DuplicateQuery(first=10, include_dismissed=True)
    assert len((await privacy.duplicate_pairs(db, STAFF, with_dismissed, settings=SETTINGS)).rows) == 1
    restored = await privacy.restore_duplicate_pair(db, STAFF, privacy.RestorePair(duplicate, survivor))
    assert restored["changed"] is True
    again = await privacy.restore_duplicate_pair(db, STAFF, privacy.RestorePair(duplicate, survivor))
    assert again["changed"] is False

    # another partner's caller reaches neither customer: like unknown ones, nothing written
    _, partner_id = await api.partner_token("Merge Shop")
    partner = caller_of(api, "tok-merge", "partner", partner_id=partner_id)
    before = await snapshot(api)
    with pytest.raises(NotFound):
        await privacy.merge_customers(db, partner, privacy.MergeCustomers(survivor, duplicate))
    assert await snapshot(api) == before

    record = await privacy.merge_customers(db, STAFF, privacy.MergeCustomers(survivor, duplicate))
    assert (record["survivor_id"], record["duplicate_id"]) == (survivor, duplicate)
    assert await scalar(api, "SELECT merged_into_id FROM customers WHERE id = :id", id=duplicate) == survivor
    assert await _rows(api, "SELECT customer_id FROM purchases WHERE external_id = 'dup-1'") == [(survivor,)]
    # the after-change step ran for the survivor in the merge's transaction: it holds the purchase now
    assert await scalar(api, "SELECT order_count FROM customer_metrics WHERE customer_id = :id", id=survivor) == 1
    audit = await _rows(api, "SELECT actor, request_id FROM audit_log WHERE action = 'customers_merged'")
    assert audit == [(STAFF.actor, STAFF.request_id)]


async def test_erasure_consent_and_export(api: Api, db: RequestDb) -> None:
    cid = await _customer(db, STAFF, name="Eve Example", email="eve@example.org", phone="+44 20 7946 0000")
    assert await privacy.set_consent(db, STAFF, privacy.SetConsent(cid, "email", True)) is True
    assert await privacy.set_consent(db, STAFF, privacy.SetConsent(cid, "email", True)) is False  # a repeat
    stored = (await customers_repo.by_ids(db, [cid], columns=("consent_email_at",), scope=ALL))[cid]
    assert stored["consent_email_at"] is not None

    # an export hands out every field decrypted: refused to a caller that may not read them all in full
    agent = caller_of(api, "agent-export", "support_agent")
    assert "Customer.email" in privacy.export_gaps(agent.decisions)  # the agent reads it masked
    with pytest.raises(Forbidden):
        await privacy.export_customer_data(db, agent, cid)
    _, partner_id = await api.partner_token("Export Shop")
    with pytest.raises(NotFound):  # outside a partner's scope, whatever its rights
        await privacy.export_customer_data(db, Caller("token:export", scope=Scope(partner_id=partner_id)), cid)
    assert await scalar(api, "SELECT count(*) FROM audit_log WHERE action = 'customer_exported'") == 0

    data = await privacy.export_customer_data(db, STAFF, cid)
    assert "eve@example.org" in str(data)  # decrypted
    exported = await _rows(api, "SELECT actor, target_ids FROM audit_log WHERE action = 'customer_exported'")
    assert exported == [(STAFF.actor, [str(cid)])]

    erased = await privacy.erase_customer(db, STAFF, cid)
    assert erased.ids == [cid]
    row = (await customers_repo.by_ids(db, [cid], columns=("name", "email", "phone"), scope=ALL))[cid]
    assert (row["name"], row["email"], row["phone"]) == (quality_rules.ERASED_NAME, None, None)
    before = await snapshot(api)
    with pytest.raises(Conflict):  # a second erase
        await privacy.erase_customer(db, STAFF, cid)
    assert await snapshot(api) == before


async def test_the_quality_report_counts_within_the_scope(api: Api, db: RequestDb) -> None:
    await _customer(db, STAFF, name="No Email")
    _, partner_id = await api.partner_token("Report Shop")
    partner = caller_of(api, "tok-quality", "partner", partner_id=partner_id)
    await _customer(db, partner, name="Partner One", email="p1@example.org")
    everyone = await privacy.data_quality_report(db, STAFF, settings=SETTINGS)
    theirs = await privacy.data_quality_report(db, partner, settings=SETTINGS)
    assert (everyone["live"], theirs["live"]) == (2, 1)
    missing = {m["field"]: m["missing"] for m in theirs["missing"]}
    assert missing["email"] == 0


# ---------------------------------------------------------------- reports


def test_a_period_needs_time_zones_and_order() -> None:
    naive, aware = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # noqa: DTZ001
    with pytest.raises(ValidationFailed, match="from needs a time zone"):
        reports.period(naive, None)
    with pytest.raises(ValidationFailed, match="from must be before to"):
        reports.period(aware, aware)
    assert reports.period(None, aware) == reports.Period(None, aware)
    with pytest.raises(ValidationFailed):
        reports.check_top_root_causes(51)


def test_fairness_compares_the_lowest_tier_with_the_highest() -> None:
    assert reports.compare("nps", 10.0, 40.0) == reports.Comparison("nps", 10.0, 40.0, 0.25, -30.0)
    assert reports.compare("slaBreachRate", 0.2, 0.0).ratio is None  # no ratio to zero
    assert reports.compare("nps", None, 40.0) == reports.Comparison("nps", None, 40.0, None, None)


async def test_reports_count_only_the_callers_customers(api: Api, db: RequestDb) -> None:
    _, partner_id = await api.partner_token("Analytics Shop")
    partner = caller_of(api, "tok-analytics", "partner", partner_id=partner_id)
    ours = await _customer(db, partner, name="Ours")
    staffs = await _customer(db, STAFF, name="Staff's")
    for caller, cid in ((partner, ours), (STAFF, staffs), (STAFF, staffs)):
        await complaints.open_complaint(db, caller, complaints.OpenComplaint(cid, "Late", "Not here.", "delivery"))

    def total(rows: list[dict[str, Any]]) -> int:
        return sum(int(r["complaints"]) for r in rows)

    everything = reports.Period()
    assert total(await reports.complaint_rates(db, STAFF, everything)) == 3
    assert total(await reports.complaint_rates(db, partner, everything)) == 1
    fair = await reports.fairness(db, partner, everything)
    assert sum(int(t["complaints"]) for t in fair.tiers) == 1
    assert fair.lowest_tier == fair.tiers[0]["tier"]
    assert [c.measure for c in fair.comparisons] == [m for m, _ in reports.FAIRNESS_MEASURES]
    levels = await reports.churn_levels(db, partner)
    assert sum(int(r["customers"]) for r in levels) == 1


# ---------------------------------------------------------------- SLA policies, taxonomies, invitations


async def test_taxonomies_and_sla_policies_are_validated_and_audited(api: Api, db: RequestDb) -> None:
    before = await snapshot(api)
    with pytest.raises(Invalid) as bad:
        await complaints.add_taxon(db, STAFF, complaints.AddTaxon(complaints.CATEGORIES, "9 bad", " "))
    assert [e.field for e in bad.value.errors] == ["code", "label"]
    with pytest.raises(Invalid):  # a target of a tier that does not exist
        await complaints.create_sla_policy(
            db, STAFF, complaints.CreateSlaPolicy("Bad", [SlaTarget("platinum", "high", 30, 600)])
        )
    assert await snapshot(api) == before

    taxon = await complaints.add_taxon(
        db, STAFF, complaints.AddTaxon(complaints.CATEGORIES, " Returns ", "  Returns  ")
    )
    assert (taxon["code"], taxon["label"]) == ("returns", "Returns")
    assert "returns" in [t["code"] for t in await complaints.taxonomy(db, STAFF, complaints.CATEGORIES)]
    await complaints.deactivate_taxon(db, STAFF, complaints.CATEGORIES, "RETURNS")
    assert "returns" not in [t["code"] for t in await complaints.taxonomy(db, STAFF, complaints.CATEGORIES)]
    actions = await _rows(api, "SELECT action, actor FROM audit_log WHERE target_type = 'categories' ORDER BY id")
    assert actions == [("taxonomy.add", STAFF.actor), ("taxonomy.deactivate", STAFF.actor)]

    targets = [SlaTarget(" * ", severity, 60, 24 * 60) for severity in ("low", "medium", "high", "critical")]
    policy_id = await complaints.create_sla_policy(db, STAFF, complaints.CreateSlaPolicy("  Simple   SLA ", targets))
    await complaints.activate_sla_policy(db, STAFF, policy_id)
    [active] = await complaints.sla_policies(db, STAFF, ["active"])
    assert (active.row["id"], active.row["name"], active.row["activated_by"]) == (policy_id, "Simple SLA", STAFF.actor)
    assert {t.tier for t in active.targets} == {"*"}


async def test_invitations_reach_only_the_callers_customers(api: Api, db: RequestDb) -> None:
    survey_id = await surveys.create_survey(
        db,
        STAFF,
        surveys.CreateSurvey(
            title="How did we do?",
            channels=["email", "web"],
            questions=[surveys.NewQuestion(kind="csat", dimension="service", prompt="Happy?")],
        ),
    )
    _, partner_id = await api.partner_token("Invite Shop")
    partner = caller_of(api, "tok-invite", "partner", partner_id=partner_id)
    ours = await _customer(db, partner, name="Ours", email="ours@example.org")
    staffs = await _customer(db, STAFF, name="Staff's", email="staffs@example.org")

    with pytest.raises(ValidationFailed) as too_many:
        await surveys.invite_to_survey(db, partner, surveys.InviteToSurvey(survey_id, [ours] * 101), settings=SETTINGS)
    assert too_many.value.field == "customerIds"
    with pytest.raises(ValidationFailed) as channel:
        await surveys.invite_to_survey(
            db, partner, surveys.InviteToSurvey(survey_id, [ours], channel="sms"), settings=SETTINGS
        )
    assert channel.value.field == "channel"

    done = await surveys.invite_to_survey(
        db, partner, surveys.InviteToSurvey(survey_id, [ours, staffs, staffs], channel="web"), settings=SETTINGS
    )
    assert done.not_found == [staffs]  # once, like an unknown customer
    assert [o.customer_id for o in done.outcomes] == [ours]
    invited = await _rows(api, "SELECT customer_id FROM survey_invitations WHERE survey_id = :s", s=survey_id)
    assert invited == ([(ours,)] if done.outcomes[0].invitation is not None else [])
    assert await scalar(api, "SELECT count(*) FROM survey_invitations WHERE customer_id = :c", c=staffs) == 0
