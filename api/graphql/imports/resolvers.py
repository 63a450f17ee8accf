"""Thin resolver of the customer import: rows in, the use-case (api/usecases/imports.py), the report out."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context
from api.graphql.core.resolving import mutate
from api.graphql.customers.types import DuplicateCandidateType
from api.graphql.imports.inputs import ImportCustomersInput
from api.graphql.imports.types import (
    ImportCustomersPayload,
    ImportRowDuplicateType,
    ImportRowProblemType,
    ImportSummaryType,
)
from api.usecases import duplicates, imports
from domain import imports as import_rules
from domain.errors import ValidationFailed

# import column (and problem field) -> the name of the row input's field
_CAMEL = {c: "".join(w if i == 0 else w.title() for i, w in enumerate(c.split("_"))) for c in import_rules.COLUMNS}
_CAMEL |= {f"address.{k}": f"address{k[0].upper()}{k[1:]}" for k in ("line1", "line2", "postalCode", "city", "country")}
_CAMEL |= {"address": "address", "row": "row"}


def _problems(items: list[import_rules.RowProblem]) -> list[ImportRowProblemType]:
    return [ImportRowProblemType(row=p.row, field=_CAMEL.get(p.field, p.field), message=p.message) for p in items]


@strawberry.type
class ImportMutation:
    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Import existing customers (at most TIERWISE_MAX_BATCH_SIZE rows a call): each row checked like "
        "createCustomer, idempotent on externalRef, likely duplicates reported; all or nothing unless told"
    )
    async def import_customers(
        self, info: Info[Context, None], input: ImportCustomersInput
    ) -> ImportCustomersPayload | None:
        ctx = info.context

        async def run() -> ImportCustomersPayload:
            if len(input.rows) > ctx.settings.max_batch_size:
                raise ValidationFailed(f"at most {ctx.settings.max_batch_size} rows per call", field="rows")
            rows: list[dict[str, Any]] = [
                {column: getattr(row, column) for column in import_rules.COLUMNS} for row in input.rows
            ]
            cmd = imports.ImportCustomers(
                rows=rows,
                dry_run=input.dry_run,
                all_or_nothing=input.all_or_nothing,
                default_region=ctx.settings.default_phone_region,
            )
            report = await imports.import_customers(
                ctx.db,
                ctx.caller,
                cmd,
                criteria=duplicates.allowed_criteria(ctx.decisions.read) - {"SIMILAR_NAME_DOB"},
                can_write=ctx.decisions.can_write,
            )
            return ImportCustomersPayload(
                summary=ImportSummaryType(
                    rows=report.rows,
                    valid=report.valid,
                    invalid=report.invalid,
                    created=report.created,
                    existing=report.existing,
                    duplicates=len(report.duplicates),
                    written=report.written,
                ),
                problems=_problems(report.problems),
                warnings=_problems(report.warnings),
                duplicates=[
                    ImportRowDuplicateType(
                        row=d.row,
                        candidates=[DuplicateCandidateType.of(cid, why) for cid, why in d.candidates.items()],
                    )
                    for d in report.duplicates
                ],
            )

        return await mutate(ImportCustomersPayload, run)
