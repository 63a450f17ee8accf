"""The one place where errors become GraphQL: domain errors → userErrors or codes; anything
unexpected → INTERNAL with a request id and nothing of the internals."""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError

from api.types import UserError
from domain.errors import DomainError, Invalid
from infra.db import DbFailure, classify_db_error

log = logging.getLogger("tierwise.api")

# Codes clients can rely on (API.md).
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
FORBIDDEN_FIELD = "FORBIDDEN_FIELD"
FORBIDDEN_ARGUMENT = "FORBIDDEN_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
RATE_LIMITED = "RATE_LIMITED"
TIMEOUT = "TIMEOUT"  # a statement ran past the statement timeout and was cancelled
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # database unreachable or pool exhausted: retry later
BAD_REQUEST = "BAD_REQUEST"  # the HTTP request itself: content type, JSON, batching, GET mutations
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
DATA_INTEGRITY = "DATA_INTEGRITY"  # a stored value fails its integrity check: that field null, not the request

# Extension keys our own errors may carry to clients (anything else stays on the server).
_PUBLIC_EXTENSIONS = ("retryAfter", "cost", "maxCost")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")

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
    code = exc.code if exc.code in (NOT_FOUND, FORBIDDEN, DATA_INTEGRITY) else BAD_USER_INPUT
    return coded(exc.message, code)


def without_suggestions(message: str) -> str:
    """Drop graphql-core's "Did you mean …?" hints (they reveal schema names to a guesser)."""
    return _SUGGESTION.sub("", message)


_DB_FAILURES = {
    DbFailure.TIMEOUT: (TIMEOUT, "the operation took too long and was cancelled"),
    DbFailure.UNAVAILABLE: (SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly"),
    DbFailure.BUSY: (SERVICE_UNAVAILABLE, "the service is busy (no database connection free); retry shortly"),
}


def format_error(error: GraphQLError, request_id: str, *, hide_suggestions: bool = False) -> dict[str, Any]:
    original = error.original_error
    out: dict[str, Any] = {"message": error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = error.path
    extensions = error.extensions or {}
    code = extensions.get("code")
    if code is None and isinstance(original, GraphQLError):
        extensions = original.extensions or {}
        code = extensions.get("code")
    if code is None and isinstance(original, DomainError):
        code, out["message"] = query_error(original).extensions["code"], original.message
    if code is None and (original is None or (error.path is None and isinstance(original, GraphQLError))):
        code = BAD_USER_INPUT  # syntax, validation, argument and variable coercion: nothing ran
    if code is None:
        failure = classify_db_error(original)
        if failure is DbFailure.BAD_INPUT:
            code, out["message"] = BAD_USER_INPUT, "a string holds characters that cannot be stored"
        elif failure is not None:
            code, message = _DB_FAILURES[failure]
            log.warning("database %s in request %s (%s)", failure.value, request_id, type(original).__name__)
            out["message"] = f"{message} (request id {request_id})"
            extensions = {"retryAfter": 1} if code == SERVICE_UNAVAILABLE else {}
    if code is None:
        log.error("unexpected error in request %s", request_id, exc_info=original)
        code, out["message"] = INTERNAL, f"internal error (request id {request_id})"
        extensions = {}
    if hide_suggestions:
        out["message"] = without_suggestions(out["message"])
    out["extensions"] = {"code": code, **{k: extensions[k] for k in _PUBLIC_EXTENSIONS if k in extensions}}
    return out
