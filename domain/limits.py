"""The longest value each kind of text input may have.

Identifiers (external ids and references, codes, role and partner names, token names) end up in
btree indexes, whose rows PostgreSQL caps at about 2 700 bytes: an over-long one must be refused as
bad input before any SQL, never reach the index as an internal error. Free text has a cap too, so
that one request cannot store megabytes. api/graphql/core/input_limits.py maps every string input of every
mutation to one of these (or to ``DEFAULT``) and checks them all in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

CODE = 40  # taxonomy codes, role names, tier codes, resolution and reason codes
IDENTIFIER = 100  # a partner's external ids and references
NAME = 200  # partner, token, customer, policy and user names; assignees; scopes; grant objects
LABEL = 100  # a taxonomy label, a tier name
LOCALE = 35  # the longest BCP 47 tag an implementation must support (RFC 5646, 4.4.1)
EMAIL = 254  # RFC 5321 path limit
PHONE = 32
NATIONAL_ID = 32
SUBJECT = 300
REASON = 500  # tier override reasons
SHORT_TEXT = 2000  # descriptions of roles, policies and surveys; complaint event notes; prompts
LONG_TEXT = 10_000  # a complaint's description
ANSWER_TEXT = 5000  # a survey text answer
DEFAULT = NAME  # any string input not declared otherwise


@dataclass(frozen=True)
class TooLong:
    """One over-long input: where it is (as the client named it), its limit and its length."""

    field: str
    limit: int
    length: int

    @property
    def message(self) -> str:
        name = self.field.rsplit(".", 1)[-1].split("[", 1)[0]
        return f"{name} has at most {self.limit} characters (got {self.length})"
