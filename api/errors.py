"""The one place where errors become GraphQL: domain errors → userErrors or codes; anything
unexpected → INTERNAL with a request id and nothing of the internals."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from api.types import UserError
from domain.errors import DomainError, Invalid

log = logging.getLogger("tierwise.api")

# Codes clients can rely on (API.md).
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
FORBIDDEN_FIELD = "FORBIDDEN_FIELD"
FORBIDDEN_ARGUMENT = "FORBIDDEN_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL"

_SNAKE_TO_CAMEL = {
    "national_id": "nationalId",
    "birth_date": "birthDate",
    "external_ref": "externalRef",
    "lifecycle_stage": "lifecycleStage",
    "postal_code": "postalCode",
}


def coded(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def user_errors(exc: DomainError) -> list[UserError]:
    items = exc.errors if isinstance(exc, Invalid) else [exc]
    return [UserError(field=_SNAKE_TO_CAMEL.get(e.field or "", e.field), code=e.code, message=e.message) for e in items]


def query_error(exc: DomainError) -> GraphQLError:
    """A domain error raised by a query resolver: NOT_FOUND stays, input problems are BAD_USER_INPUT."""
    code = NOT_FOUND if exc.code == NOT_FOUND else (FORBIDDEN if exc.code == FORBIDDEN else BAD_USER_INPUT)
    return coded(exc.message, code)


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    original = error.original_error
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = error.path
    code = (error.extensions or {}).get("code")
    if code is None and isinstance(original, GraphQLError):
        code = (original.extensions or {}).get("code")
    if code is None and isinstance(original, DomainError):
        code, out["message"] = query_error(original).extensions["code"], original.message
    if code is None and (original is None or (error.path is None and isinstance(original, GraphQLError))):
        code = BAD_USER_INPUT  # syntax, validation, argument and variable coercion: nothing ran
    if code is None:
        log.error("unexpected error in request %s", request_id, exc_info=original)
        code, out["message"] = INTERNAL, f"internal error (request id {request_id})"
    out["extensions"] = {"code": code}
    return out
