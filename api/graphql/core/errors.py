"""The one place where errors become GraphQL: domain errors → userErrors or codes; anything
unexpected → INTERNAL with a request id and nothing of the internals."""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError

from api.graphql.core.relay import UserError
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
# trusted-documents mode: anything but a registered document (one code, one message, no detail)
UNTRUSTED_DOCUMENT = "UNTRUSTED_DOCUMENT"
UNTRUSTED_DOCUMENT_MESSAGE = "only registered documents are accepted"

# Extension keys our own errors may carry to clients (anything else stays on the server).
_PUBLIC_EXTENSIONS = ("retryAfter", "cost", "maxCost")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
_QUOTED = re.compile(r"'([^']*)'")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")

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


def query_code(exc: DomainError) -> str:
    """The code of a domain error raised by a query resolver: NOT_FOUND stays, input problems are
    BAD_USER_INPUT."""
    return exc.code if exc.code in (NOT_FOUND, FORBIDDEN, DATA_INTEGRITY) else BAD_USER_INPUT


def query_error(exc: DomainError) -> GraphQLError:
    """A domain error raised by a query resolver, as a coded GraphQL error (``query_code``)."""
    return coded(exc.message, query_code(exc))


def without_suggestions(message: str) -> str:
    """Drop graphql-core's "Did you mean …?" hints (they reveal schema names to a guesser)."""
    return _SUGGESTION.sub("", message)


def document_names(query: str | None) -> frozenset[str]:
    """Every name the document's text holds (what a validation message may repeat back)."""
    return frozenset(_NAME.findall(query or ""))


def naming_only(message: str, names: frozenset[str]) -> str:
    """A graphql-core message without the names it quotes that the document did not contain
    ("Field 'customers' of type 'CustomerConnection' must have …" → "… of type '…' must have …"),
    so that validation errors do not map the schema for a guesser."""

    def keep_known(match: re.Match[str]) -> str:
        quoted = match.group(1)
        if all(name in names for name in _NAME.findall(quoted)):
            return match.group(0)
        return "'…'"

    return _QUOTED.sub(keep_known, without_suggestions(message))


_DB_FAILURES = {
    DbFailure.TIMEOUT: (TIMEOUT, "the operation took too long and was cancelled"),
    DbFailure.UNAVAILABLE: (SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly"),
    DbFailure.BUSY: (SERVICE_UNAVAILABLE, "the service is busy (no database connection free); retry shortly"),
}


def format_error(
    error: GraphQLError,
    request_id: str,
    *,
    hide_suggestions: bool = False,
    known_names: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The error as the client sees it. With ``known_names`` (production, or trusted documents),
    graphql-core's own messages (syntax, validation, variable coercion) quote no other names."""
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
        code, out["message"] = query_code(original), original.message
    if code is None and (original is None or (error.path is None and isinstance(original, GraphQLError))):
        code = BAD_USER_INPUT  # syntax, validation, argument and variable coercion: nothing ran
        if known_names is not None:
            out["message"] = naming_only(out["message"], known_names)
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
