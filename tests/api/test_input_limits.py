"""Issue 17 F6 (writes): an over-long string given to any mutation is a userError (INVALID, the input's
path as field) and nothing is written, never an INTERNAL error. The mutations and their string inputs
are read from the built schema, so a new one can't be forgotten."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
)
from sqlalchemy import text

from api.graphql.core.input_limits import MAX_LENGTH, limit_of
from api.graphql.schema import build_schema
from domain import limits
from tests.api.helpers import USER_ERRORS
from tests.conftest import Api

SCALARS: dict[str, Any] = {
    "String": "x",
    "ID": "x",
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "DateTime": "2026-01-01T00:00:00+00:00",
    "Date": "2000-01-01",
    "Decimal": "1",
    "JSON": {},
}


def _filler(gtype: Any) -> Any:
    """A value that passes GraphQL coercion for ``gtype`` (its content need not make sense: the length
    check runs before the resolver)."""
    if isinstance(gtype, GraphQLNonNull):
        return _filler(gtype.of_type)
    if isinstance(gtype, GraphQLList):
        return [_filler(gtype.of_type)]
    if isinstance(gtype, GraphQLEnumType):
        return next(iter(gtype.values))
    if isinstance(gtype, GraphQLInputObjectType):
        return {n: _filler(f.type) for n, f in gtype.fields.items() if isinstance(f.type, GraphQLNonNull)}
    assert isinstance(gtype, GraphQLScalarType)
    return SCALARS[gtype.name]


def _strings(gtype: Any, coordinate: str, path: list[str | int]) -> Iterator[tuple[str, list[str | int]]]:
    """(coordinate, path) of every String reachable in ``gtype``: lists are entered at index 0."""
    if isinstance(gtype, GraphQLNonNull):
        yield from _strings(gtype.of_type, coordinate, path)
    elif isinstance(gtype, GraphQLList):
        yield from _strings(gtype.of_type, coordinate, [*path, 0])
    elif isinstance(gtype, GraphQLInputObjectType):
        for name, field in gtype.fields.items():
            yield from _strings(field.type, f"{gtype.name}.{name}", [*path, name])
    elif isinstance(gtype, GraphQLScalarType) and gtype.name == "String":
        yield coordinate, path


def _value_at(gtype: Any, path: list[str | int], value: str) -> Any:
    """A value of ``gtype`` holding ``value`` at ``path`` (fillers for the other required fields)."""
    if isinstance(gtype, GraphQLNonNull):
        return _value_at(gtype.of_type, path, value)
    if not path:
        return value
    if isinstance(gtype, GraphQLList):
        return [_value_at(gtype.of_type, path[1:], value)]
    assert isinstance(gtype, GraphQLInputObjectType)
    out = _filler(gtype)
    out[path[0]] = _value_at(gtype.fields[str(path[0])].type, path[1:], value)
    return out


def _type_ref(gtype: Any) -> str:
    return str(gtype)


def _cases(size: int | None) -> Iterator[tuple[str, str, dict[str, Any], str, str]]:
    """(mutation, document, variables, coordinate, expected userError field) per string input, with a
    string of ``size`` characters there (None: one more than the input's limit)."""
    schema = build_schema()._schema
    assert schema.mutation_type is not None
    for name, field in schema.mutation_type.fields.items():
        args = field.args
        for arg_name, arg in args.items():
            for coordinate, path in _strings(arg.type, f"{name}.{arg_name}", []):
                variables = {a: _filler(t.type) for a, t in args.items() if isinstance(t.type, GraphQLNonNull)}
                length = size or limit_of(coordinate) + 1
                variables[arg_name] = _value_at(arg.type, path, "x" * length)
                shown = [str(p) if isinstance(p, str) else f"[{p}]" for p in path]
                expected = (arg_name if arg_name != "input" else "") + "".join(
                    ("." + s if not s.startswith("[") else s) for s in shown
                )
                expected = expected.lstrip(".")
                decl = ", ".join(f"${a}: {_type_ref(t.type)}" for a, t in args.items())
                call = ", ".join(f"{a}: ${a}" for a in args)
                doc = f"mutation({decl}) {{ {name}({call}) {{ {USER_ERRORS} }} }}"
                yield name, doc, variables, coordinate, expected


async def _everything(api: Api) -> dict[str, tuple[int, str]]:
    """(rows, digest) of every table but the request budget's: equal snapshots mean nothing was written."""
    out: dict[str, tuple[int, str]] = {}
    async with api.services.engine.connect() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'rate_limit_buckets' ORDER BY 1"
                )
            )
        ).scalars()
        for table in list(tables):
            row = (
                await conn.execute(
                    text(
                        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t"
                    )
                )
            ).one()
            out[table] = (int(row[0]), str(row[1]))
    return out


@pytest.mark.parametrize("size", [None, 10_000], ids=["limit+1", "10000"])
async def test_every_string_input_of_every_mutation_has_a_length_limit(api: Api, size: int | None) -> None:
    admin = await api.user("alice", "admin")
    cases = list(_cases(size))
    assert len(cases) >= 80  # the walk found the schema's string inputs (not a vacuous loop)
    assert {c[3] for c in cases} >= set(MAX_LENGTH)  # every declared limit names a real input
    edge = api.settings.max_input_string_length  # the HTTP edge refuses longer strings in any request
    before = await _everything(api)
    failures = []
    for name, doc, variables, coordinate, expected in cases:
        limit = limit_of(coordinate)
        if size is not None and size <= limit:
            continue  # allowed at this length (a description): the limit+1 run covers it
        body = await api.gql(admin, doc, variables)
        if limit >= edge:
            if [e["extensions"]["code"] for e in body.get("errors", [])] != ["BAD_USER_INPUT"]:
                failures.append((coordinate, expected, json.dumps(body)[:300]))
            continue
        result = (body.get("data") or {}).get(name) or {}
        found = [e for e in result.get("userErrors", []) if e["field"] == expected and e["code"] == "INVALID"]
        if body["_status"] != 200 or body.get("errors") or len(found) != 1:
            failures.append((coordinate, expected, json.dumps(body)[:300]))
        elif not found[0]["message"].endswith(f"has at most {limit} characters (got {size or limit + 1})"):
            failures.append((coordinate, expected, found[0]["message"]))
    assert failures == []
    assert await _everything(api) == before


async def test_a_long_partner_name_is_a_user_error_not_an_internal_error(api: Api) -> None:
    admin = await api.user("alice", "admin")
    query = f"""mutation($p: String!) {{ createPartnerToken(partner: $p, name: "n") {{ token {USER_ERRORS} }} }}"""
    body = await api.gql(admin, query, {"p": "N" * 9000})
    assert "errors" not in body, body
    assert body["data"]["createPartnerToken"] == {
        "token": None,
        "userErrors": [
            {"field": "partner", "code": "INVALID", "message": "partner has at most 200 characters (got 9000)"}
        ],
    }
    # at the limit it is accepted (multi-byte characters included: the index takes 200 of them)
    body = await api.gql(admin, query, {"p": "Ü" * limits.NAME})
    assert body["data"]["createPartnerToken"]["userErrors"] == []
    async with api.services.engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM partners"))).scalars().all()
    assert names == ["Ü" * limits.NAME]


async def test_an_unauthorised_caller_is_refused_before_its_input_is_looked_at(api: Api) -> None:
    agent = await api.user("sam", "support_agent")
    query = f"""mutation($p: String!) {{ createPartnerToken(partner: $p, name: "n") {{ token {USER_ERRORS} }} }}"""
    body = await api.gql(agent, query, {"p": "N" * 9000})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
