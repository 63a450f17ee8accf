"""The customer import's statements (issue 16): which external references an owner has already, and the
insert of many customers at once — each exactly as ``customers.create`` writes one (encrypted values bound
to their row, blind indexes, an empty metrics row), in multi-row statements of one chunk each."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from infra import crypto
from infra.repos.base import Executor, same_partner
from infra.tables import customer_metrics, customers, partners

c = customers
# Every column an import row may set (missing values are NULL; the lifecycle stage has its default).
_COLUMNS = (
    "external_ref",
    "name",
    "email",
    "phone",
    "national_id",
    "birth_date",
    "address",
    "locale",
    "lifecycle_stage",
    *crypto.BLIND_INDEX_COLUMNS,
)
# What a row is compared on when its reference exists already (plain or blind-indexed: nothing decrypted).
COMPARED = ("name", "locale", "lifecycle_stage", *crypto.BLIND_INDEX_COLUMNS)


async def existing(db: Executor, refs: Sequence[str], *, partner_id: UUID | None) -> dict[str, dict[str, Any]]:
    """The owner's customers (live or not: a reference is never reused) with these external references."""
    if not refs:
        return {}
    stmt = select(c.c.id, c.c.external_ref, *(c.c[name] for name in COMPARED)).where(
        same_partner(c.c.partner_id, partner_id), c.c.external_ref.in_(list(refs))
    )
    return {r.external_ref: dict(r._mapping) for r in (await db.execute(stmt)).all()}


def stored_form(values: dict[str, Any]) -> dict[str, Any]:
    """A row's values with their blind indexes and every column filled, as they are stored (unencrypted)."""
    full = {name: values.get(name) for name in _COLUMNS if name not in crypto.BLIND_INDEX_COLUMNS}
    full["lifecycle_stage"] = full["lifecycle_stage"] or "prospect"
    return {**full, **crypto.current().customer_indexes(full)}


async def insert_many(db: Executor, rows: Sequence[dict[str, Any]], *, partner_id: UUID | None) -> dict[str, UUID]:
    """Insert ``rows`` (``stored_form``) as one executemany (SQLAlchemy batches it into multi-row statements
    compiled once); a reference taken meanwhile by another request is skipped (``ON CONFLICT DO NOTHING``).
    Returns external reference -> new id for the rows inserted."""
    if not rows:
        return {}
    values = []
    for row in rows:
        customer_id = uuid.uuid4()  # made here: the encrypted values are bound to it (infra/crypto.py)
        values.append({**crypto.bind_row(c, customer_id, row), "id": customer_id, "partner_id": partner_id})
    stmt = (
        pg_insert(c)
        .on_conflict_do_nothing(
            index_elements=[c.c.partner_id, c.c.external_ref], index_where=c.c.external_ref.isnot(None)
        )
        .returning(c.c.id, c.c.external_ref)
    )
    created = {r.external_ref: r.id for r in (await db.execute(stmt, values)).all()}
    if created:
        await db.execute(
            pg_insert(customer_metrics).on_conflict_do_nothing(), [{"customer_id": i} for i in created.values()]
        )
    return created


async def partner_named(db: Executor, name: str) -> UUID | None:
    """The partner of this name (an import for a partner never creates one: a typo would)."""
    row = (await db.execute(select(partners.c.id).where(partners.c.name == name))).first()
    return row.id if row else None
