"""The customers use-cases called directly, as the CLI, jobs or a console would: a database, a caller
(api/usecases/caller.py: actor, principal, row scope, field rights) and a plain command — no HTTP, no
GraphQL (issue 13, item 2). Each checks the result and its effect in the database: the write grants per
field, the partner scope, the initial tier and the metrics kept by the after-change step, all-or-nothing
batches and idempotent replays."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from api.usecases import customers
from api.usecases.caller import Caller
from api.usecases.duplicates import LikelyDuplicates
from domain.errors import Conflict, Invalid, NotFound, ValidationFailed
from infra.db import RequestDb
from infra.repos import customers as customers_repo
from infra.repos.base import ALL
from tests.api.helpers import caller_of, scalar, snapshot
from tests.conftest import Api, test_settings

STAFF = Caller(actor="user:usecase-staff")  # no principal, scope ALL: the operator's own tools
SETTINGS = test_settings()


@pytest.fixture
async def db(api: Api) -> AsyncIterator[RequestDb]:
    request_db = RequestDb(api.services.engine.connect)
    yield request_db
    await request_db.close()


async def _stored(db: RequestDb, customer_id: UUID, *columns: str) -> tuple[Any, ...]:
    """Columns of a customer as stored, decrypted (the encrypted ones read back through the repository)."""
    row = (await customers_repo.by_ids(db, [customer_id], columns=columns, scope=ALL))[customer_id]
    return tuple(row[c] for c in columns)


async def _create(db: RequestDb, caller: Caller, fields: dict[str, Any]) -> UUID:
    done = await customers.create_customer(db, caller, customers.CreateCustomer(fields), settings=SETTINGS)
    return done.customer_id


async def _row(api: Api, sql: str, **params: Any) -> tuple[Any, ...]:
    async with api.services.engine.connect() as conn:
        return tuple((await conn.execute(text(sql), params)).one())


async def test_create_places_the_customer_and_stamps_the_partner(api: Api, db: RequestDb) -> None:
    staff_customer = await _create(db, STAFF, {"name": "  Ada   Lovelace ", "email": "ADA@Example.org"})
    name, email, partner, tier = await _stored(db, staff_customer, "name", "email", "partner_id", "tier_code")
    assert (name, email, partner) == ("Ada Lovelace", "ada@example.org", None)  # normalised as stored
    assert tier == "bronze"  # the after-change step placed it in the same transaction
    assert await scalar(api, "SELECT count(*) FROM customer_metrics WHERE customer_id = :id", id=staff_customer) == 1

    _, partner_id = await api.partner_token("Usecase Shop")
    partner = caller_of(api, "tok-usecase", "partner", partner_id=partner_id)
    theirs = await _create(db, partner, {"name": "Bo", "external_ref": "shop-1"})
    assert await scalar(api, "SELECT partner_id FROM customers WHERE id = :id", id=theirs) == partner_id

    before = await snapshot(api)
    with pytest.raises(Conflict):  # the partner's reference is taken
        await customers.create_customer(
            db, partner, customers.CreateCustomer({"name": "Other", "external_ref": "shop-1"}), settings=SETTINGS
        )
    twin = customers.CreateCustomer({"name": "Ada L.", "email": "ada@example.org"}, stop_on_duplicate=True)
    with pytest.raises(LikelyDuplicates) as stopped:  # a likely duplicate, and the caller asked to stop
        await customers.create_customer(db, STAFF, twin, settings=SETTINGS)
    assert [c.customer_id for c in stopped.value.candidates] == [staff_customer]
    with pytest.raises(ValidationFailed) as nameless:
        await customers.create_customer(db, STAFF, customers.CreateCustomer({"locale": "en"}), settings=SETTINGS)
    assert nameless.value.field == "name"
    assert await snapshot(api) == before


async def test_write_grants_per_field_come_from_the_callers_decisions(api: Api, db: RequestDb) -> None:
    customer_id = await _create(db, STAFF, {"name": "Grace"})
    agent = caller_of(api, "agent-1", "support_agent")  # writes contact fields, not the national id
    before = await snapshot(api)
    with pytest.raises(Invalid) as denied:
        await customers.update_customer(
            db,
            agent,
            customers.UpdateCustomer(
                customer_id, 1, {"email": "g@example.org", "national_id": "X1", "birth_date": None}
            ),
            settings=SETTINGS,
        )
    assert [(e.code, e.field) for e in denied.value.errors] == [
        ("FORBIDDEN", "national_id"),
        ("FORBIDDEN", "birth_date"),
    ]
    assert await snapshot(api) == before  # nothing written, not even the allowed field

    assert (
        await customers.update_customer(
            db, agent, customers.UpdateCustomer(customer_id, 1, {"phone": "+44 20 7946 0958"}), settings=SETTINGS
        )
        == customer_id
    )
    assert await _stored(db, customer_id, "phone", "version") == ("+442079460958", 2)
    with pytest.raises(Conflict):  # a stale version
        await customers.update_customer(
            db, agent, customers.UpdateCustomer(customer_id, 1, {"name": "G"}), settings=SETTINGS
        )
    with pytest.raises(ValidationFailed) as empty:
        await customers.update_customer(db, agent, customers.UpdateCustomer(customer_id, 2, {}), settings=SETTINGS)
    assert empty.value.field == "input"


async def test_a_partner_reaches_only_its_own_customers(api: Api, db: RequestDb) -> None:
    staff_customer = await _create(db, STAFF, {"name": "Staff Owned", "email": "owned@example.org"})
    _, partner_id = await api.partner_token("Scoped Shop")
    partner = caller_of(api, "tok-scoped", "partner", partner_id=partner_id)
    own = await _create(db, partner, {"name": "Own", "email": "own@example.org"})

    before = await snapshot(api)
    with pytest.raises(NotFound):
        await customers.update_customer(
            db, partner, customers.UpdateCustomer(staff_customer, 1, {"name": "Taken"}), settings=SETTINGS
        )
    with pytest.raises(NotFound):
        await customers.delete_customer(db, partner, customers.DeleteCustomer(staff_customer, 1))
    assert await snapshot(api) == before

    async def page(caller: Caller, f: customers.CustomerFilter) -> customers.CustomerPage:
        return await customers.customer_page(
            db, caller, f, columns=("name", "email"), sort="CREATED_AT", first=10, after=None, settings=SETTINGS
        )

    mine = await page(partner, customers.CustomerFilter())
    assert [r["id"] for r in mine.page.rows] == [own]
    assert await mine.count() == 1
    # the filter's e-mail is matched in its stored form (lower case), within the scope only
    by_email = customers.CustomerFilter(email="OWNED@example.org")
    assert [r["id"] for r in (await page(STAFF, by_email)).page.rows] == [staff_customer]
    assert (await page(partner, by_email)).page.rows == []

    await customers.delete_customer(db, partner, customers.DeleteCustomer(own, 1))
    assert await scalar(api, "SELECT deleted_at IS NOT NULL FROM customers WHERE id = :id", id=own)


async def test_record_purchases_all_or_nothing_and_idempotent(api: Api, db: RequestDb) -> None:
    _, partner_id = await api.partner_token("Purchase Shop")
    partner = caller_of(api, "tok-purchases", "partner", partner_id=partner_id)
    cid = await _create(db, partner, {"name": "Buyer", "external_ref": "b-1"})
    staff_customer = await _create(db, STAFF, {"name": "Not Theirs", "external_ref": "b-2"})
    at = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)

    before = await snapshot(api)
    bad = customers.RecordPurchases(
        [
            customers.NewPurchase(amount="12.345", customer_id=cid, external_id="p-1"),  # 3 decimals
            customers.NewPurchase(amount="5", customer_external_ref="b-2"),  # another partner's reference
            customers.NewPurchase(amount="5", unknown_customer_id=True),  # a malformed id, decoded by the edge
            customers.NewPurchase(amount="5", customer_id=cid, customer_external_ref="b-1"),  # both given
        ]
    )
    with pytest.raises(Invalid) as invalid:
        await customers.record_purchases(db, partner, bad, settings=SETTINGS)
    assert [e.field for e in invalid.value.errors] == [
        "purchases[0].amount",
        "purchases[3].customerId",
        "purchases[1].customerExternalRef",
        "purchases[2].customerId",
    ]
    assert await snapshot(api) == before

    batch = customers.RecordPurchases(
        [
            customers.NewPurchase(amount=Decimal("40.00"), customer_id=cid, external_id="p-1", purchased_at=at),
            customers.NewPurchase(amount="10.50", customer_external_ref="b-1", external_id="p-2", purchased_at=at),
        ]
    )
    done = await customers.record_purchases(db, partner, batch, settings=SETTINGS)
    assert done.inserted == 2
    assert [(r["customer_id"], r["amount"], r["currency"]) for r in done.rows] == [
        (cid, Decimal("40.00"), SETTINGS.currency),
        (cid, Decimal("10.50"), SETTINGS.currency),
    ]
    metrics = await _row(
        api, "SELECT order_count, lifetime_spend FROM customer_metrics WHERE customer_id = :id", id=cid
    )
    assert metrics == (2, Decimal("50.50"))  # the after-change step, in the same transaction

    before = await snapshot(api)
    again = await customers.record_purchases(db, partner, batch, settings=SETTINGS)  # a replay
    assert (again.inserted, [r["id"] for r in again.rows]) == (0, [r["id"] for r in done.rows])
    changed = customers.RecordPurchases(
        [customers.NewPurchase(amount="41.00", customer_id=cid, external_id="p-1", purchased_at=at)]
    )
    with pytest.raises(Invalid) as reused:
        await customers.record_purchases(db, partner, changed, settings=SETTINGS)
    assert [(e.code, e.field) for e in reused.value.errors] == [("CONFLICT", "purchases[0].externalId")]
    with pytest.raises(ValidationFailed):
        await customers.record_purchases(db, partner, customers.RecordPurchases([]), settings=SETTINGS)
    assert await snapshot(api) == before
    assert await scalar(api, "SELECT count(*) FROM purchases WHERE customer_id = :id", id=staff_customer) == 0
