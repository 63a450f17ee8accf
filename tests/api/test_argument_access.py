"""Filters, sorts and lookups checked from the catalogue (issue 17 F5 and "every filter and sort argument
checked from the catalogue", issue 13 item 4): ``authz.catalogue.ARGUMENTS`` declares, for every argument
of every field and every field of every input type, which guarded fields it reveals; the field guard
(api/graphql/core/guard.py, ``argument_check``) refuses an argument revealing a field the caller may not read in FULL
with FORBIDDEN_ARGUMENT, before any SQL.

The first tests walk the built schema: every argument is declared, nothing declared is stale. The HTTP
tests are derived from the catalogue alone: for every declared filter, sort value or lookup that reveals a
guarded field, a role built at runtime (createRole/grantAccess) that may read everything but that field is
refused, and the same role without the deny gets an answer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    get_named_type,
)

from api.edge.auth import issue_staff_token
from api.graphql.schema import build_schema
from authz import catalogue
from authz.catalogue import ARGUMENTS, GUARDED, ArgumentSpec
from infra.db import StatementCounter
from tests.api.security_helpers import codes
from tests.conftest import Api, running_api

SCHEMA: GraphQLSchema = build_schema()._schema


def _object_types() -> dict[str, GraphQLObjectType]:
    return {n: t for n, t in SCHEMA.type_map.items() if not n.startswith("__") and isinstance(t, GraphQLObjectType)}


def _walk_input(type_: GraphQLInputType, key: str, seen: set[str], found: list[tuple[str, GraphQLInputType]]) -> None:
    """Every declarable key below an argument: the argument itself, or the fields of its input type (recursively)."""
    named = get_named_type(type_)
    if isinstance(named, GraphQLInputObjectType):
        if named.name in seen:
            return
        seen.add(named.name)
        for name, field in named.fields.items():
            _walk_input(field.type, f"{named.name}.{name}", seen, found)
        return
    found.append((key, type_))


def _declarable() -> list[tuple[str, GraphQLInputType]]:
    seen: set[str] = set()
    found: list[tuple[str, GraphQLInputType]] = []
    for type_name, t in _object_types().items():
        for field_name, field in t.fields.items():
            for arg_name, arg in field.args.items():
                _walk_input(arg.type, f"{type_name}.{field_name}({arg_name})", seen, found)
    return found


# ---------------------------------------------------------------- the catalogue covers the schema


def test_every_argument_of_every_field_is_declared_in_the_catalogue() -> None:
    declarable = _declarable()
    assert len(declarable) > 150  # the walk reaches input objects and their nested inputs
    assert {"CustomerFilter.email", "ComplaintFilter.breached", "AddressInput.city", "PurchaseInput.amount"} <= {
        k for k, _ in declarable
    }
    missing = [key for key, _ in declarable if key not in ARGUMENTS]
    assert not missing, f"declare what these arguments reveal in authz/catalogue.py (ARGUMENTS): {missing}"


def test_the_argument_declarations_name_only_arguments_and_guarded_fields_that_exist() -> None:
    declarable = dict(_declarable())
    stale = [key for key in ARGUMENTS if key not in declarable]
    assert not stale, f"declared, but no such argument (or an input object: declare its fields): {stale}"
    for key, spec in ARGUMENTS.items():
        for field in _revealed_fields(spec):
            assert field in GUARDED, f"{key} reveals {field}, which is not a guarded field of the catalogue"
        if spec.by_value is not None:  # a sort order: every value of its enum, no other
            named = get_named_type(declarable[key])
            assert isinstance(named, GraphQLEnumType), key
            assert set(spec.by_value) == set(named.values), key


def test_each_filter_and_sort_reveals_the_field_it_selects_by() -> None:
    """The declarations of the filters and sorts that existed before the catalogue held them (the
    hand-written lists of api/graphql/schema.py), and the ones that were missing (F5 and the others found by
    the walk), pinned so a declaration can't be loosened unnoticed."""
    expected = {
        "CustomerFilter.tiers": ("Customer.tier",),
        "CustomerFilter.lifecycleStages": ("Customer.lifecycleStage",),
        "CustomerFilter.nameContains": ("Customer.name",),
        "CustomerFilter.email": ("Customer.email",),
        "CustomerFilter.phone": ("Customer.phone",),
        "CustomerFilter.minSpend12m": ("CustomerMetrics.spend12m",),
        "ComplaintFilter.statuses": ("Complaint.status",),
        "ComplaintFilter.severities": ("Complaint.severity",),
        "ComplaintFilter.categories": ("Complaint.category",),
        "ComplaintFilter.customerId": ("Complaint.customer",),
        "ComplaintFilter.openedAfter": ("Complaint.openedAt",),
        "ComplaintFilter.openedBefore": ("Complaint.openedAt",),
        "ComplaintFilter.breached": ("Complaint.breached",),  # F5
        "Query.surveys(status)": ("Survey.status",),
        "AuditFilter.actor": ("AuditEntry.actor",),
        "PurchaseInput.customerExternalRef": ("Customer.externalRef",),
    }
    for key, reveals in expected.items():
        assert ARGUMENTS[key].reveals == reveals, key
    assert ARGUMENTS["Query.customers(orderBy)"].by_value == {
        "CREATED_AT": (),
        "CREATED_AT_DESC": (),
        "UPDATED_AT_DESC": (),
        "NAME": ("Customer.name",),
        "SPEND_12M_DESC": ("CustomerMetrics.spend12m",),
        "LIFETIME_SPEND_DESC": ("CustomerMetrics.lifetimeSpend",),
    }
    assert ARGUMENTS["Query.complaints(orderBy)"].by_value == {
        "OPENED_AT_DESC": ("Complaint.openedAt",),
        "OPENED_AT": ("Complaint.openedAt",),
        "UPDATED_AT_DESC": (),
    }


def test_the_schema_is_not_built_with_an_undeclared_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(catalogue.ARGUMENTS, "ComplaintFilter.breached")
    with pytest.raises(RuntimeError, match=re.escape("ComplaintFilter.breached")):
        build_schema()
    monkeypatch.setitem(catalogue.ARGUMENTS, "ComplaintFilter.breached", ArgumentSpec("ComplaintFilter.breached"))
    monkeypatch.setitem(catalogue.ARGUMENTS, "Query.customers(filter)", ArgumentSpec("Query.customers(filter)"))
    with pytest.raises(RuntimeError, match=re.escape("Query.customers(filter) (declare the fields of CustomerFilter")):
        build_schema()


# ---------------------------------------------------------------- probes derived from the catalogue


def _revealed_fields(spec: ArgumentSpec) -> list[str]:
    fields = list(spec.reveals)
    for reveals in (spec.by_value or {}).values():
        fields += [f for f in reveals if f not in fields]
    return fields


def _probes() -> list[tuple[str, str | None, str]]:
    """(declaration, enum value or None, revealed field) for every declared argument that reveals a guarded field."""
    out: list[tuple[str, str | None, str]] = []
    for key, spec in sorted(ARGUMENTS.items()):
        out += [(key, None, field) for field in spec.reveals]
        for value, reveals in sorted((spec.by_value or {}).items()):
            out += [(key, value, field) for field in reveals]
    return out


def _root_uses(key: str) -> list[tuple[str, str, str]]:
    """The root fields (operation type, field name, argument name) through which a declared key is reached."""
    uses: list[tuple[str, str, str]] = []
    for op in ("Query", "Mutation"):
        root = SCHEMA.type_map[op]
        assert isinstance(root, GraphQLObjectType)
        for field_name, field in root.fields.items():
            for arg_name, arg in field.args.items():
                if key in {k for k, _ in _below(arg.type, f"{op}.{field_name}({arg_name})")}:
                    uses.append((op, field_name, arg_name))
    return uses


def _below(type_: GraphQLInputType, key: str) -> list[tuple[str, GraphQLInputType]]:
    found: list[tuple[str, GraphQLInputType]] = []
    _walk_input(type_, key, set(), found)
    return found


class Samples:
    """Values that pass validation: only required fields, and the probed key, are set."""

    # strings that must be well-formed to be answered (the refusal comes before any parsing)
    BY_KEY: dict[str, str] = {
        "CustomerFilter.email": "probe@example.org",
        "CustomerFilter.phone": "+49 30 12345678",
        "ChurnQueueFilter.signals": "silence",  # a known signal code (others are bad input)
        "Query.searchCustomers(query)": "Probe Person",  # a search term has 2 to 100 characters
    }

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id

    def leaf(self, type_: GraphQLInputType) -> Any:
        named = get_named_type(type_)
        if isinstance(named, GraphQLEnumType):
            return next(iter(named.values))
        return {
            "String": "x",
            "ID": self.customer_id,
            "Int": 1,
            "Boolean": True,
            "DateTime": "2024-01-01T00:00:00+00:00",
            "Date": "2000-01-01",
            "Decimal": "1",
            "JSON": {},
        }[named.name]

    def value(self, type_: GraphQLInputType, key: str, target: str, target_value: Any) -> Any:
        if isinstance(type_, GraphQLNonNull):
            return self.value(type_.of_type, key, target, target_value)
        if isinstance(type_, GraphQLList):
            return [self.value(type_.of_type, key, target, target_value)]
        if key == target:
            return target_value
        if isinstance(type_, GraphQLInputObjectType):
            out = {}
            for name, field in type_.fields.items():
                sub = f"{type_.name}.{name}"
                if target in {k for k, _ in _below(field.type, sub)}:
                    out[name] = self.value(field.type, sub, target, target_value)
                elif isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined:
                    out[name] = self.value(field.type, sub, "", None)
            return out
        return self.leaf(type_)


def _request(
    samples: Samples, op: str, field_name: str, arg_name: str, key: str, value: Any
) -> tuple[str, dict[str, Any]]:
    """A document calling the root field with the probed argument (and any other required one) as variables."""
    root = SCHEMA.type_map[op]
    assert isinstance(root, GraphQLObjectType)
    field = root.fields[field_name]
    variables: dict[str, Any] = {}
    params, args = [], []
    for name, arg in field.args.items():
        if name == arg_name:
            variables[name] = samples.value(arg.type, f"{op}.{field_name}({name})", key, value)
        elif isinstance(arg.type, GraphQLNonNull) and arg.default_value is Undefined:
            variables[name] = samples.value(arg.type, "", "-", None)
        else:
            continue
        params.append(f"${name}: {arg.type}")
        args.append(f"{name}: ${name}")
    return f"{op.lower()}({', '.join(params)}) {{ {field_name}({', '.join(args)}) {{ __typename }} }}", variables


async def _role(api: Api, admin: str, name: str, deny: str | None) -> str:
    """A staff token for a role created at runtime: read on everything, every write, and a DENY on ``deny``."""
    grants = [("*", "READ", "ALLOW"), ("Mutation.*", "WRITE", "ALLOW")]
    if deny is not None:
        grants.append((deny, "READ", "DENY"))
    body = await api.gql(
        admin, "mutation($n: String!) { createRole(name: $n) { ok userErrors { message } } }", {"n": name}
    )
    assert body["data"]["createRole"]["ok"], body
    for obj, action, effect in grants:
        body = await api.gql(
            admin,
            "mutation($r: String!, $o: String!, $a: AccessAction!, $e: Effect!) {"
            " grantAccess(role: $r, object: $o, action: $a, effect: $e) { ok userErrors { message } } }",
            {"r": name, "o": obj, "a": action, "e": effect},
        )
        assert body["data"]["grantAccess"]["ok"], body
    user = f"probe-{name}"
    body = await api.gql(
        admin, "mutation($u: String!, $r: String!) { assignRole(user: $u, role: $r) { ok } }", {"u": user, "r": name}
    )
    assert body["data"]["assignRole"]["ok"], body
    return issue_staff_token(api.settings, user)


def _role_name(field: str) -> str:
    return "no_" + re.sub(r"[^a-z0-9]+", "_", field.lower())[:36]


async def test_every_declared_filter_sort_and_lookup_is_refused_without_full_read_of_its_field(api: Api) -> None:
    admin = await api.user("root", "admin")
    made = await api.gql(
        admin,
        'mutation { createCustomer(input: {name: "Probe Person", email: "probe@example.org"}) '
        "{ customer { id } userErrors { message } } }",
    )
    samples = Samples(made["data"]["createCustomer"]["customer"]["id"])
    team = await api.gql(admin, 'mutation { createTeam(name: "Probe team") { team { id } userErrors { message } } }')
    by_key = {**Samples.BY_KEY, "ComplaintQueueFilter.team": team["data"]["createTeam"]["team"]["id"]}  # a real team
    types = dict(_declarable())
    allowed = await _role(api, admin, "may_read_everything", None)
    tokens: dict[str, str] = {}
    probes = _probes()
    assert len(probes) >= 25
    tried: set[tuple[str, str | None, str]] = set()
    for key, enum_value, field in probes:
        if field not in tokens:
            tokens[field] = await _role(api, admin, _role_name(field), field)
        uses = _root_uses(key)
        assert uses, f"{key} is reached from no root field: extend this test to nested fields"
        value = enum_value if enum_value is not None else by_key.get(key, samples.leaf(types[key]))
        for op, field_name, arg_name in uses:
            document, variables = _request(samples, op, field_name, arg_name, key, value)
            what = (key, enum_value, field, document, variables)
            refused = await api.gql(tokens[field], document, variables)
            assert refused["_status"] == 200, what
            assert codes(refused) == ["FORBIDDEN_ARGUMENT"], (what, refused)
            assert refused["errors"][0]["message"] == f"filtering or sorting on {field} is not allowed", what
            assert (refused.get("data") or {}).get(field_name) is None, (what, refused)
            answered = await api.gql(allowed, document, variables)
            assert not answered.get("errors"), (what, answered)
            assert answered["data"][field_name] is not None, (what, answered)
            tried.add((key, enum_value, field))
    assert tried == set(probes)


# ---------------------------------------------------------------- F5, and no SQL before the refusal

BREACHED = "{ complaints(first: 5, filter: {breached: false}) { totalCount edges { node { id subject } } } }"


async def test_f5_a_role_without_read_on_breached_may_not_filter_on_it(api: Api) -> None:
    admin = await api.user("root", "admin")
    made = await api.gql(admin, 'mutation { createCustomer(input: {name: "Fay Fivefold"}) { customer { id } } }')
    opened = await api.gql(
        admin,
        'mutation($c: ID!) { openComplaint(input: {customerId: $c, subject: "Late parcel", description: "Late",'
        ' category: "service", severity: LOW}) { complaint { id } userErrors { message } } }',
        {"c": made["data"]["createCustomer"]["customer"]["id"]},
    )
    complaint = opened["data"]["openComplaint"]["complaint"]["id"]
    without = await _role(api, admin, "complaints_no_breached", "Complaint.breached")
    # the role reads complaints, and filters them by status ...
    listed = await api.gql(without, "{ complaints(first: 5, filter: {statuses: [NEW, OPEN]}) { totalCount } }")
    assert not listed.get("errors"), listed
    assert listed["data"]["complaints"]["totalCount"] == 1
    # ... but may not select them by whether their SLA was breached, which it can't read
    with StatementCounter(api.services.engine) as counter:
        refused = await api.gql(without, BREACHED)
    assert codes(refused) == ["FORBIDDEN_ARGUMENT"], refused
    assert refused["errors"][0]["message"] == "filtering or sorting on Complaint.breached is not allowed"
    assert refused["data"] is None or refused["data"]["complaints"] is None
    assert complaint not in str(refused)
    assert "Late parcel" not in str(refused)
    assert not [s for s in counter.statements if "complaints" in s], counter.statements  # refused before any SQL
    # the same query, for a caller who reads the field: the complaint (not breached) is listed
    with StatementCounter(api.services.engine) as counter:
        answered = await api.gql(admin, BREACHED)
    assert answered["data"]["complaints"]["totalCount"] == 1, answered
    assert answered["data"]["complaints"]["edges"][0]["node"] == {"id": complaint, "subject": "Late parcel"}
    assert [s for s in counter.statements if "complaints" in s]  # the check above would see a complaint query


@pytest.mark.parametrize(
    ("who", "query", "field"),
    [
        # shipped roles: the partner can't read lifecycle stages or spend; the support agent sees e-mails masked
        ("partner", "{ customers(filter: {lifecycleStages: [ACTIVE]}) { totalCount } }", "Customer.lifecycleStage"),
        ("partner", "{ customers(orderBy: LIFETIME_SPEND_DESC) { totalCount } }", "CustomerMetrics.lifetimeSpend"),
        ("support_agent", '{ customers(filter: {email: "a@b.example"}) { totalCount } }', "Customer.email"),
        ("marketing", '{ customers(filter: {phone: "+4930123"}) { totalCount } }', "Customer.phone"),
    ],
)
async def test_shipped_roles_meet_the_same_check(api: Api, who: str, query: str, field: str) -> None:
    if who == "partner":
        token, _ = await api.partner_token()
    else:
        token = await api.user(f"{who}-user", who)
    body = await api.gql(token, query)
    assert codes(body) == ["FORBIDDEN_ARGUMENT"], body
    assert body["errors"][0]["message"] == f"filtering or sorting on {field} is not allowed"
    assert body["data"] is None or body["data"]["customers"] is None


async def test_a_public_field_with_a_revealing_argument_is_guarded_too(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Public fields get no field guard; one whose argument is declared to reveal a guarded field still
    gets the argument check (declared here at runtime: no public field has such an argument today)."""
    monkeypatch.setitem(
        catalogue.ARGUMENTS, "Viewer.fieldAccess(type)", ArgumentSpec("Viewer.fieldAccess(type)", ("Customer.phone",))
    )
    query = '{ viewer { subject fieldAccess(type: "Customer") { field } } }'
    async with running_api(database_url) as api:  # the schema is built after the declaration
        agent = await api.user("bob", "support_agent")
        refused = await api.gql(agent, query)
        assert codes(refused) == ["FORBIDDEN_ARGUMENT"], refused
        assert refused["errors"][0]["path"] == ["viewer", "fieldAccess"]
        assert refused["data"] is None  # fieldAccess and viewer are non-null: the refusal reaches the root
        answered = await api.gql(await api.user("root", "admin"), query)
        assert not answered.get("errors"), answered
        assert {"field": "Customer.phone"} in answered["data"]["viewer"]["fieldAccess"]
