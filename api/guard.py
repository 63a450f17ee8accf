"""The one enforcement point: every non-public field of the schema gets a guard, installed once
when the schema is built, from the field catalogue. The guard asks the request's decisions (a dict
lookup, decided once per role set and policy version), so every path to a field — nested, aliased,
through fragments or ``node`` — meets the same check. An unclassified field stops the build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, default_field_resolver

from api.errors import FORBIDDEN, FORBIDDEN_FIELD, coded
from authz.catalogue import FieldSpec, Sensitivity, classification
from authz.policy import Level

OPERATION_TYPES = {"Query", "Mutation"}


def _audit_customer(root: Any) -> Any:
    return (
        getattr(root, "db_id", None) if type(root).__name__ == "CustomerType" else getattr(root, "customer_ref", None)
    )


def _guard(spec: FieldSpec, resolve: Callable[..., Any]) -> Callable[..., Any]:
    key = spec.key
    is_operation = spec.type_name in OPERATION_TYPES
    is_mutation = spec.type_name == "Mutation"
    sensitive = spec.sensitivity is Sensitivity.SENSITIVE

    def guarded(root: Any, info: GraphQLResolveInfo, **kwargs: Any) -> Any:
        decisions = info.context.decisions
        if is_mutation:
            if not decisions.can_write(key):
                raise coded(f"not allowed: {spec.field_name}", FORBIDDEN)
        else:
            level = decisions.read(key)
            if level is Level.DENIED:
                if is_operation:
                    raise coded(f"not allowed: {spec.field_name}", FORBIDDEN)
                raise coded(f"not allowed to read {key}", FORBIDDEN_FIELD)
            if sensitive and level is Level.FULL:
                customer = _audit_customer(root)
                if customer is not None:
                    info.context.sensitive_reads[customer].add(key)
        return resolve(root, info, **kwargs)

    guarded.__name__ = f"guarded_{key}"
    return guarded


def install_guards(schema: Any) -> list[str]:
    """Wrap the resolver of every guarded field; return unclassified fields (the build fails on any)."""
    unclassified: list[str] = []
    for type_name, gtype in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(gtype, GraphQLObjectType):
            continue
        for field_name, field in gtype.fields.items():
            spec = classification(type_name, field_name)
            if spec is None:
                unclassified.append(f"{type_name}.{field_name}")
                continue
            if spec.sensitivity is not Sensitivity.PUBLIC:
                field.resolve = _guard(spec, field.resolve or default_field_resolver)
    return unclassified
