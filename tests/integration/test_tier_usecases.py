"""The tier use-cases called directly, as the CLI, a job or the console would: a database, a caller and a
command, no HTTP and no GraphQL. Each result is checked, and so is its effect in the database (the policy, the
customers' tiers, the audit log)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.usecases import tiers as usecases
from api.usecases.caller import Caller
from authz.principal import Principal, PrincipalKind
from domain.errors import Conflict, Invalid, NotFound
from infra.db import RequestDb
from infra.repos.base import Scope

_ADMIN = Principal(PrincipalKind.USER, "ops-1", roles=("admin",))
ADMIN = Caller(actor=_ADMIN.subject, principal=_ADMIN)
ALWAYS = {"always": True}
TIERS = [
    usecases.TierDraft("bronze", " Bronze ", 0, ALWAYS, ALWAYS, benefits=[" Welcome mail ", " "]),
    usecases.TierDraft(
        "silver",
        "Silver",
        1,
        {"all": [{"metric": "spend_12m", "op": ">=", "value": 300}]},
        {"all": [{"metric": "spend_12m", "op": ">=", "value": 250}]},
    ),
]


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[RequestDb]:
    request_db = RequestDb(engine.connect)
    yield request_db
    await request_db.close()


async def sql(engine: AsyncEngine, statement: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def customer(engine: AsyncEngine, name: str, partner_id: UUID | None = None) -> UUID:
    [(customer_id,)] = await sql(
        engine, "INSERT INTO customers (name, partner_id) VALUES (:n, :p) RETURNING id", n=name, p=partner_id
    )
    return customer_id  # type: ignore[no-any-return]


async def test_draft_activate_and_override_without_graphql(engine: AsyncEngine, db: RequestDb) -> None:
    alice, bob = await customer(engine, "Alice"), await customer(engine, "Bob")
    await sql(
        engine,
        "INSERT INTO purchases (customer_id, amount, currency, purchased_at) VALUES (:c, 400, 'EUR', now())",
        c=bob,
    )

    draft = await usecases.create_draft(db, ADMIN, usecases.CreateDraft(name=" Two tiers ", tiers=TIERS))
    assert draft is not None
    assert (draft["status"], draft["name"], draft["created_by"]) == ("draft", "Two tiers", "user:ops-1")
    policy_id = draft["id"]
    [(benefits,)] = await sql(
        engine, "SELECT benefits FROM tiers WHERE policy_id = :p AND code = 'bronze'", p=policy_id
    )
    assert benefits == ["Welcome mail"]

    done = await usecases.activate_policy(db, ADMIN, policy_id, draft["revision"], jobs=None)
    assert done.policy is not None
    assert done.policy["status"] == "active"
    assert done.retier.mode is usecases.RetierMode.INLINE
    assert (done.retier.customers, done.retier.changes, done.retier.job_id) == (2, 2, None)
    tiers = dict(await sql(engine, "SELECT name, tier_code FROM customers"))
    assert tiers == {"Alice": "bronze", "Bob": "silver"}

    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    cmd = usecases.OverrideTier(alice, "silver", "  goodwill \n gesture ", until)
    assert await usecases.override_tier(db, ADMIN, cmd) is None
    [row] = await sql(
        engine, "SELECT tier_code, tier_override_reason, tier_override_by FROM customers WHERE id = :c", c=alice
    )
    assert tuple(row) == ("silver", "goodwill gesture", "user:ops-1")
    audit = await sql(
        engine, "SELECT actor, action FROM audit_log WHERE CAST(:c AS text) = ANY(target_ids) ORDER BY id", c=str(alice)
    )
    assert [tuple(a) for a in audit][-1] == ("user:ops-1", "tier_override")

    await usecases.clear_override(db, ADMIN, usecases.ClearOverride(alice, "ended"))
    [row] = await sql(engine, "SELECT tier_code, tier_override_code FROM customers WHERE id = :c", c=alice)
    assert tuple(row) == ("bronze", None)

    runs = await usecases.runs(db, ADMIN, 5)
    assert isinstance(runs, list)


async def test_bad_commands_write_nothing(engine: AsyncEngine, db: RequestDb) -> None:
    before = await sql(engine, "SELECT count(*) FROM tier_policies")
    too_many = [*TIERS[:1], usecases.TierDraft("x", "X", 1, ALWAYS, ALWAYS, benefits=["b"] * 21)]
    with pytest.raises(Invalid) as invalid:
        await usecases.create_draft(db, ADMIN, usecases.CreateDraft(name="n", tiers=too_many))
    assert [e.field for e in invalid.value.errors] == ["tiers[1].benefits"]
    with pytest.raises(NotFound):
        await usecases.create_draft(db, ADMIN, usecases.CreateDraft(name="n", copy_from=UUID(int=1)))
    assert await sql(engine, "SELECT count(*) FROM tier_policies") == before

    draft = await usecases.create_draft(db, ADMIN, usecases.CreateDraft(name="n", tiers=TIERS))
    assert draft is not None
    with pytest.raises(Conflict):
        await usecases.update_draft(db, ADMIN, usecases.UpdateDraft(draft["id"], draft["revision"] + 1, name="m"))
    updated = await usecases.update_draft(db, ADMIN, usecases.UpdateDraft(draft["id"], draft["revision"], name="m"))
    assert updated is not None
    assert (updated["name"], updated["revision"]) == ("m", draft["revision"] + 1)
    await usecases.discard_draft(db, ADMIN, draft["id"], updated["revision"])
    assert await sql(engine, "SELECT count(*) FROM tier_policies WHERE id = :p", p=draft["id"]) == [(0,)]


async def test_a_partner_cannot_override_another_partners_customer(engine: AsyncEngine, db: RequestDb) -> None:
    [(p1,), (p2,)] = await sql(engine, "INSERT INTO partners (name) VALUES ('p1'), ('p2') RETURNING id")
    theirs = await customer(engine, "Theirs", partner_id=p2)
    token = Principal(PrincipalKind.TOKEN, "tok-1", roles=("admin",), partner_id=p1)
    partner = Caller(actor=token.subject, principal=token, scope=Scope(partner_id=p1))
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    with pytest.raises(NotFound):
        await usecases.override_tier(db, partner, usecases.OverrideTier(theirs, "bronze", "r", until))
    [row] = await sql(engine, "SELECT tier_override_code FROM customers WHERE id = :c", c=theirs)
    assert row[0] is None
    assert await sql(
        engine, "SELECT count(*) FROM audit_log WHERE CAST(:c AS text) = ANY(target_ids)", c=str(theirs)
    ) == [(0,)]
