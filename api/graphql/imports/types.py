"""GraphQL types of the customer import's report."""

from __future__ import annotations

import strawberry

from api.graphql.core.relay import UserError
from api.graphql.customers.types import DuplicateCandidateType


@strawberry.type(name="ImportSummary")
class ImportSummaryType:
    rows: int
    valid: int
    invalid: int
    created: int
    existing: int = strawberry.field(description="rows whose externalRef was imported before: not written again")
    duplicates: int = strawberry.field(description="new rows that look like existing customers")
    written: bool


@strawberry.type(name="ImportRowProblem")
class ImportRowProblemType:
    row: int = strawberry.field(description="1-based position in rows")
    field: str
    message: str


@strawberry.type(name="ImportRowDuplicate")
class ImportRowDuplicateType:
    row: int
    candidates: list[DuplicateCandidateType]


@strawberry.type
class ImportCustomersPayload:
    summary: ImportSummaryType | None = None
    problems: list[ImportRowProblemType] = strawberry.field(default_factory=list)
    warnings: list[ImportRowProblemType] = strawberry.field(default_factory=list)
    duplicates: list[ImportRowDuplicateType] = strawberry.field(default_factory=list)
    user_errors: list[UserError] = strawberry.field(default_factory=list)
