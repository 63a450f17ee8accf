"""The one enforcement point: every non-public field of the schema gets a guard, installed once
when the schema is built, from the field catalogue. The guard asks the request's decisions (a dict
lookup, decided once per role set and policy version), so every path to a field — nested, aliased,
through fragments or ``node`` — meets the same check. An unclassified field stops the build."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, default_field_resolver

from api.errors import FORBIDDEN, FORBIDDEN_FIELD, coded
from authz.catalogue import CATALOGUE, FieldSpec, Sensitivity, classification
from authz.policy import Level

OPERATION_TYPES = {"Query", "Mutation"}

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


def _embedded(value: Any, root: Any, info: GraphQLResolveInfo, keys: dict[str, str]) -> Any:
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


def read_check(spec: FieldSpec) -> Callable[[Any, Any], None]:
    """The read check of one guarded field, as ``check(root, context)``: raises the coded error of a
    refused read and records an unmasked sensitive read for the audit. The field guards below and the
    compiled executor (api/fastpath.py) both use it, so both paths refuse and audit alike."""
    key = spec.key
    is_operation = spec.type_name in OPERATION_TYPES
    sensitive = spec.sensitivity is Sensitivity.SENSITIVE

    def check(root: Any, context: Any) -> None:
        level = context.decisions.read(key)
        if level is Level.DENIED:
            if is_operation:
                raise coded(f"not allowed: {spec.field_name}", FORBIDDEN)
            raise coded(f"not allowed to read {key}", FORBIDDEN_FIELD)
        if level is Level.CONSENTED and not consented(root, spec):
            raise coded(f"the customer has not consented to {spec.consent} contact", FORBIDDEN_FIELD)
        if sensitive and level is not Level.MASKED:
            customer = _audit_customer(root)
            if customer is not None:
                context.sensitive_reads[customer].add(key)

    return check


def _guard(spec: FieldSpec, resolve: Callable[..., Any]) -> Callable[..., Any]:
    key = spec.key
    is_mutation = spec.type_name == "Mutation"
    embedded = EMBEDDED.get(key)
    check = read_check(spec)

    def guarded(root: Any, info: GraphQLResolveInfo, **kwargs: Any) -> Any:
        if is_mutation:
            if not info.context.decisions.can_write(key):
                raise coded(f"not allowed: {spec.field_name}", FORBIDDEN)
        else:
            check(root, info.context)
        result = resolve(root, info, **kwargs)
        if embedded is None:
            return result
        if inspect.isawaitable(result):
            return _filter_later(result, root, info, embedded)
        return _embedded(result, root, info, embedded)

    guarded.__name__ = f"guarded_{key}"
    return guarded


async def _filter_later(result: Any, root: Any, info: GraphQLResolveInfo, keys: dict[str, str]) -> Any:
    return _embedded(await result, root, info, keys)


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
