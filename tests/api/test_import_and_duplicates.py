"""The duplicate warning of createCustomer and the customer import (issue 16), over real HTTP with real
tokens: matches only among the caller's own customers and only on fields it reads in full; every row
checked like createCustomer, reported by row, idempotent on the external reference, all or nothing unless
told, nothing written by a dry run or by bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.helpers import module_api, ok, payload, snapshot
from tests.api.security_helpers import sql
from tests.api.test_work_queues import grant_role
from tests.conftest import Api

CREATE = """mutation($input: CreateCustomerInput!) { createCustomer(input: $input) {
  customer { id } duplicates { id reasons customer { id name } } userErrors { field code message } } }"""
IMPORT = """mutation($input: ImportCustomersInput!) { importCustomers(input: $input) {
  summary { rows valid invalid created existing duplicates written }
  problems { row field message } warnings { row field message }
  duplicates { row candidates { id reasons } }
  userErrors { field code message } } }"""


@dataclass
class Fx:
    api: Api
    admin: str
    partner: str
    partner_b: str
    steward: str


@pytest.fixture(scope="module")
async def fx(template_db: str) -> AsyncIterator[Fx]:
    async with module_api(template_db) as api:
        admin = await api.user("alice", "admin")
        partner, _ = await api.partner_token("Northwind Shop")
        partner_b, _ = await api.partner_token("Southwind Traders")
        yield Fx(api, admin, partner, partner_b, await api.user("sam", "data_steward"))


async def create(fx: Fx, token: str, **fields: Any) -> dict[str, Any]:
    return payload(await fx.api.gql(token, CREATE, {"input": fields}), "createCustomer")


# ---------------------------------------------------------------- createCustomer


async def test_create_customer_lists_likely_duplicates_and_can_stop(fx: Fx) -> None:
    first = await create(fx, fx.admin, name="Hanna Berg", email="hanna.berg@example.org", birthDate="1980-02-03")
    assert first["duplicates"] == []
    assert first["userErrors"] == []
    same_mail = await create(fx, fx.admin, name="H. Berg", email=" Hanna.Berg@EXAMPLE.org ")
    assert same_mail["customer"] is not None  # created: a warning, not a refusal
    assert same_mail["duplicates"] == [
        {
            "id": first["customer"]["id"],
            "reasons": ["EMAIL"],
            "customer": {"id": first["customer"]["id"], "name": "Hanna Berg"},
        }
    ]
    similar = await create(fx, fx.admin, name="Hana Berg", birthDate="1980-02-03")
    assert [(d["id"], d["reasons"]) for d in similar["duplicates"]] == [(first["customer"]["id"], ["SIMILAR_NAME_DOB"])]
    exact = await create(fx, fx.admin, name="hanna  BERG", birthDate="1980-02-03")
    assert "NAME_DOB" in exact["duplicates"][0]["reasons"]
    assert exact["duplicates"][0]["id"] == first["customer"]["id"]

    before = await snapshot(fx.api)
    stopped = await create(fx, fx.admin, name="Hanna Berg", email="hanna.berg@example.org", onDuplicate="STOP")
    assert stopped["customer"] is None
    assert [e["code"] for e in stopped["userErrors"]] == ["DUPLICATE"]
    assert first["customer"]["id"] in [d["id"] for d in stopped["duplicates"]]
    assert await snapshot(fx.api) == before  # nothing written
    unrelated = await create(fx, fx.admin, name="Otto Neu", email="otto.neu@example.org", onDuplicate="STOP")
    assert unrelated["customer"] is not None
    assert unrelated["duplicates"] == []


async def test_the_duplicate_warning_stays_in_the_partner_and_on_fields_read_in_full(fx: Fx) -> None:
    theirs = await create(fx, fx.partner_b, name="Ines Kraft", externalRef="sw-ines", email="ines@example.com")
    assert theirs["userErrors"] == []
    # partner A writes the same e-mail: partner B's customer is never named (and A can't read e-mails anyway)
    mine = await create(fx, fx.partner, name="Ines Kraft", externalRef="nw-ines", email="ines@example.com")
    assert mine["duplicates"] == []
    assert mine["customer"] is not None
    # partners may not read e-mails in full: not even their own customers are matched by e-mail (an oracle)
    again = await create(
        fx, fx.partner, name="Ines K.", externalRef="nw-ines-2", email="ines@example.com", onDuplicate="STOP"
    )
    assert again["duplicates"] == []
    assert again["customer"] is not None
    # a role that reads e-mails in full but not names: matched by e-mail, the candidate is its id only
    await grant_role(
        fx.api,
        fx.admin,
        "intake",
        ("Mutation.createCustomer", "WRITE"),
        ("Customer.name", "WRITE"),
        ("Customer.email", "WRITE"),
        ("Customer.externalRef", "WRITE"),
        ("Customer.email", "READ"),
    )
    token, _ = await fx.api.partner_token("Northwind Shop", role="intake")
    body = await fx.api.gql(
        token, CREATE, {"input": {"name": "Ines", "externalRef": "nw-ines-3", "email": "ines@example.com"}}
    )
    found = body["data"]["createCustomer"]["duplicates"]
    assert {d["id"] for d in found} == {mine["customer"]["id"], again["customer"]["id"]}
    assert all(d["customer"]["name"] is None and d["customer"]["id"] == d["id"] for d in found)
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN_FIELD"}
    assert theirs["customer"]["id"] not in str(body)


# ---------------------------------------------------------------- importCustomers


def row(ref: str, name: str, **cells: str) -> dict[str, str]:
    return {"externalRef": ref, "name": name, **cells}


async def imported(fx: Fx, token: str, rows: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return payload(await fx.api.gql(token, IMPORT, {"input": {"rows": rows, **options}}), "importCustomers")


async def test_a_dry_run_reports_every_problem_by_row_and_writes_nothing(fx: Fx) -> None:
    rows = [
        row("imp-1", "Lena Wolf", email="lena@example.org", phone="+49 30 1234567", birthDate="1991-05-06"),
        row("imp-2", "", email="not-an-email", birthDate="06.05.1991"),
        row("", "Kai Kurz", addressCity="Berlin"),
        row("imp-1", "Lena Again"),
    ]
    before = await snapshot(fx.api)
    result = await imported(fx, fx.partner, rows, dryRun=True)
    assert result["summary"] == {
        "rows": 4,
        "valid": 1,
        "invalid": 3,
        "created": 0,
        "existing": 0,
        "duplicates": 0,
        "written": False,
    }
    problems = {(p["row"], p["field"]) for p in result["problems"]}
    assert problems == {
        (2, "name"),
        (2, "email"),
        (2, "birthDate"),
        (3, "externalRef"),
        (3, "address"),
        (4, "externalRef"),
    }
    assert await snapshot(fx.api) == before
    # all or nothing: the same rows for real write nothing either
    assert (await imported(fx, fx.partner, rows))["summary"]["written"] is False
    assert await snapshot(fx.api) == before


async def test_an_import_writes_customers_like_create_and_a_rerun_changes_nothing(fx: Fx) -> None:
    rows = [
        row(
            "imp-10",
            "Mira Stein",
            email="Mira.Stein@Example.org",
            phone="030 9876543",
            birthDate="1985-01-02",
            addressLine1="Hauptstr. 1",
            addressCity="Berlin",
            addressCountry="de",
            addressPostalCode="10115",
        ),
        row("imp-11", "Jonas Feld", lifecycleStage="ACTIVE", locale="de-DE"),
    ]
    result = await imported(fx, fx.steward, rows)
    assert result["summary"] == {
        "rows": 2,
        "valid": 2,
        "invalid": 0,
        "created": 2,
        "existing": 0,
        "duplicates": 0,
        "written": True,
    }
    stored = await sql(
        fx.api.url,
        "SELECT external_ref, name, email, email_bidx IS NOT NULL, lifecycle_stage, locale, partner_id,"
        " tier_code IS NOT NULL FROM customers WHERE external_ref IN ('imp-10', 'imp-11') ORDER BY external_ref",
    )
    assert [r[0] for r in stored] == ["imp-10", "imp-11"]
    assert stored[0][2].startswith("tw2:")
    assert stored[0][3] is True
    assert (stored[1][4], stored[1][5], stored[1][6], stored[1][7]) == ("active", "de_DE", None, True)  # tiered at once
    # read back through the API: normalised like createCustomer (e-mail lower case, E.164 phone, country upper)
    body = await fx.api.gql(
        fx.admin,
        '{ customers(filter: {email: "mira.stein@example.org"}) { edges { node { email phone address { country } } } } }',
    )
    assert body["data"]["customers"]["edges"][0]["node"] == {
        "email": "mira.stein@example.org",
        "phone": "+49309876543",
        "address": {"country": "DE"},
    }

    before = await snapshot(fx.api)
    again = await imported(fx, fx.steward, rows)
    assert again["summary"] == {
        "rows": 2,
        "valid": 2,
        "invalid": 0,
        "created": 0,
        "existing": 2,
        "duplicates": 0,
        "written": False,
    }
    assert await snapshot(fx.api) == before
    changed = await imported(fx, fx.steward, [row("imp-10", "Mira Steinbach")])
    assert changed["summary"]["existing"] == 1
    assert changed["summary"]["created"] == 0
    assert [(w["row"], w["field"]) for w in changed["warnings"]] == [(1, "externalRef")]
    assert "name" in changed["warnings"][0]["message"]


async def test_partial_imports_skip_invalid_rows_and_warn_of_duplicates(fx: Fx) -> None:
    ok(
        await fx.api.gql(fx.admin, CREATE, {"input": {"name": "Old Timer", "email": "old.timer@example.org"}}),
        "createCustomer",
    )
    rows = [row("imp-20", "New Timer", email="old.timer@example.org"), row("imp-21", "Bad Mail", email="nope")]
    result = await imported(fx, fx.admin, rows, allOrNothing=False)
    assert result["summary"]["created"] == 1
    assert result["summary"]["invalid"] == 1
    assert result["summary"]["written"] is True
    assert result["duplicates"][0]["row"] == 1
    assert result["duplicates"][0]["candidates"][0]["reasons"] == ["EMAIL"]
    assert [p["row"] for p in result["problems"]] == [2]
    assert await sql(fx.api.url, "SELECT count(*) FROM customers WHERE external_ref = 'imp-21'") == [(0,)]
    # two new rows of one call with the same phone: a warning on the later one (both written: a warning)
    twins = [row("imp-30", "Twin One", phone="+49 30 5550001"), row("imp-31", "Twin Two", phone="030 5550001")]
    result = await imported(fx, fx.admin, twins)
    assert result["summary"]["created"] == 2
    assert result["warnings"] == [
        {"row": 2, "field": "row", "message": "likely the same customer: same PHONE as row 1"}
    ]


async def test_a_partners_import_is_its_own_and_needs_its_write_grants(fx: Fx) -> None:
    result = await imported(fx, fx.partner, [row("nw-imp-1", "Partner Kundin")])
    assert result["summary"]["created"] == 1
    owner = await sql(
        fx.api.url,
        "SELECT p.name FROM customers c JOIN partners p ON p.id = c.partner_id WHERE c.external_ref = 'nw-imp-1'",
    )
    assert owner == [("Northwind Shop",)]
    # the same reference in another partner is another customer
    assert (await imported(fx, fx.partner_b, [row("nw-imp-1", "Other Kundin")]))["summary"]["created"] == 1
    # partners may not set the lifecycle stage (no write grant): the whole call is refused, nothing written
    before = await snapshot(fx.api)
    refused = await imported(fx, fx.partner, [row("nw-imp-2", "Kim", lifecycleStage="active")])
    assert [e["code"] for e in refused["userErrors"]] == ["FORBIDDEN"]
    assert await snapshot(fx.api) == before
    # support agents have no import
    agent = await fx.api.user("bob", "support_agent")
    body = await fx.api.gql(agent, IMPORT, {"input": {"rows": [row("x", "y")]}})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    too_many = await imported(fx, fx.partner, [row(f"r{i}", "N") for i in range(fx.api.settings.max_batch_size + 1)])
    assert [e["code"] for e in too_many["userErrors"]] == ["INVALID"]


async def test_an_imported_customer_is_stored_exactly_as_create_customer_stores_one(fx: Fx) -> None:
    """The import writes set-based (COPY into a staging table, one statement placing the customers in their
    tier at insert): the rows it leaves are those createCustomer and its after-change step leave — tier
    columns, the metrics row, the history row with the metric values that decided it, the ``tier.changed``
    event in the partner's scope — ids and times aside."""
    made = await create(fx, fx.partner, name="Same Shape", externalRef="shape-create", email="a.shape@example.org")
    assert made["userErrors"] == []
    result = await imported(fx, fx.partner, [row("shape-import", "Same Shape", email="b.shape@example.org")])
    assert result["summary"]["created"] == 1
    by_ref = {
        r["external_ref"]: r
        for r in await sql(
            fx.api.url,
            "SELECT c.external_ref, c.partner_id, c.tier_code, c.tier_since = c.created_at AS since_creation,"
            " c.tier_policy_version, c.tier_grace_since, c.version, c.lifecycle_stage,"
            " to_jsonb(m) - 'customer_id' - 'computed_at' AS metrics,"
            " (SELECT jsonb_agg(to_jsonb(t) - 'id' - 'customer_id' - 'changed_at' - 'actor' - 'metrics'"
            "                   || jsonb_build_object('metrics', t.metrics - 'tenure_days'))"
            "  FROM tier_changes t WHERE t.customer_id = c.id) AS history,"
            " (SELECT jsonb_agg(jsonb_build_object('type', e.type, 'partner', e.partner_id::text,"
            "                   'keys', (SELECT jsonb_agg(k ORDER BY k) FROM jsonb_object_keys(e.data) k),"
            "                   'change', e.data - 'customerId'))"
            "  FROM events e WHERE e.customer_id = c.id) AS events"
            " FROM customers c JOIN customer_metrics m ON m.customer_id = c.id"
            " WHERE c.external_ref IN ('shape-create', 'shape-import')",
        )
    }
    created, imported_row = dict(by_ref["shape-create"]), dict(by_ref["shape-import"])
    assert created["tier_code"] is not None
    assert created["partner_id"] is not None
    assert imported_row == created | {"external_ref": "shape-import"}
    assert '"tier.changed"' in imported_row["events"]
    assert str(created["partner_id"]) in imported_row["events"]  # the event is in the partner's scope
