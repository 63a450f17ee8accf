"""Rules of the customer import (issue 16): which columns a file may have, how a header maps onto them, and
how one row becomes the values createCustomer would write — through the same normalisation and validation
(domain/customers.py ``normalize_customer``), so an imported customer is exactly a created one.

Every row needs an external reference (the import is idempotent on it: a row whose reference the owner
has already is not written again) and a name. Empty cells are absent values. Problems are reported per
row (its 1-based number in the data, the field, the message), all of them at once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain import customers as customer_rules
from domain.errors import Invalid, ValidationFailed

# The columns of an import, as named in a file (snake case) and in the API (camel case).
COLUMNS = (
    "external_ref",
    "name",
    "email",
    "phone",
    "national_id",
    "birth_date",
    "address_line1",
    "address_line2",
    "address_postal_code",
    "address_city",
    "address_country",
    "locale",
    "lifecycle_stage",
)
REQUIRED = ("external_ref", "name")
IGNORE = "-"  # a mapping target that drops a column of the file
_ADDRESS = {
    "address_line1": "line1",
    "address_line2": "line2",
    "address_postal_code": "postalCode",
    "address_city": "city",
    "address_country": "country",
}
# Usual names of the columns in exports of other systems (compared without case, spaces, '-', '_', '.').
ALIASES: dict[str, str] = {
    "externalref": "external_ref",
    "externalid": "external_ref",
    "ref": "external_ref",
    "customerref": "external_ref",
    "customerid": "external_ref",
    "fullname": "name",
    "customername": "name",
    "mail": "email",
    "emailaddress": "email",
    "telephone": "phone",
    "phonenumber": "phone",
    "mobile": "phone",
    "nationalid": "national_id",
    "birthdate": "birth_date",
    "dateofbirth": "birth_date",
    "dob": "birth_date",
    "street": "address_line1",
    "addressline1": "address_line1",
    "line1": "address_line1",
    "addressline2": "address_line2",
    "line2": "address_line2",
    "zip": "address_postal_code",
    "zipcode": "address_postal_code",
    "postcode": "address_postal_code",
    "postalcode": "address_postal_code",
    "addresspostalcode": "address_postal_code",
    "city": "address_city",
    "town": "address_city",
    "addresscity": "address_city",
    "country": "address_country",
    "countrycode": "address_country",
    "addresscountry": "address_country",
    "language": "locale",
    "lifecyclestage": "lifecycle_stage",
    "stage": "lifecycle_stage",
}
_FOLD = re.compile(r"[\s\-_.]+")


def _folded(name: str) -> str:
    return _FOLD.sub("", name.strip().casefold())


def column_for(name: str) -> str | None:
    """The import column a header name stands for (its own name in snake or camel case, or an alias)."""
    folded = _folded(name)
    for column in COLUMNS:
        if _folded(column) == folded:
            return column
    return ALIASES.get(folded)


def map_header(header: Sequence[str], mapping: Mapping[str, str] | None = None) -> dict[int, str]:
    """Position in the file -> import column, for a header row. ``mapping`` (file column -> import column, or
    ``-`` to drop it) overrides the names; every other column must be known. Raises ``Invalid`` listing every
    problem: unknown or doubled columns, a missing required one."""
    mapping = dict(mapping or {})
    errors: list[ValidationFailed] = []
    for source, target in mapping.items():
        if source not in header:
            errors.append(
                ValidationFailed(f"the mapping names column '{source}', which the file lacks", field="mapping")
            )
        if target != IGNORE and column_for(target) is None:
            errors.append(ValidationFailed(f"the mapping's target '{target}' is not an import column", field="mapping"))
    out: dict[int, str] = {}
    for position, name in enumerate(header):
        mapped = mapping.get(name)
        if mapped == IGNORE:
            continue
        column = column_for(mapped) if mapped is not None else column_for(name)
        if column is None:
            if mapped is None:
                errors.append(
                    ValidationFailed(
                        f"unknown column '{name}': map it to one of {', '.join(COLUMNS)} (or to '-' to skip it)",
                        field="header",
                    )
                )
            continue
        if column in out.values():
            errors.append(ValidationFailed(f"two columns of the file map to {column}", field="header"))
            continue
        out[position] = column
    missing = [c for c in REQUIRED if c not in out.values()]
    if missing:
        errors.append(ValidationFailed(f"the file needs the column(s) {', '.join(missing)}", field="header"))
    if errors:
        raise Invalid(errors)
    return out


@dataclass(frozen=True)
class RowProblem:
    row: int  # 1-based, in the data (the header is row 0)
    field: str
    message: str


def row_values(cells: Mapping[str, str | None]) -> tuple[dict[str, Any], list[ValidationFailed]]:
    """The fields of ``normalize_customer`` for one row's cells (import column -> text): empty cells are
    absent, a birth date is ISO 8601 (YYYY-MM-DD), address cells form the address."""
    fields: dict[str, Any] = {}
    errors: list[ValidationFailed] = []
    address: dict[str, str] = {}
    for column, raw in cells.items():
        value = (raw or "").strip()
        if not value:
            continue
        if column in _ADDRESS:
            address[_ADDRESS[column]] = value
        elif column == "birth_date":
            try:
                fields["birth_date"] = dt.date.fromisoformat(value)
            except ValueError:
                errors.append(ValidationFailed("a birth date is written YYYY-MM-DD", field="birth_date"))
        elif column == "lifecycle_stage":
            fields["lifecycle_stage"] = value.lower()
        elif column in COLUMNS:
            fields[column] = value
        else:
            errors.append(ValidationFailed(f"'{column}' is not an import column", field=column))
    if address:
        fields["address"] = address
    return fields, errors


def check_row(
    n: int, cells: Mapping[str, str | None], *, default_region: str, today: dt.date
) -> tuple[dict[str, Any] | None, list[RowProblem]]:
    """Row ``n`` as the normalised values createCustomer would write, or None and every problem found."""
    fields, errors = row_values(cells)
    if "external_ref" not in fields:
        errors.append(
            ValidationFailed("an external reference is required to import (the re-run key)", field="external_ref")
        )
    try:
        values = customer_rules.normalize_customer(fields, default_region=default_region, today=today, creating=True)
    except Invalid as exc:
        errors += exc.errors
        values = None
    except ValidationFailed as exc:
        errors.append(exc)
        values = None
    problems = [RowProblem(n, e.field or "row", e.message) for e in errors]
    return (values if not problems else None), problems


def repeated_refs(refs: Iterable[tuple[int, str]]) -> list[RowProblem]:
    """A reference given again further down the same file: the later rows are problems."""
    seen: dict[str, int] = {}
    problems = []
    for n, ref in refs:
        if ref in seen:
            problems.append(RowProblem(n, "external_ref", f"the external reference of row {seen[ref]} again"))
        else:
            seen[ref] = n
    return problems
