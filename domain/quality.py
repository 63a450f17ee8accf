"""Data-quality rules: duplicate criteria, what a merge fills in, what an erasure scrubs.

Pure functions over plain mappings; the SQL that applies them lives in infra/repos/quality.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from domain.errors import Conflict, NotFound, ValidationFailed

# Duplicate criteria, each matched on a keyed blind index of the normalised value (never by decrypting).
DUPLICATE_CRITERIA = ("email", "phone", "national_id", "name_dob")
# Customer fields the data-quality report may call "required" (missing = NULL, which works on ciphertext).
REPORTABLE_FIELDS = ("email", "phone", "birth_date", "address", "national_id", "locale", "external_ref")
CONSENT_CHANNELS = ("email", "sms", "phone")

# A merge fills the survivor's empty fields from the duplicate (the survivor's own values always win).
FILLABLE_FIELDS = ("email", "phone", "national_id", "birth_date", "address", "locale")

ERASED_NAME = "erased customer"
ERASED_TEXT = "[erased]"
# Values shorter than this are not searched for in free text when erasing (a country code, a house number
# would match unrelated rows); they are removed from the customer's own columns all the same.
MIN_NEEDLE = 4


def parse_names(value: str | Iterable[str], allowed: tuple[str, ...], setting: str) -> tuple[str, ...]:
    """A comma-separated list of names from ``allowed``, in the given order without repeats."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [i.strip().lower() for i in items if i.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"{setting}: unknown {', '.join(unknown)} (allowed: {', '.join(allowed)})")
    return tuple(dict.fromkeys(names))


def fields_to_fill(survivor: Mapping[str, Any], duplicate: Mapping[str, Any]) -> dict[str, Any]:
    """The duplicate's values for the fields the survivor lacks."""
    return {f: duplicate[f] for f in FILLABLE_FIELDS if survivor.get(f) is None and duplicate.get(f) is not None}


def check_merge(
    survivor_id: UUID,
    duplicate_id: UUID,
    survivor: Mapping[str, Any] | None,
    duplicate: Mapping[str, Any] | None,
    *,
    survivor_version: int | None = None,
    duplicate_version: int | None = None,
) -> None:
    """Refuse a merge that would be wrong; the rows are the locked, current ones (or None if missing)."""
    if survivor_id == duplicate_id:
        raise ValidationFailed("a customer cannot be merged into itself", field="duplicateId")
    for row, field in ((survivor, "survivorId"), (duplicate, "duplicateId")):
        if row is None or row.get("deleted_at") is not None:
            raise NotFound("no such customer", field=field)
        if row.get("merged_into_id") is not None:
            raise Conflict("this customer was merged already", field=field)
        if row.get("erased_at") is not None:
            raise Conflict("this customer was erased", field=field)
    assert survivor is not None
    assert duplicate is not None
    if survivor.get("partner_id") != duplicate.get("partner_id"):
        raise ValidationFailed("both customers must belong to the same partner", field="duplicateId")
    for row, expected, field in (
        (survivor, survivor_version, "expectedSurvivorVersion"),
        (duplicate, duplicate_version, "expectedDuplicateVersion"),
    ):
        if expected is not None and row.get("version") != expected:
            raise Conflict(f"the customer changed meanwhile (now at version {row.get('version')})", field=field)


def erasure_needles(row: Mapping[str, Any]) -> list[str]:
    """The customer's identifying values as text, to search for in free text and audit payloads."""
    values: list[str] = []
    for key in ("name", "email", "phone", "national_id", "external_ref"):
        v = row.get(key)
        if isinstance(v, str):
            values.append(v)
    birth = row.get("birth_date")
    if isinstance(birth, dt.date):
        values.append(birth.isoformat())
    address = row.get("address")
    if isinstance(address, Mapping):
        values += [str(address[k]) for k in ("line1", "line2") if address.get(k)]
    if row.get("name") == ERASED_NAME:
        values.remove(ERASED_NAME)
    return sorted({v.strip() for v in values if len(v.strip()) >= MIN_NEEDLE})
