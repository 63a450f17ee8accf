"""Domain errors: plain exceptions that know nothing of HTTP or GraphQL.

One place in api/ maps them to ``userErrors`` or error codes.
"""

from __future__ import annotations


class DomainError(Exception):
    """An expected failure of a use-case; ``code`` is stable, ``field`` names the input at fault."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(DomainError):
    code = "INVALID"


class Invalid(DomainError):
    """Several validation errors at once."""

    code = "INVALID"

    def __init__(self, errors: list[ValidationFailed]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class IllegalTransition(DomainError):
    code = "ILLEGAL_TRANSITION"


class DataIntegrity(DomainError):
    """A stored value fails its integrity check (an encrypted value altered, or moved from another row or
    column): it is not served. Returned in place of the value by the encrypted column types
    (infra/crypto.py), so one bad value nulls one field (``DATA_INTEGRITY`` at its path), not the request."""

    code = "DATA_INTEGRITY"
