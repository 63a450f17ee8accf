"""Every string input of every mutation has a maximum length, checked here, once, before the
resolver runs: an over-long value is a ``userError`` (code INVALID, the input's path as ``field``)
and nothing is written. The limits are domain/limits.py's; this table says which applies to which
input, by schema coordinate: ``InputType.field`` for a field of an input object, ``mutation.arg``
for an argument. An input not listed gets ``limits.DEFAULT``. A test walks the built schema and
sends an over-long value to every one of them (tests/api/test_input_limits.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    default_field_resolver,
)
from strawberry.types.base import StrawberryObjectDefinition

from api.graphql.core.relay import UserError
from domain import limits as L

MAX_LENGTH: dict[str, int] = {
    # access administration
    "createRole.name": L.CODE,
    "createRole.description": L.SHORT_TEXT,
    "createRole.inherits": L.CODE,
    "deleteRole.name": L.CODE,
    "grantAccess.role": L.CODE,
    "grantAccess.object": L.NAME,
    "revokeAccess.role": L.CODE,
    "revokeAccess.object": L.NAME,
    "assignRole.user": L.NAME,
    "assignRole.role": L.CODE,
    "unassignRole.user": L.NAME,
    "unassignRole.role": L.CODE,
    "createPartnerToken.partner": L.NAME,
    "createPartnerToken.name": L.NAME,
    "createPartnerToken.scopes": L.NAME,
    "createPartnerToken.role": L.CODE,
    # taxonomy, SLA, tiers
    "addComplaintCategory.code": L.CODE,
    "addComplaintCategory.label": L.LABEL,
    "deactivateComplaintCategory.code": L.CODE,
    "addRootCause.code": L.CODE,
    "addRootCause.label": L.LABEL,
    "deactivateRootCause.code": L.CODE,
    "CreateSlaPolicyInput.name": L.LABEL,
    "SlaTargetInput.tier": L.CODE,
    "CreateTierPolicyDraftInput.name": L.NAME,
    "CreateTierPolicyDraftInput.description": L.SHORT_TEXT,
    "UpdateTierPolicyDraftInput.name": L.NAME,
    "UpdateTierPolicyDraftInput.description": L.SHORT_TEXT,
    "TierInput.code": L.CODE,
    "TierInput.name": L.LABEL,
    "TierInput.benefits": L.NAME,
    "OverrideCustomerTierInput.tier": L.CODE,
    "OverrideCustomerTierInput.reason": L.REASON,
    "ClearCustomerTierOverrideInput.reason": L.REASON,
    "dismissDuplicatePair.reason": L.CODE,
    # customers
    "CreateCustomerInput.name": L.NAME,
    "CreateCustomerInput.externalRef": L.IDENTIFIER,
    "CreateCustomerInput.email": L.EMAIL,
    "CreateCustomerInput.phone": L.PHONE,
    "CreateCustomerInput.nationalId": L.NATIONAL_ID,
    "CreateCustomerInput.locale": L.LOCALE,
    "UpdateCustomerInput.name": L.NAME,
    "UpdateCustomerInput.externalRef": L.IDENTIFIER,
    "UpdateCustomerInput.email": L.EMAIL,
    "UpdateCustomerInput.phone": L.PHONE,
    "UpdateCustomerInput.nationalId": L.NATIONAL_ID,
    "UpdateCustomerInput.locale": L.LOCALE,
    "AddressInput.line1": 200,
    "AddressInput.line2": 200,
    "AddressInput.postalCode": 16,
    "AddressInput.city": 100,
    "AddressInput.country": 2,
    # purchases, complaints, surveys
    "PurchaseInput.customerExternalRef": L.IDENTIFIER,
    "PurchaseInput.externalId": L.IDENTIFIER,
    "PurchaseInput.currency": 3,
    "PurchaseInput.channel": L.CODE,
    "OpenComplaintInput.subject": L.SUBJECT,
    "OpenComplaintInput.description": L.LONG_TEXT,
    "OpenComplaintInput.category": L.CODE,
    "OpenComplaintInput.externalId": L.IDENTIFIER,
    "TransitionComplaintInput.assignee": L.NAME,
    "TransitionComplaintInput.resolutionCode": L.CODE,
    "TransitionComplaintInput.rootCauseCode": L.CODE,
    "TransitionComplaintInput.note": L.SHORT_TEXT,
    "CreateSurveyInput.title": L.NAME,
    "CreateSurveyInput.description": L.SHORT_TEXT,
    "SurveyQuestionInput.dimension": L.CODE,
    "SurveyQuestionInput.prompt": L.SHORT_TEXT,
    "SurveyQuestionInput.options": L.NAME,
    "SubmitSurveyResponseInput.externalId": L.IDENTIFIER,
    "AnswerInput.choices": L.NAME,
    "AnswerInput.text": L.ANSWER_TEXT,
}


def limit_of(coordinate: str) -> int:
    return MAX_LENGTH.get(coordinate, L.DEFAULT)


def _named(gtype: Any) -> Any:
    while isinstance(gtype, GraphQLNonNull | GraphQLList):
        gtype = gtype.of_type
    return gtype


def _too_long(gtype: GraphQLInputType, value: Any, coordinate: str, path: str) -> Iterator[L.TooLong]:
    """Every string in ``value`` (of GraphQL type ``gtype``) longer than its coordinate allows."""
    if value is None:
        return
    if isinstance(gtype, GraphQLNonNull):
        yield from _too_long(gtype.of_type, value, coordinate, path)
    elif isinstance(gtype, GraphQLList):
        if isinstance(value, list | tuple):
            for n, item in enumerate(value):
                yield from _too_long(gtype.of_type, item, coordinate, f"{path}[{n}]")
    elif isinstance(gtype, GraphQLInputObjectType):
        for name, field in gtype.fields.items():
            key = field.out_name or name
            item = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
            yield from _too_long(field.type, item, f"{gtype.name}.{name}", f"{path}.{name}" if path else name)
    elif isinstance(gtype, GraphQLScalarType) and gtype.name == "String" and isinstance(value, str):
        limit = limit_of(coordinate)
        if len(value) > limit:
            yield L.TooLong(path, limit, len(value))


def over_long_inputs(field_name: str, field: Any, kwargs: dict[str, Any]) -> list[L.TooLong]:
    """The over-long string inputs of one mutation call (its arguments as graphql-core coerced them)."""
    found: list[L.TooLong] = []
    for name, arg in field.args.items():
        key = arg.out_name or name
        if key not in kwargs:
            continue
        # the fields of a single ``input`` object are named without it, as every userError does
        path = "" if name == "input" and isinstance(_named(arg.type), GraphQLInputObjectType) else name
        found += _too_long(arg.type, kwargs[key], f"{field_name}.{name}", path)
    return found


def _payload_class(field: Any) -> type[Any]:
    """The strawberry class of a mutation's payload; every payload has ``userErrors``."""
    definition: StrawberryObjectDefinition = _named(field.type).extensions["strawberry-definition"]
    if not any(f.python_name == "user_errors" for f in definition.fields):
        raise RuntimeError(f"{definition.name} has no userErrors: a mutation's payload needs them")
    return definition.origin


def _checked(field_name: str, field: Any, resolve: Callable[..., Any]) -> Callable[..., Any]:
    payload = _payload_class(field)

    def checked(root: Any, info: Any, **kwargs: Any) -> Any:
        problems = over_long_inputs(field_name, field, kwargs)
        if problems:
            errors = [UserError(field=p.field, code="INVALID", message=p.message) for p in problems]
            return payload(user_errors=errors)
        return resolve(root, info, **kwargs)

    checked.__name__ = f"length_checked_{field_name}"
    return checked


def install_length_checks(schema: GraphQLSchema) -> None:
    """Check the string inputs of every mutation before its resolver (install before the guards, so
    that an unauthorised caller is refused before its input is looked at)."""
    mutation: GraphQLObjectType | None = schema.mutation_type
    if mutation is None:
        return
    for name, field in mutation.fields.items():
        field.resolve = _checked(name, field, field.resolve or default_field_resolver)
