"""The duplicate warning (issue 16): the live customers a customer about to be created (by createCustomer or
an import row) likely duplicates, among those of the same owner (the caller's partner, or none for staff).

Matching by a field is an oracle on it ("is there a customer with this e-mail?"), so a caller is matched
only on the criteria whose fields it may read in FULL — the rule of every filter (authz/catalogue.py,
``ARGUMENTS``): e-mail, phone and national id by their blind index; name and birth date by theirs (exact),
or a very similar name with the same birth date (createCustomer only: it costs a trigram lookup and a few
decryptions per customer). The operator's CLI matches on every criterion. A candidate is an id and the
criteria it matched on; its fields then follow the caller's read decisions wherever it is shown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from authz.policy import Level
from domain.errors import DomainError
from infra import crypto
from infra.repos import matching
from infra.repos.base import Executor, Scope

# criterion -> the fields it compares (what the caller must read in FULL to be matched on it)
CRITERIA: dict[str, tuple[str, ...]] = {
    "EMAIL": ("Customer.email",),
    "PHONE": ("Customer.phone",),
    "NATIONAL_ID": ("Customer.nationalId",),
    "NAME_DOB": ("Customer.name", "Customer.birthDate"),
    matching.SIMILAR_NAME_DOB: ("Customer.name", "Customer.birthDate"),
}
EVERY_CRITERION = frozenset(CRITERIA)


def allowed_criteria(read: Callable[[str], Level] | None) -> frozenset[str]:
    """The criteria a caller may be matched on, from its read decisions (``None``: the operator, every one)."""
    if read is None:
        return EVERY_CRITERION
    return frozenset(crit for crit, fields in CRITERIA.items() if all(read(f) is Level.FULL for f in fields))


@dataclass(frozen=True)
class Candidate:
    customer_id: UUID
    reasons: tuple[str, ...]


class LikelyDuplicates(DomainError):
    """createCustomer with ``onDuplicate: STOP`` found likely duplicates: nothing was created."""

    code = "DUPLICATE"

    def __init__(self, candidates: list[Candidate]) -> None:
        super().__init__(
            f"{len(candidates)} existing customer(s) look like this one; send onDuplicate: CREATE to create it anyway",
            field="input",
        )
        self.candidates = candidates


def index_row(n: int, values: dict[str, Any]) -> dict[str, Any]:
    """A row of ``matching.by_blind_index``: its number and the blind indexes of normalised ``values``."""
    sources = {key: values.get(key) for key in ("email", "phone", "national_id", "name", "birth_date")}
    return {"n": n, **crypto.current().customer_indexes(sources)}


async def likely_duplicates(
    db: Executor, values: dict[str, Any], *, scope: Scope, criteria: Collection[str]
) -> list[Candidate]:
    """The live customers of the owner that ``values`` (normalised, as createCustomer writes them) likely
    duplicate, on the ``criteria`` allowed, oldest first."""
    found = (await matching.by_blind_index(db, [index_row(0, values)], scope=scope, criteria=criteria)).get(0, {})
    reasons = {customer_id: list(why) for customer_id, why in found.items()}
    name, birth = values.get("name"), values.get("birth_date")
    if matching.SIMILAR_NAME_DOB in criteria and isinstance(name, str) and isinstance(birth, dt.date):
        for customer_id in await matching.by_similar_name(db, name, birth, scope=scope):
            if "NAME_DOB" not in reasons.get(customer_id, []):
                reasons.setdefault(customer_id, []).append(matching.SIMILAR_NAME_DOB)
    return [Candidate(customer_id, tuple(why)) for customer_id, why in reasons.items()]
