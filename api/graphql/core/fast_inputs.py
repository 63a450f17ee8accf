"""Input objects built without strawberry's per-field dispatch.

strawberry turns each input object of a request into its Python class field by field through a generic
``convert_argument``: for every field it resolves the annotation, asks whether it is optional, a list, a
scalar, lazy, an enum or an object, converts the GraphQL name, and recurses. For a scalar or enum field the
answer is the value graphql-core has already coerced, unchanged; the rest is dispatch. A batch mutation of 500
items (``recordPurchases``, ``recordRefunds``, ``recordBenefitRedemptions``) spent some 20 ms of its 55 ms of
server CPU there (bench/results/economics.md).

strawberry has a hook for types that build their own value: ``StrawberryObjectDefinition.from_input(cls,
value, context)``, called with the input value keyed by GraphQL names. ``install_fast_inputs`` sets it on
every input type of the schema, with a plan computed once per type: the GraphQL name and Python name of each
field, and whether its value passes as it is (a scalar or an enum, optional or not — exactly what
``convert_argument`` returns for those) or goes through strawberry's own conversion (``context.convert``:
lists, nested input objects, ``GlobalID`` — the same code, only not for the leaves). Fields the client
omitted are ``None`` when they have no default, as strawberry makes them; graphql-core has filled in the
published defaults. Types with a ``Maybe`` field are left to strawberry: the hook turns off its validation of
explicit nulls for the type (tests/unit/test_fast_inputs.py checks both paths give equal values for every
input type of the schema).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

import strawberry
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition

Builder = Callable[[type, Mapping[str, Any], InputContext], Any]


def _is_leaf(type_: object, registry: Mapping[object, Any]) -> bool:
    """A scalar or an enum, optional or not, other than GlobalID: converted to itself."""
    if isinstance(type_, StrawberryMaybe):
        return False
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if type_ is GlobalID or isinstance(type_, StrawberryList | StrawberryMaybe):
        return False
    return isinstance(type_, StrawberryEnumDefinition) or has_enum_definition(type_) or is_scalar(type_, registry)


def _has_maybe(type_: object) -> bool:
    while isinstance(type_, StrawberryOptional | StrawberryList):
        if isinstance(type_, StrawberryMaybe):
            return True
        type_ = type_.of_type
    return isinstance(type_, StrawberryMaybe)


def builder(definition: StrawberryObjectDefinition, schema: strawberry.Schema) -> Builder | None:
    """The ``from_input`` of ``definition``, or None when strawberry should keep building it (a Maybe field)."""
    registry = schema.schema_converter.scalar_registry
    name_of = schema.config.name_converter.from_field
    leaves: list[tuple[str, str]] = []
    others: list[tuple[str, str, StrawberryType | type]] = []
    implicit: dict[str, None] = {}
    for field in definition.fields:
        type_ = field.resolve_type(type_definition=definition)
        if _has_maybe(type_):
            return None
        if field.default_value is MISSING and field.default_factory is MISSING:
            implicit[field.python_name] = None
        if _is_leaf(type_, registry):
            leaves.append((name_of(field), field.python_name))
        else:
            others.append((name_of(field), field.python_name, type_))

    def build(cls: type, value: Mapping[str, Any], context: InputContext) -> Any:
        kwargs: dict[str, Any] = dict(implicit)
        for graphql_name, python_name in leaves:
            if graphql_name in value:
                kwargs[python_name] = value[graphql_name]
        for graphql_name, python_name, type_ in others:
            if graphql_name in value:
                kwargs[python_name] = context.convert(value[graphql_name], type_, graphql_name)
        return cls(**kwargs)

    return build


def install_fast_inputs(schema: strawberry.Schema) -> list[str]:
    """Set ``from_input`` on every input type of ``schema`` that has none and no Maybe field; their names."""
    installed = []
    for concrete in schema.schema_converter.type_map.values():
        definition = concrete.definition
        if not isinstance(definition, StrawberryObjectDefinition) or not definition.is_input:
            continue
        if definition.from_input is not None or definition.is_graphql_generic:
            continue
        build = builder(definition, schema)
        if build is not None:
            definition.from_input = build
            installed.append(definition.name)
    return sorted(installed)
