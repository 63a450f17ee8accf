"""The catalogue is the one declaration of a field's mask (issue 13, item 4): derived from it alone.

For every field of the catalogue that is sensitive, and every guarded leaf field of the types that hold
them, a path from ``customer(id)`` or ``complaint(id)`` is found by walking the schema; each caller kind
(admin, support agent, analyst, marketing for a customer who consented and one who did not, data
steward, partner token) reads it over HTTP, and the answer must be what the caller's decision says:

- FULL: a sensitive value equal to the admin's; an internal one without error;
- MASKED: exactly the catalogue's mask applied to the admin's value;
- CONSENTED: the full value where the customer consented, else as DENIED;
- DENIED: ``null`` with one FORBIDDEN_FIELD error at each place the field was asked for.

Masks are applied by the field guard only (api/graphql/core/guard.py): a type that hands over the full value (they
all do now) cannot reach a masked caller in plaintext. Every document is answered alike by the compiled
read path and by strawberry (a second app with ``compiled_queries`` off).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, is_leaf_type

from api.graphql.schema import build_schema
from authz.catalogue import CATALOGUE, Sensitivity, classification
from authz.masking import MASKS
from authz.policy import Decisions, Level
from tests.api.security_helpers import World, ok, raw_id, sql, world_for
from tests.conftest import Api, running_api, test_settings

ROOTS = {"Customer": "customer", "Complaint": "complaint"}  # root query per type, each taking (id: ID!)
CALLERS = ("admin", "support_agent", "analyst", "marketing", "data_steward", "partner")
TRANSITION = """mutation($input: TransitionComplaintInput!) { transitionComplaint(input: $input) {
    complaint { id } userErrors { field code message } } }"""


@dataclass(frozen=True)
class Step:
    type_name: str
    field: str  # GraphQL name

    @property
    def key(self) -> str:
        return f"{self.type_name}.{self.field}"


def _unwrap(type_: Any) -> tuple[Any, bool]:
    is_list = False
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        is_list = is_list or isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return type_, is_list


def _paths(schema: Any) -> dict[str, tuple[str, tuple[Step, ...]]]:
    """For each field to check: (root type, the steps from the root object to it), shortest first."""
    wanted_types = {spec.type_name for spec in CATALOGUE.values() if spec.sensitivity is Sensitivity.SENSITIVE}
    reach: dict[str, tuple[str, tuple[Step, ...]]] = {}
    queue: deque[tuple[str, str, tuple[Step, ...]]] = deque((t, t, ()) for t in ROOTS)
    seen: set[str] = set()
    while queue:
        root, type_name, steps = queue.popleft()
        if type_name in seen:
            continue
        seen.add(type_name)
        gtype = schema.get_type(type_name)
        for name, field in gtype.fields.items():
            named, _ = _unwrap(field.type)
            if any(arg.type.__class__ is GraphQLNonNull and arg.default_value is None for arg in field.args.values()):
                continue  # needs an argument this walk cannot invent
            step = (*steps, Step(type_name, name))
            if isinstance(named, GraphQLObjectType) and named.name != "Address":
                queue.append((root, named.name, step))
            if type_name in wanted_types:
                spec = classification(type_name, name)
                leafish = is_leaf_type(named) or named.name == "Address"
                if spec is not None and spec.sensitivity is not Sensitivity.PUBLIC and leafish:
                    reach.setdefault(spec.key, (root, step))
    return reach


def _document(root: str, steps: tuple[Step, ...], schema: Any) -> str:
    leaf = steps[-1]
    named, _ = _unwrap(schema.get_type(leaf.type_name).fields[leaf.field].type)
    inner = leaf.field
    if named.name == "Address":
        inner += " { " + " ".join(named.fields) + " }"
    for step in reversed(steps[:-1]):
        inner = f"{step.field} {{ {inner} }}"
    return f"query($id: ID!) {{ {ROOTS[root]}(id: $id) {{ {inner} }} }}"


def _values(node: Any, names: list[str], path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (response path, value) of the field at the end of ``names``, through lists."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _values(item, names, (*path, i))
        return
    if node is None:
        return
    value = node.get(names[0])
    here = (*path, names[0])
    if len(names) == 1:  # a leaf: a scalar, a list of scalars or an address
        yield here, value
        return
    yield from _values(value, names[1:], here)


def _masked(mask: str, full: Any) -> Any:
    if isinstance(full, dict):  # an object: the mask's mapping over the same keys
        shown = MASKS[mask](full)
        return {k: shown.get(k) for k in full}
    if mask == "magnitude":
        return str(MASKS[mask](Decimal(str(full))))
    return MASKS[mask](full)


@pytest.fixture(scope="module")
async def world(template_db: str) -> AsyncIterator[World]:
    async with world_for(template_db) as w:
        w.tokens["data_steward"] = await w.api.user("steward-sam", "data_steward")
        for complaint in (w.ada_complaint, w.paula_complaint):  # an event with a note on each complaint
            version = (await sql(w.url, "SELECT version FROM complaints WHERE id = $1", raw_id(complaint)))[0][0]
            body = await w.gql(
                "admin",
                TRANSITION,
                {
                    "input": {
                        "id": complaint,
                        "expectedVersion": version,
                        "to": "OPEN",
                        "note": "Called back about the door code",
                    }
                },
            )
            ok(body, "transitionComplaint")
        yield w


@contextlib.asynccontextmanager
async def _strawberry_only(url: str) -> AsyncIterator[Api]:
    async with running_api(url, test_settings(compiled_queries=False)) as api:
        yield api


def _subjects(world: World) -> dict[str, tuple[str, str, bool]]:
    """Customer name -> (customer id, complaint id, consented to e-mail)."""
    return {"ada": (world.ada, world.ada_complaint, True), "paula": (world.paula, world.paula_complaint, False)}


def _decisions(world: World, who: str) -> Decisions:
    store = world.api.services.authz.store
    if who == "partner":
        return store.decisions_for(("partner",), ("read:*", "write:*"))
    return store.decisions_for((who,), None)


def _error_places(body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    return {tuple(e["path"]): e["extensions"]["code"] for e in body.get("errors", [])}


async def test_every_guarded_field_comes_out_as_the_catalogue_and_the_decision_say(world: World) -> None:
    schema = build_schema()._schema  # the graphql-core schema, as every app builds it
    paths = _paths(schema)
    sensitive = {k for k, s in CATALOGUE.items() if s.sensitivity is Sensitivity.SENSITIVE}
    assert sensitive <= set(paths), f"no path found to {sorted(sensitive - set(paths))}"
    seen_levels: set[tuple[str, Level]] = set()
    async with _strawberry_only(world.url) as reference:
        for subject, (customer, complaint, consented) in _subjects(world).items():
            ids = {"Customer": customer, "Complaint": complaint}
            for key, (root, steps) in sorted(paths.items()):
                document = _document(root, steps, schema)
                variables = {"id": ids[root]}
                full = await world.gql("admin", document, variables)
                assert not full.get("errors"), (key, full)
                names = [ROOTS[root], *(s.field for s in steps)]
                full_values = dict(_values(full["data"], names, ()))
                if key in sensitive and subject == "paula":
                    assert any(v not in (None, [], "") for v in full_values.values()), f"{key}: nothing to check"
                for who in CALLERS:
                    if who == "partner" and subject == "ada":
                        continue  # not the partner's customer: NOT_FOUND (partner scope tests cover it)
                    body = await world.gql(who, document, variables)
                    assert body["_status"] == 200, body
                    slow = await reference.gql(world.tokens[who], document, variables)
                    if key in sensitive:  # (other fields include clocks: seconds left, which move between calls)
                        assert slow["data"] == body["data"], (who, key, slow, body)
                    assert _error_places(slow) == _error_places(body), (who, key)
                    level = _check(world, who, key, root, steps, names, body, full_values, consented)
                    if level is not None:
                        seen_levels.add((key, level))
    kinds = {level for key, level in seen_levels if key in sensitive}
    assert kinds == {Level.FULL, Level.MASKED, Level.CONSENTED, Level.DENIED}, kinds
    assert {key for key, level in seen_levels if level is Level.MASKED} >= {
        "Customer.email",
        "Customer.phone",
        "Customer.birthDate",
        "Customer.address",
    }


def _check(
    world: World,
    who: str,
    key: str,
    root: str,
    steps: tuple[Step, ...],
    names: list[str],
    body: dict[str, Any],
    full_values: dict[tuple[Any, ...], Any],
    consented: bool,
) -> Level | None:
    """Assert the answer of one caller for one field; the decision it checked (None: not reached)."""
    decisions = _decisions(world, who)
    errors = _error_places(body)
    if decisions.read(f"Query.{ROOTS[root]}") is Level.DENIED:
        assert body["data"][ROOTS[root]] is None
        assert errors == {(ROOTS[root],): "FORBIDDEN"}, (who, key, errors)
        return None
    for depth, step in enumerate(steps[:-1]):  # a guarded parent refused: the field is not reached
        parent = classification(step.type_name, step.field)
        assert parent is not None, step
        if parent.sensitivity is not Sensitivity.PUBLIC and decisions.read(step.key) is Level.DENIED:
            assert any(
                code == "FORBIDDEN_FIELD" and [p for p in place if not isinstance(p, int)] == names[: depth + 2]
                for place, code in errors.items()
            ), (who, key, errors)
            return None
    spec = CATALOGUE[key]
    level = decisions.read(key)
    got = dict(_values(body["data"], names, ()))
    assert set(got) == set(full_values), (who, key, got, full_values)
    denied = level is Level.DENIED or (level is Level.CONSENTED and not consented)
    for place, value in got.items():
        full = full_values[place]
        if denied:
            assert value is None, (who, key, place, value)
            assert errors.get(place) == "FORBIDDEN_FIELD", (who, key, place, errors)
        elif level is Level.MASKED:
            assert spec.mask is not None
            assert value == (None if full is None else _masked(spec.mask, full)), (who, key, value, full)
            assert value != full or full is None, (who, key, value)
        elif spec.sensitivity is Sensitivity.SENSITIVE:
            assert value == full, (who, key, value, full)
        else:
            assert place not in errors, (who, key, errors)
    return level
