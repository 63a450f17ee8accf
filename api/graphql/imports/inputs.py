"""GraphQL inputs of the customer import: rows of text cells, checked like a CSV file's."""

from __future__ import annotations

import strawberry


@strawberry.input(
    description="One customer to import, as text (a bad value is a problem of its row, not of the request); "
    "externalRef and name are required"
)
class ImportCustomerRowInput:
    external_ref: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    national_id: str | None = None
    birth_date: str | None = strawberry.field(default=None, description="YYYY-MM-DD")
    address_line1: str | None = None
    address_line2: str | None = None
    address_postal_code: str | None = None
    address_city: str | None = None
    address_country: str | None = None
    locale: str | None = None
    lifecycle_stage: str | None = None


@strawberry.input
class ImportCustomersInput:
    rows: list[ImportCustomerRowInput]
    dry_run: bool = strawberry.field(default=False, description="check and report only: nothing is written")
    all_or_nothing: bool = strawberry.field(
        default=True,
        description="true: one invalid row and nothing is written; false: the valid rows are written, the "
        "invalid ones reported and skipped",
    )
