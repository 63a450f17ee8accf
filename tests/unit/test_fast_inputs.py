"""The input objects of the schema are built by api/graphql/core/fast_inputs.py exactly as strawberry builds them:
for every input type it took over, a value with every field given, one with only the required fields, and one
with explicit nulls convert to equal Python values through its ``from_input`` and through strawberry's generic
conversion; the ingest inputs are among them; types with a Maybe field are left to strawberry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, GraphQLNonNull
from strawberry.types.arguments import convert_argument
from strawberry.types.base import StrawberryMaybe, StrawberryObjectDefinition

from api.graphql.core.fast_inputs import install_fast_inputs
from api.graphql.schema import build_schema

SCHEMA = build_schema()
FAST = install_fast_inputs(SCHEMA)  # already installed by build_schema: none left to take over
DEFINITIONS = {
    c.definition.name: c.definition
    for c in SCHEMA.schema_converter.type_map.values()
    if isinstance(c.definition, StrawberryObjectDefinition) and c.definition.is_input
}


class Leaf:
    """A value graphql-core would have coerced: converted to itself, so compared by identity."""

    def __repr__(self) -> str:
        return f"Leaf({id(self)})"


def _sample(name: str, *, only_required: bool, nulls: bool, depth: int = 0) -> dict[str, Any]:
    """An input value of type ``name`` keyed by GraphQL names: leaves are ``Leaf()``, nested inputs sampled."""
    graphql_type = SCHEMA._schema.type_map[name]
    assert isinstance(graphql_type, GraphQLInputObjectType)
    value: dict[str, Any] = {}
    for field_name, field in graphql_type.fields.items():
        required = isinstance(field.type, GraphQLNonNull)
        if only_required and not required:
            continue
        if nulls and not required:
            value[field_name] = None
            continue
        value[field_name] = _value_of(field.type, only_required=only_required, nulls=nulls, depth=depth)
    return value


def _value_of(graphql_type: Any, *, only_required: bool, nulls: bool, depth: int) -> Any:
    while isinstance(graphql_type, GraphQLNonNull):
        graphql_type = graphql_type.of_type
    if hasattr(graphql_type, "of_type"):  # a list: two items
        return [_value_of(graphql_type.of_type, only_required=only_required, nulls=nulls, depth=depth) for _ in "ab"]
    if isinstance(graphql_type, GraphQLInputObjectType):
        return (
            None if depth > 2 else _sample(graphql_type.name, only_required=only_required, nulls=nulls, depth=depth + 1)
        )
    if graphql_type.name == "GlobalID":
        return "Q3VzdG9tZXI6MQ"
    return Leaf()


def _convert(name: str, value: dict[str, Any], *, fast: bool) -> Any:
    definition = DEFINITIONS[name]
    saved = {n: d.from_input for n, d in DEFINITIONS.items()}
    try:
        if not fast:
            for d in DEFINITIONS.values():
                if d.name in FAST_INSTALLED:
                    d.from_input = None
        return convert_argument(value, definition.origin, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    finally:
        for n, d in DEFINITIONS.items():
            d.from_input = saved[n]


FAST_INSTALLED = sorted(n for n, d in DEFINITIONS.items() if d.from_input is not None)


def _cases() -> Iterator[tuple[str, bool, bool]]:
    for name in FAST_INSTALLED:
        for only_required, nulls in ((False, False), (True, False), (False, True)):
            yield name, only_required, nulls


def test_every_input_type_without_a_maybe_field_is_built_fast() -> None:
    assert FAST == []
    with_maybe = {
        name
        for name, definition in DEFINITIONS.items()
        if any(isinstance(f.resolve_type(type_definition=definition), StrawberryMaybe) for f in definition.fields)
    }
    assert set(FAST_INSTALLED) == set(DEFINITIONS) - with_maybe
    assert {"PurchaseInput", "RefundInput", "RedemptionInput", "RecordRefundsInput"} <= set(FAST_INSTALLED)


@pytest.mark.parametrize(("name", "only_required", "nulls"), list(_cases()))
def test_fast_and_strawberry_build_equal_values(name: str, only_required: bool, nulls: bool) -> None:
    value = _sample(name, only_required=only_required, nulls=nulls)
    assert _convert(name, value, fast=True) == _convert(name, value, fast=False)
