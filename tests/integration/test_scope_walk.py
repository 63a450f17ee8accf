"""Every public repository function that takes a row scope, called with a partner's scope and the ids of
other partners' (and unowned) rows: it answers with nothing of theirs — refused as not found, or empty,
or zero counts — and changes nothing (issue 13, item 5). The functions are found by walking the modules,
so a new scoped function fails ``test_every_scoped_function_has_a_call`` until it has a call here."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import pkgutil
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import text

import infra.repos
from api.usecases.duplicates import index_row
from domain.complaints import Transition
from domain.errors import DomainError
from infra import tiering
from infra.repos import (
    audit,
    benefits,
    complaint_work,
    complaints,
    customers,
    economics,
    effect,
    events,
    holdout,
    imports,
    matching,
    partners,
    purchases,
    quality,
    queues,
    refunds,
    reports,
    surveys,
    tiers,
)
from infra.repos.base import Scope
from tests.api.security_helpers import World, build_world, raw_id
from tests.conftest import Api

NOW = dt.datetime.now(dt.UTC)
CRITERIA = ("email", "phone", "national_id", "name_dob")
# the walk covers infra/repos (the scope module itself builds clauses, it reads nothing) and the tier engine
MODULES = [
    importlib.import_module(f"infra.repos.{m.name}")
    for m in pkgutil.iter_modules(infra.repos.__path__)
    if m.name != "scope"
] + [tiering]


def _takes_scope(fn: Any) -> bool:
    param = inspect.signature(fn).parameters.get("scope")
    return param is not None and param.annotation in ("Scope", Scope)


def scoped_functions() -> set[str]:
    found = set()
    for module in MODULES:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_") and _takes_scope(fn):
                found.add(f"{module.__name__.rsplit('.', 1)[-1]}.{name}")
    return found


Call = Callable[[Any, Scope, dict[str, Any]], Awaitable[Any]]


async def _tier_totals(db: Any, s: Scope, i: dict[str, Any]) -> list[dict[str, Any]]:
    totals = await economics.tier_totals(db, NOW - dt.timedelta(days=3650), NOW + dt.timedelta(days=1), s)
    return [t.__dict__ for t in totals]


async def _observations(db: Any, s: Scope, i: dict[str, Any]) -> list[dict[str, Any]]:
    found = await effect.observations(
        db, start=NOW, stop=NOW + dt.timedelta(days=1), spend_days=3650, low=Decimal(-1), high=Decimal(10**9), scope=s
    )
    return [o.__dict__ for o in found]


async def _holdout(db: Any, s: Scope, i: dict[str, Any]) -> list[dict[str, Any]]:
    found = await holdout.observations(
        db, tier="silver", since=NOW - dt.timedelta(days=3650), until=NOW + dt.timedelta(days=1), scope=s
    )
    return [o.__dict__ for o in found]


async def _each(found: Callable[[str], Awaitable[Any]], keys: list[str]) -> list[Any]:
    """A lookup by one key, for each of ``keys`` (the others' external ids and references)."""
    return [await found(key) for key in keys]


def _redemption(customer_id: uuid.UUID) -> dict[str, Any]:
    return {
        "benefit_id": uuid.uuid4(), "benefit_code": "walk", "policy_version": 1, "customer_id": customer_id,
        "external_id": f"walk-use-{customer_id}", "tier_code": "gold", "order_amount": None, "cost": Decimal("1.00"),
        "redeemed_at": NOW,
    }  # fmt: skip


def _refund(purchase_id: uuid.UUID, customer_id: uuid.UUID) -> dict[str, Any]:
    return {
        "purchase_id": purchase_id, "customer_id": customer_id, "external_id": f"walk-refund-{purchase_id}",
        "amount": Decimal("1.00"), "reason": "walk", "refunded_at": NOW, "purchased_at": NOW,
        "closes_purchase": False,
    }  # fmt: skip


# each seeded customer's e-mail, name and birth date: the others' customers a duplicate lookup must not find
SEEDED = [
    {"email": "bruno.kunde@example.com", "name": "Bruno Southwind-Kunde", "birth_date": dt.date(1977, 7, 7)},
    {"email": "paula.kundin@example.net", "name": "Paula Northwind-Kundin", "birth_date": dt.date(1990, 4, 1)},
]

# name -> call(conn, scope, ids); ids: the other partners' customer, complaint, response and token ids, and
# the external ids and references they wrote
CALLS: dict[str, Call] = {
    "purchases.resolve_external_refs": lambda db, s, i: purchases.resolve_external_refs(db, i["refs"], s),
    "complaints.by_external_id": lambda db, s, i: _each(
        lambda e: complaints.by_external_id(db, e, s), i["external_ids"]
    ),
    "surveys.response_by_external_id": lambda db, s, i: _each(
        lambda e: surveys.response_by_external_id(db, e, s), i["external_ids"]
    ),
    "matching.by_blind_index": lambda db, s, i: matching.by_blind_index(
        db, [index_row(n, v) for n, v in enumerate(SEEDED)], scope=s, criteria=CRITERIA
    ),
    "matching.by_similar_name": lambda db, s, i: _each(
        lambda n: matching.by_similar_name(db, n, SEEDED[0]["birth_date"], scope=s), [SEEDED[0]["name"]]
    ),
    "imports.existing": lambda db, s, i: imports.existing(db, i["refs"], scope=s),
    "benefits.by_external_id": lambda db, s, i: benefits.by_external_id(db, i["external_ids"], s),
    "benefits.insert_redemptions": lambda db, s, i: benefits.insert_redemptions(
        db, [_redemption(c) for c in i["customers"]], scope=s, actor="walk"
    ),
    "refunds.purchases_by_external_id": lambda db, s, i: refunds.purchases_by_external_id(db, i["external_ids"], s),
    "refunds.by_external_id": lambda db, s, i: refunds.by_external_id(db, i["external_ids"], s),
    "refunds.insert": lambda db, s, i: refunds.insert(
        db, [_refund(p, c) for p, c in i["purchase_owners"]], scope=s, actor="walk"
    ),
    # these create (or stage) customers of the caller's own (with the others' references): nothing of theirs
    "customers.create": lambda db, s, i: customers.create(db, {"name": "Walk New", "external_ref": "sw-0001"}, scope=s),
    "imports.stage": lambda db, s, i: imports.stage(
        db, [imports.stored_form({"name": "Walk Import", "external_ref": r}) for r in i["refs"]], scope=s
    ),
    "benefits.customers_with_tier": lambda db, s, i: benefits.customers_with_tier(db, i["customers"], s),
    "refunds.lock_purchases": lambda db, s, i: refunds.lock_purchases(db, i["purchases"], s),
    "economics.tier_totals": _tier_totals,
    "effect.observations": _observations,
    "holdout.observations": _holdout,
    "audit.page": lambda db, s, i: audit.page(db, f=audit.AuditFilter(), first=100, after=None, scope=s),
    "audit.count": lambda db, s, i: audit.count(db, f=audit.AuditFilter(), scope=s),
    "complaints.by_ids": lambda db, s, i: complaints.by_ids(db, i["complaints"], columns=("description",), scope=s),
    "complaints.count": lambda db, s, i: complaints.count(db, scope=s, f=complaints.ComplaintFilter()),
    "complaints.page": lambda db, s, i: complaints.page(
        db, columns=("description",), scope=s, f=complaints.ComplaintFilter(), sort="OPENED_AT_DESC", first=100,
        after=None,
    ),
    "complaints.transition": lambda db, s, i: complaints.transition(
        db, i["complaints"][0], 1, Transition(to="open"), actor="walk", scope=s
    ),
    "complaint_work.add_note": lambda db, s, i: complaint_work.add_note(
        db, i["complaints"][0], "walk", actor="walk", scope=s, request_id=None
    ),
    "complaint_work.assign": lambda db, s, i: complaint_work.assign(
        db, i["complaints"][0], 1, "walk", actor="walk", scope=s, request_id=None
    ),
    "queues.churn_page": lambda db, s, i: queues.churn_page(
        db, columns=("name", "email"), scope=s, f=queues.ChurnQueueFilter(), sort="LAST_CONTACT", first=100, after=None
    ),
    "queues.churn_count": lambda db, s, i: queues.churn_count(db, scope=s, f=queues.ChurnQueueFilter()),
    "queues.complaint_page": lambda db, s, i: queues.complaint_page(
        db,
        columns=("description",),
        scope=s,
        f=queues.ComplaintQueueFilter(statuses=("new", "open", "pending_customer", "on_hold", "resolved", "closed")),
        sort="DUE_AT",
        first=100,
        after=None,
    ),
    "queues.complaint_count": lambda db, s, i: queues.complaint_count(db, scope=s, f=queues.ComplaintQueueFilter()),
    "queues.search_names": lambda db, s, i: queues.search_names(
        db, columns=("name",), scope=s, term="Bruno Southwind-Kunde", first=50
    ),
    "customers.by_ids": lambda db, s, i: customers.by_ids(db, i["customers"], columns=("name", "email"), scope=s),
    "customers.count": lambda db, s, i: customers.count(db, scope=s, f=customers.CustomerFilter()),
    "customers.exists": lambda db, s, i: customers.exists(db, i["customers"][0], s),
    "customers.matches_on_file": lambda db, s, i: customers.matches_on_file(
        db, i["customers"][0], s, "email", "bruno.kunde@example.com"
    ),
    "customers.page": lambda db, s, i: customers.page(
        db, columns=("name",), scope=s, f=customers.CustomerFilter(), sort="CREATED_AT", first=100, after=None
    ),
    "customers.soft_delete": lambda db, s, i: customers.soft_delete(db, i["customers"][0], 1, scope=s),
    "customers.update_fields": lambda db, s, i: customers.update_fields(
        db, i["customers"][0], 1, {"name": "Hijacked"}, scope=s
    ),
    "events.endpoint": lambda db, s, i: events.endpoint(db, i["endpoint"], s),
    "events.endpoints": lambda db, s, i: events.endpoints(db, s),
    "events.delivery": lambda db, s, i: events.delivery(db, i["delivery"], s),
    "events.deliveries_page": lambda db, s, i: events.deliveries_page(
        db, s, events.DeliveryFilter(), first=100, after=None
    ),
    "partners.list_tokens": lambda db, s, i: partners.list_tokens(db, scope=s),
    "partners.revoke_token": lambda db, s, i: partners.revoke_token(db, i["token"], scope=s),
    "partners.scoped_token": lambda db, s, i: partners.scoped_token(db, i["token"], scope=s),
    "purchases.record": lambda db, s, i: purchases.record(
        db,
        [{"customer_id": i["customers"][0], "amount": Decimal("1.00"), "currency": "EUR", "channel": "web",
          "purchased_at": NOW, "external_id": "walk-1"}],
        scope=s,
    ),
    "quality.dismiss_pair": lambda db, s, i: quality.dismiss_pair(
        db, i["customers"][0], i["customers"][1], reason="other", scope=s, actor="walk", request_id=None
    ),
    "quality.restore_pair": lambda db, s, i: quality.restore_pair(
        db, i["customers"][0], i["customers"][1], scope=s, actor="walk", request_id=None
    ),
    "quality.duplicate_counts": lambda db, s, i: quality.duplicate_counts(
        db, criteria=CRITERIA, scope=s, include_dismissed=True
    ),
    "quality.duplicate_pairs": lambda db, s, i: quality.duplicate_pairs(
        db, criteria=CRITERIA, scope=s, first=100, after=None, include_dismissed=True
    ),
    "quality.erase": lambda db, s, i: quality.erase(db, i["customers"][0], scope=s, actor="walk", request_id=None),
    "quality.export": lambda db, s, i: quality.export(db, i["customers"][0], scope=s),
    "quality.merge": lambda db, s, i: quality.merge(
        db, i["customers"][0], i["customers"][1], scope=s, actor="walk", request_id=None
    ),
    "quality.report": lambda db, s, i: quality.report(
        db, required=("email", "phone"), criteria=CRITERIA, stale_days=7, scope=s
    ),
    "quality.set_consent": lambda db, s, i: quality.set_consent(
        db, i["customers"][0], "email", True, scope=s, actor="walk", request_id=None
    ),
    "reports.churn_levels": lambda db, s, i: reports.churn_levels(db, scope=s),
    "reports.churn_signals": lambda db, s, i: reports.churn_signals(db, scope=s),
    "reports.complaint_rates": lambda db, s, i: reports.complaint_rates(db, since=None, until=None, scope=s),
    "reports.fairness": lambda db, s, i: reports.fairness(db, since=None, until=None, scope=s),
    "reports.reopen_rates": lambda db, s, i: reports.reopen_rates(db, since=None, until=None, scope=s),
    "reports.survey_scores": lambda db, s, i: reports.survey_scores(
        db, kind="nps", group_by=["TIER"], period="month", since=None, until=None, survey_id=None, scope=s
    ),
    "reports.top_root_causes": lambda db, s, i: reports.top_root_causes(
        db, since=None, until=None, tier=None, limit=10, scope=s
    ),
    "surveys.responses_by_ids": lambda db, s, i: surveys.responses_by_ids(db, i["responses"], s),
    "tiers.distribution": lambda db, s, i: tiers.distribution(db, s),
    "tiers.migrations": lambda db, s, i: tiers.migrations(db, NOW - dt.timedelta(days=3650), NOW, s),
    "tiering.set_override": lambda db, s, i: tiering.set_override(
        db, i["customers"][0], tier="silver", reason="walk", expires_at=NOW + dt.timedelta(days=7), actor="walk",
        scope=s,
    ),
    "tiering.clear_override": lambda db, s, i: tiering.clear_override(
        db, i["customers"][0], reason="walk", actor="walk", scope=s
    ),
}  # fmt: skip

# what a report may hold for a partner without customers: labels, ranks and settings, no count above zero
NOT_COUNTS = {"rank", "older_than_days", "tier", "category", "label", "code", "overall", "field", "criterion"}

STATE = [
    "customers", "customer_metrics", "complaints", "complaint_events", "purchases", "survey_responses",
    "survey_answers", "api_tokens", "duplicate_dismissals", "consent_events", "customer_merges", "tier_changes",
    "refunds", "benefit_redemptions",
]  # fmt: skip


def test_every_scoped_function_has_a_call() -> None:
    functions = scoped_functions()
    assert functions - set(CALLS) == set(), f"scoped functions without a call: {sorted(functions - set(CALLS))}"
    assert set(CALLS) - functions == set(), f"calls of functions that are gone: {sorted(set(CALLS) - functions)}"


CREATES = {"customers.create", "imports.stage"}
# rows the walking partner may create of its own (customers.create): left out of the state
OWN_ROWS = {
    "customers": "t.partner_id IS DISTINCT FROM :own",
    "customer_metrics": "t.customer_id NOT IN (SELECT id FROM customers WHERE partner_id = :own)",
}


async def _state(conn: Any, own: uuid.UUID) -> dict[str, str]:
    """A digest of every table a call could change, the walking partner's own new customers left out."""
    out = {}
    for table in STATE:
        row = await conn.execute(
            text(
                f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t"
                f" WHERE {OWN_ROWS.get(table, 'true')}"
            ),
            {"own": own},
        )
        out[table] = row.scalar_one()
    return out


def _counts(value: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every number in a result, with the key it came under (labels, ranks and settings left out)."""
    if isinstance(value, dict):
        return [c for k, v in value.items() if k not in NOT_COUNTS for c in _counts(v, str(k))]
    if isinstance(value, list | tuple):
        return [c for v in value for c in _counts(v, key)]
    if hasattr(value, "rows") and hasattr(value, "has_next"):  # a Page
        return _counts(value.rows, key)
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int | float | Decimal):
        return [(key, value)]
    return []


async def test_a_partner_scope_reaches_nothing_of_another_partner(api: Api) -> None:
    w: World = await build_world(api)
    token, empty = await api.partner_token("Walk Partner Without Customers")
    scope = Scope(partner_id=empty)
    own_token = uuid.UUID(hex=token.removeprefix("tw_pat_").partition("_")[0])
    ids: dict[str, Any] = {
        "customers": [raw_id(w.bruno), raw_id(w.paula), raw_id(w.ada)],
        "complaints": [raw_id(w.bruno_complaint), raw_id(w.paula_complaint), raw_id(w.ada_complaint)],
        "responses": [raw_id(w.paula_response)],
        "token": uuid.UUID(hex=w.tokens["partner_b"].removeprefix("tw_pat_").partition("_")[0]),
    }
    # partner B's webhook endpoint (registered by an admin for B) and a delivery to it
    await w.gql(
        "admin",
        """mutation($b: ID!) { registerWebhookEndpoint(input: {url: "https://hooks.example.com/b",
        eventTypes: [TIER_CHANGED], partnerId: $b}) { endpoint { id } } }""",
        {"b": str(w.partner_b)},
    )
    await w.gql("partner_b", 'mutation { createCustomer(input: {name: "Walk Hook"}) { customer { id } } }')
    async with api.services.engine.begin() as conn:
        hook = (await conn.execute(text("SELECT endpoint_id, id FROM webhook_deliveries"))).one()
        # the purchases of every other partner's customer, and what hangs off them with external ids: a
        # complaint and a refund of partner B's written here, as its token would have
        ids["purchases"] = list((await conn.execute(text("SELECT id FROM purchases ORDER BY id"))).scalars())
        ids["purchase_owners"] = [
            tuple(r) for r in await conn.execute(text("SELECT id, customer_id FROM purchases ORDER BY id"))
        ]
        await conn.execute(
            text("UPDATE complaints SET external_id = 'walk-complaint-b' WHERE id = :k"),
            {"k": raw_id(w.bruno_complaint)},
        )
        await conn.execute(
            text(
                "INSERT INTO refunds (purchase_id, customer_id, partner_id, external_id, amount, reason, refunded_at,"
                " purchased_at, actor) SELECT id, customer_id, partner_id, 'walk-refund-b', 1, 'walk', now(),"
                " purchased_at, 'walk' FROM purchases WHERE customer_id = :c"
            ),
            {"c": raw_id(w.bruno)},
        )
        ids["refs"] = list(
            (await conn.execute(text("SELECT external_ref FROM customers WHERE external_ref IS NOT NULL"))).scalars()
        )
        ids["external_ids"] = list(
            (
                await conn.execute(
                    text(
                        "SELECT external_id FROM purchases UNION SELECT external_id FROM complaints"
                        " UNION SELECT external_id FROM survey_responses UNION SELECT external_id FROM refunds"
                        " UNION SELECT external_id FROM benefit_redemptions"
                    )
                )
            ).scalars()
        )
        ids["external_ids"] = sorted(e for e in ids["external_ids"] if e is not None)
    assert {"sw-0001", "nw-0001"} <= set(ids["refs"])
    assert {"walk-complaint-b", "walk-refund-b", "resp-paula"} <= set(ids["external_ids"])
    ids |= {"endpoint": hook.endpoint_id, "delivery": hook.id}
    unknown = {k: [uuid.uuid4() for _ in v] if isinstance(v, list) else uuid.uuid4() for k, v in ids.items()}
    unknown |= {
        "refs": [f"unknown-{n}" for n in range(3)],
        "external_ids": [f"unknown-{n}" for n in range(3)],
        "purchase_owners": [(uuid.uuid4(), uuid.uuid4())],
    }
    markers = [
        str(v) for v in (*ids["customers"], *ids["complaints"], *ids["responses"], *ids["purchases"], ids["token"])
    ]
    markers += [str(hook.endpoint_id), str(hook.id), "hooks.example.com"]
    markers += [str(w.partner_a), str(w.partner_b), "Paula", "Bruno", "Ada", "walk-complaint-b", "walk-refund-b"]
    markers += ["resp-paula", "seed-partner"]
    problems: list[str] = []
    async with api.services.engine.connect() as conn:
        for name, call in CALLS.items():
            before = await _state(conn, empty)
            transaction = await conn.begin_nested()
            try:
                result = await call(conn, scope, ids)
            except DomainError as exc:
                result = None
                refusal = (exc.code, exc.message, exc.field)
            else:
                refusal = None
            finally:
                after = await _state(conn, empty)
                await transaction.rollback()
            if refusal is not None:  # refused exactly as for ids that exist nowhere
                transaction = await conn.begin_nested()
                try:
                    await call(conn, scope, unknown)
                    problems.append(f"{name}: refused {refusal} for others' ids, not for unknown ones")
                except DomainError as exc:
                    if (exc.code, exc.message, exc.field) != refusal:
                        problems.append(f"{name}: refused {refusal}, unknown ids {(exc.code, exc.message, exc.field)}")
                finally:
                    await transaction.rollback()
            if after != before:
                problems.append(f"{name}: changed {[t for t in STATE if after[t] != before[t]]}")
            shown = repr(result)
            leaked = [m for m in markers if m in shown]
            if leaked:
                problems.append(f"{name}: returned another partner's {leaked}")
            counted = [(k, v) for k, v in _counts(result) if v not in (0, None)]
            if name == "partners.list_tokens":  # its own token, and only that one
                counted = []
                if [r["id"] for r in result] != [own_token]:
                    problems.append(f"{name}: {result}")
            if name == "customers.matches_on_file" and result is not None:  # None: no such customer here
                problems.append(f"{name}: {result}")
            if name in ("customers.exists", "partners.revoke_token") and result is not False:
                problems.append(f"{name}: {result}")
            if name in CREATES:  # a row of its own (its version, its id): the state says it is the caller's
                counted = []
            if counted and name not in ("customers.exists", "partners.revoke_token"):
                problems.append(f"{name}: counts {counted}")
        await conn.rollback()
    assert problems == [], "\n".join(problems)
