"""No SQL is built from strings (issue 6, part 4). The test walks the schema to find every String and
ID argument of every root field — also inside input objects and lists — and sends injection payloads
through each, as an admin (who reaches every resolver). Every statement PostgreSQL receives is
recorded: no payload may appear in SQL text (values travel as bound parameters). Answers are clean
(data or a coded error, never INTERNAL), filters match nothing, and the tables are intact."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    get_named_type,
    is_leaf_type,
)
from sqlalchemy import text

from api.graphql.schema import build_schema
from infra.db import StatementCounter
from tests.api.helpers import module_api
from tests.conftest import Api

MARK = "zq9x"  # in every payload, so a payload spliced into SQL text is easy to find
PAYLOADS = [
    f"{MARK}'",
    f'{MARK}"',
    f"{MARK}'; DROP TABLE customers; --",
    f"{MARK}' OR '1'='1",
    f"{MARK}%' OR 1=1 --",
    f"{MARK}\\'; SELECT pg_sleep(10); --",
    f"{MARK}$$; DELETE FROM customers; $$",
    f"{MARK}%_%",
    f"{MARK} ünïcødé ✓ \U0001d57f\U0001d58a\U0001d598\U0001d599 \u202e ﷽",
    f"{MARK}\x00'; DROP TABLE customers; --",
    MARK + "A" * 10_100,
]
SCALAR_VALUES = {
    "Int": 1,
    "Float": 1.0,
    "Boolean": False,
    "Decimal": "1.00",
    "DateTime": "2024-01-01T00:00:00+00:00",
    "Date": "2000-01-01",
    "JSON": {},
    "UUID": "00000000-0000-0000-0000-000000000000",
}
CLEAN_CODES = {"BAD_USER_INPUT", "NOT_FOUND", "FORBIDDEN", "FORBIDDEN_ARGUMENT", "QUERY_TOO_COMPLEX"}


@dataclass(frozen=True)
class Target:
    operation: str  # query or mutation
    field: str
    path: tuple[str | int, ...]  # argument name, then input field names (0 for a list item)

    @property
    def id(self) -> str:
        return f"{self.operation}.{self.field}(" + ".".join(str(p) for p in self.path) + ")"


def _string_paths(type_: GraphQLInputType, depth: int = 0) -> Iterator[tuple[str | int, ...]]:
    named = get_named_type(type_)
    if isinstance(named, GraphQLScalarType) and named.name in ("String", "ID"):
        yield ()
    elif isinstance(named, GraphQLInputObjectType) and depth < 4:
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        prefix: tuple[int, ...] = (0,) if isinstance(inner, GraphQLList) else ()
        for name, field in named.fields.items():
            for rest in _string_paths(field.type, depth + 1):
                yield (*prefix, name, *rest)
    elif isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return


def targets(schema: GraphQLSchema) -> list[Target]:
    found = []
    for operation, root in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            for arg_name, arg in field.args.items():
                for path in _string_paths(arg.type):
                    found.append(Target(operation, name, (arg_name, *path)))
    return found


def _plain(type_: GraphQLInputType, depth: int = 0) -> Any:
    """A harmless value of ``type_`` (required fields filled in)."""
    if isinstance(type_, GraphQLNonNull):
        return _plain(type_.of_type, depth)
    if isinstance(type_, GraphQLList):
        return [_plain(type_.of_type, depth)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {
            n: _plain(f.type, depth + 1)
            for n, f in type_.fields.items()
            if isinstance(f.type, GraphQLNonNull) and f.default_value is _UNDEFINED
        }
    assert isinstance(type_, GraphQLScalarType)
    if type_.name in SCALAR_VALUES:
        return SCALAR_VALUES[type_.name]
    return f"tierwise-injection-test-{next(_SERIAL)}"  # unique: concurrent requests don't collide on names


_SERIAL = itertools.count()
_UNDEFINED = GraphQLArgument(GraphQLNonNull(GraphQLScalarType("X"))).default_value


def _set(value: Any, path: tuple[str | int, ...], payload: str, type_: GraphQLInputType) -> Any:
    """``value`` with the string at ``path`` replaced by ``payload`` (building what is missing)."""
    if not path:
        return payload
    head, rest = path[0], path[1:]
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if head == 0:
        assert isinstance(inner, GraphQLList)
        items = list(value or [_plain(inner.of_type)])
        items[0] = _set(items[0], rest, payload, inner.of_type)
        return items
    named = get_named_type(inner)
    assert isinstance(named, GraphQLInputObjectType)
    out = dict(value or _plain(named))
    out[str(head)] = _set(out.get(str(head)), rest, payload, named.fields[str(head)].type)
    return out


def _selection(field: GraphQLField) -> str:
    return "" if is_leaf_type(get_named_type(field.type)) else "{ __typename }"


def operation_for(schema: GraphQLSchema, target: Target, payload: str) -> tuple[str, dict[str, Any]]:
    root = schema.query_type if target.operation == "query" else schema.mutation_type
    assert root is not None
    field = root.fields[target.field]
    variables: dict[str, Any] = {}
    definitions, arguments = [], []
    for i, (name, arg) in enumerate(field.args.items()):
        if name == target.path[0]:
            value = _set(None, target.path[1:], payload, arg.type)
        elif isinstance(arg.type, GraphQLNonNull) and arg.default_value is _UNDEFINED:
            value = _plain(arg.type)
        else:
            continue
        variables[f"v{i}"] = value
        definitions.append(f"$v{i}: {arg.type}")
        arguments.append(f"{name}: $v{i}")
    head = f"{target.operation} Injection({', '.join(definitions)})" if definitions else target.operation
    args = f"({', '.join(arguments)})" if arguments else ""
    return f"{head} {{ {target.field}{args} {_selection(field)} }}", variables


SCHEMA = build_schema()._schema
TARGETS = targets(SCHEMA)
TABLES_SQL = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
CUSTOMERS_SQL = "SELECT id, name, email, version FROM customers ORDER BY id"


@pytest.fixture(scope="module")
async def api(template_db: str) -> AsyncIterator[Api]:
    # hundreds of refused payloads on purpose: at the default refusal price (100 points) they would
    # spend the budget (tests/api/test_http_edge.py tests that); here each costs one point
    async with module_api(template_db, rate_limit_refusal_cost=1) as running:
        yield running


async def _snapshot(api: Api) -> tuple[list[str], list[Any]]:
    async with api.services.engine.connect() as conn:
        tables = [r[0] for r in (await conn.execute(text(TABLES_SQL))).all()]
        customers = [tuple(r) for r in (await conn.execute(text(CUSTOMERS_SQL))).all()]
    return tables, customers


def test_the_walk_finds_the_string_arguments() -> None:
    ids = {t.id for t in TARGETS}
    for expected in (
        "query.customers(filter.nameContains)",
        "query.customers(filter.email)",
        "query.customers(after)",
        "query.customer(id)",
        "query.auditLog(filter.actor)",
        "mutation.createCustomer(input.address.city)",
        "mutation.recordPurchases(input.purchases.0.externalId)",
        "mutation.grantAccess(object)",
    ):
        assert expected in ids, sorted(ids)
    assert len(TARGETS) > 40


async def test_injection_payloads_through_every_string_argument(api: Api) -> None:
    admin = await api.user("alice", "admin")
    seeded = await api.gql(
        admin,
        'mutation { createCustomer(input: {name: "Intact Ida", email: "ida@example.com"}) { customer { id } } }',
    )
    assert seeded["data"]["createCustomer"]["customer"], seeded
    tables_before, customers_before = await _snapshot(api)
    # filters compare, they don't execute: nothing matches (checked before payloads become data)
    for filter_ in ('{nameContains: "%s"}', '{email: "%s"}', '{phone: "%s"}'):
        for payload in ("' OR '1'='1", "%", "_", "%' OR 1=1 --"):
            literal = payload.replace("\\", "\\\\").replace('"', '\\"')
            body = await api.gql(admin, f"{{ customers(filter: {filter_ % literal}) {{ totalCount }} }}")
            found = (body.get("data") or {}).get("customers")
            assert found is None or found["totalCount"] == 0, (filter_, payload, body)  # LIKE wildcards escaped

    limit = asyncio.Semaphore(8)
    problems: list[str] = []

    async def send(target: Target, payload: str) -> None:
        query, variables = operation_for(SCHEMA, target, payload)
        async with limit:
            response = await api.client.post(
                "/graphql", json={"query": query, "variables": variables}, headers={"Authorization": f"Bearer {admin}"}
            )
        where = f"{target.id} <- {payload[:40]!r}"
        if response.status_code != 200:
            problems.append(f"{where}: HTTP {response.status_code} {response.text[:200]}")
            return
        body = response.json()
        for error in body.get("errors", []):
            if error["extensions"]["code"] not in CLEAN_CODES:
                problems.append(f"{where}: {error}")

    with StatementCounter(api.services.engine) as counter:
        await asyncio.gather(*(send(t, p) for t in TARGETS for p in PAYLOADS))
    assert not problems, "\n".join(problems[:20])
    spliced = [s for s in counter.statements if MARK in s]
    assert not spliced, spliced[:3]
    assert counter.count > len(TARGETS)  # the payloads did reach SQL, as parameters

    tables_after, customers_after = await _snapshot(api)
    assert tables_after == tables_before
    # the seeded customer is untouched; new customers may exist (created with payload names, as data)
    assert set(customers_before) <= set(customers_after)
    ida = await api.gql(admin, '{ customers(filter: {email: "ida@example.com"}) { totalCount } }')
    assert ida["data"]["customers"]["totalCount"] == 1
