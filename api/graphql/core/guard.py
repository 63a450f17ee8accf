"""The one enforcement point: every non-public field of the schema gets a guard, installed once
when the schema is built, from the field catalogue. The guard asks the request's decisions (a dict
lookup, decided once per role set and policy version), so every path to a field — nested, aliased,
through fragments or ``node`` — meets the same check, and applies the catalogue's mask where the
caller may read a field only masked (types and resolvers never mask). An unclassified field stops
the build.

The same guard checks the field's arguments (``argument_check``): a filter, sort order or lookup key
that selects rows by the value of a guarded field needs FULL read of that field, as the catalogue's
``ARGUMENTS`` declares, and is refused with FORBIDDEN_ARGUMENT before the resolver (and so before any
SQL) runs. An unclassified argument stops the build too."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    Undefined,
    default_field_resolver,
    get_named_type,
)

from api.graphql.core.context import Context
from api.graphql.core.errors import FORBIDDEN, FORBIDDEN_ARGUMENT, FORBIDDEN_FIELD, coded
from authz.catalogue import ARGUMENTS, CATALOGUE, FieldSpec, Reveals, Sensitivity, classification
from authz.masking import masked
from authz.policy import Decisions, Level

OPERATION_TYPES = {"Query", "Mutation", "Subscription"}

# JSON fields that embed the values of other guarded fields. Each embedded value follows the grant of
# the field it copies: it is kept only for a caller who may read that field in full (a masked or denied
# figure must not come back through a snapshot), and keys not listed here are dropped (deny by default).
# A sensitive embedded value is kept only when its customer is known, so that its read is audited.
EMBEDDED: dict[str, dict[str, str]] = {
    # the metrics that decided a tier change (infra/tiering.py, metrics_json_sql)
    "TierChange.metrics": {
        "spend_12m": "CustomerMetrics.spend12m",
        "orders_12m": "CustomerMetrics.orders12m",
        "lifetime_spend": "CustomerMetrics.lifetimeSpend",
        "order_count": "CustomerMetrics.orderCount",
        "days_since_last_purchase": "CustomerMetrics.lastPurchaseAt",
        "tenure_days": "CustomerMetrics.tenureDays",
        "latest_nps": "CustomerMetrics.latestNps",
        "latest_csat": "CustomerMetrics.latestCsat",
        "open_complaints": "CustomerMetrics.openComplaints",
    },
}


def _audit_customer(root: Any) -> Any:
    return (
        getattr(root, "db_id", None) if type(root).__name__ == "CustomerType" else getattr(root, "customer_ref", None)
    )


def _embedded(value: Any, root: Any, info: GraphQLResolveInfo[Context], keys: dict[str, str]) -> Any:
    """Only the embedded values the caller may read in full (see ``EMBEDDED``)."""
    if not isinstance(value, dict):
        return None
    decisions = info.context.decisions
    customer = _audit_customer(root)
    kept: dict[str, Any] = {}
    for name, item in value.items():
        field_key = keys.get(name)
        if field_key is None or decisions.read(field_key) is not Level.FULL:
            continue
        if CATALOGUE[field_key].sensitivity is Sensitivity.SENSITIVE:
            if customer is None:
                continue
            info.context.sensitive_reads[customer].add(field_key)
        kept[name] = item
    return kept


def consented(root: Any, spec: FieldSpec) -> bool:
    """Whether the customer behind ``root`` consented on the field's channel."""
    row = getattr(root, "row", None) or {}
    return row.get(f"consent_{spec.consent}_at") is not None


Mask = Callable[[Any], Any]


def read_check(spec: FieldSpec) -> Callable[[Any, Any], Mask | None]:
    """The read check of one guarded field, as ``check(root, context) -> mask``: raises the coded error
    of a refused read, records an unmasked sensitive read for the audit, and returns the mask the value
    must go through for this caller (``None``: as it is). Masks come from the catalogue only: resolvers
    and ``from_row`` hand over full values, and this is the one place that masks them. The field guards
    below and the read compiler's leaf pass (api/graphql/compiler.py) both use it, so both paths refuse,
    mask and audit alike."""
    key = spec.key
    is_operation = spec.type_name in OPERATION_TYPES
    sensitive = spec.sensitivity is Sensitivity.SENSITIVE
    mask: Mask | None = functools.partial(masked, spec.mask) if spec.mask else None

    def check(root: Any, context: Any) -> Mask | None:
        level = context.decisions.read(key)
        if level is Level.DENIED:
            if is_operation:
                raise coded(f"not allowed: {spec.field_name}", FORBIDDEN)
            raise coded(f"not allowed to read {key}", FORBIDDEN_FIELD)
        if level is Level.MASKED:
            if mask is None:  # the policy gives MASKED only to fields with a mask: never here
                raise coded(f"not allowed to read {key}", FORBIDDEN_FIELD)
            return mask
        if level is Level.CONSENTED and not consented(root, spec):
            raise coded(f"the customer has not consented to {spec.consent} contact", FORBIDDEN_FIELD)
        if sensitive:
            customer = _audit_customer(root)
            if customer is not None:
                context.sensitive_reads[customer].add(key)
        return None

    return check


# ---------------------------------------------------------------- arguments

ArgumentCheck = Callable[[Decisions, dict[str, Any]], None]
_Revealed = Callable[[Any], list[str]]  # a value of an argument -> the guarded fields it reveals


def _items(value: Any) -> list[Any]:
    """The values of an argument or input field as given: a list's items (nested lists flattened), or itself."""
    if value is None or value is Undefined:
        return []
    if isinstance(value, list | tuple):
        return [x for item in value for x in _items(item)]
    return [value]


def _revealed(type_: GraphQLInputType, key: str, problems: list[str]) -> _Revealed | None:
    """What a value of the argument or input field ``key`` reveals, from its ``ARGUMENTS`` declaration or
    (for an input object) from its fields' declarations; None when no value of it can reveal anything.
    An undeclared or ill-declared argument is added to ``problems``."""
    named = get_named_type(type_)
    spec = ARGUMENTS.get(key)
    if isinstance(named, GraphQLInputObjectType):
        if spec is not None:
            problems.append(f"{key} (declare the fields of {named.name}, not the argument)")
        parts = [
            (name, found)
            for name, field in named.fields.items()
            if (found := _revealed(field.type, f"{named.name}.{name}", problems)) is not None
        ]
        if not parts:
            return None

        def of_object(value: Any) -> list[str]:
            return [k for item in _items(value) for name, found in parts for k in found(item.get(name))]

        return of_object
    if spec is None:
        problems.append(key)
        return None
    if spec.by_value is not None:
        if not isinstance(named, GraphQLEnumType) or set(spec.by_value) != set(named.values):
            problems.append(f"{key} (declared per value: every value of its enum, and nothing else)")
            return None
        table: dict[str, Reveals] = spec.by_value
        if not any(table.values()):
            return None
        enum_type = named

        def of_values(value: Any) -> list[str]:
            return [k for item in _items(value) for k in table[str(enum_type.serialize(item))]]

        return of_values
    if not spec.reveals:
        return None
    reveals = list(spec.reveals)

    def when_given(value: Any) -> list[str]:
        return reveals if _items(value) else []

    return when_given


def argument_check(type_name: str, field_name: str, field: GraphQLField, problems: list[str]) -> ArgumentCheck | None:
    """The argument check of one field, as ``check(decisions, arguments)`` over the arguments as
    graphql-core coerced them (GraphQL names, defaults filled in): raises FORBIDDEN_ARGUMENT for the
    first argument that reveals a field the caller may not read in FULL. None when no argument of the
    field can reveal a guarded field. The field guards below and the read compiler
    (api/graphql/compiler.py) both use it."""
    parts = [
        (name, found)
        for name, argument in field.args.items()
        if (found := _revealed(argument.type, f"{type_name}.{field_name}({name})", problems)) is not None
    ]
    if not parts:
        return None

    def check(decisions: Decisions, arguments: dict[str, Any]) -> None:
        for name, found in parts:
            for key in found(arguments.get(name)):
                if decisions.read(key) is not Level.FULL:
                    raise coded(f"filtering or sorting on {key} is not allowed", FORBIDDEN_ARGUMENT)

    return check


# ---------------------------------------------------------------- guards


def _arguments_only(check_arguments: ArgumentCheck, resolve: Callable[..., Any]) -> Callable[..., Any]:
    """The guard of a public field whose arguments can reveal a guarded field."""

    def guarded(root: Any, info: GraphQLResolveInfo[Context], **kwargs: Any) -> Any:
        check_arguments(info.context.decisions, kwargs)
        return resolve(root, info, **kwargs)

    return guarded


def _guard(spec: FieldSpec, resolve: Callable[..., Any], check_arguments: ArgumentCheck | None) -> Callable[..., Any]:
    key = spec.key
    is_mutation = spec.type_name == "Mutation"
    embedded = EMBEDDED.get(key)
    check = read_check(spec)

    def guarded(root: Any, info: GraphQLResolveInfo[Context], **kwargs: Any) -> Any:
        mask = None
        if is_mutation:
            if not info.context.decisions.can_write(key):
                raise coded(f"not allowed: {spec.field_name}", FORBIDDEN)
        else:
            mask = check(root, info.context)
        if check_arguments is not None:
            check_arguments(info.context.decisions, kwargs)
        result = resolve(root, info, **kwargs)
        if mask is not None:
            if inspect.isawaitable(result):
                return _mask_later(result, mask)
            return mask(result)
        if embedded is None:
            return result
        if inspect.isawaitable(result):
            return _filter_later(result, root, info, embedded)
        return _embedded(result, root, info, embedded)

    guarded.__name__ = f"guarded_{key}"
    return guarded


def _guard_subscribe(
    spec: FieldSpec, subscribe: Callable[..., Any], check_arguments: ArgumentCheck | None
) -> Callable[..., Any]:
    """The guard of a subscription's source stream: the operation's read check and its arguments' checks."""
    check = read_check(spec)

    def guarded(root: Any, info: GraphQLResolveInfo[Context], **kwargs: Any) -> Any:
        check(root, info.context)
        if check_arguments is not None:
            check_arguments(info.context.decisions, kwargs)
        return subscribe(root, info, **kwargs)

    guarded.__name__ = f"guarded_subscribe_{spec.key}"
    return guarded


async def _mask_later(result: Any, mask: Mask) -> Any:
    return mask(await result)


async def _filter_later(result: Any, root: Any, info: GraphQLResolveInfo[Context], keys: dict[str, str]) -> Any:
    return _embedded(await result, root, info, keys)


def install_guards(schema: Any) -> list[str]:
    """Wrap the resolver of every guarded field, and of every field with an argument that can reveal a
    guarded field; return unclassified fields and arguments (the build fails on any)."""
    unclassified: list[str] = []
    for type_name, gtype in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(gtype, GraphQLObjectType):
            continue
        for field_name, field in gtype.fields.items():
            spec = classification(type_name, field_name)
            check_arguments = argument_check(type_name, field_name, field, unclassified)
            if spec is None:
                unclassified.append(f"{type_name}.{field_name}")
                continue
            resolve = field.resolve or default_field_resolver
            if spec.sensitivity is not Sensitivity.PUBLIC:
                field.resolve = _guard(spec, resolve, check_arguments)
                if field.subscribe is not None:  # a subscription: refused before its stream opens, too
                    field.subscribe = _guard_subscribe(spec, field.subscribe, check_arguments)
            elif check_arguments is not None:
                field.resolve = _arguments_only(check_arguments, resolve)
    return list(dict.fromkeys(unclassified))  # an input type used by several fields is named once
