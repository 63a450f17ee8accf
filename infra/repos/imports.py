"""The customer import's statements (issue 16): which external references an owner has already, and the
staging of many new customers at once — each as ``customers.create`` writes one (encrypted values bound to
their row, blind indexes, an empty metrics row) — by ``COPY`` into temporary tables, from which
``infra.tiering.insert_staged`` inserts them already placed in their tier."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from infra import crypto
from infra.repos import scope as readable
from infra.repos.base import Executor, Scope
from infra.tables import customers, partners

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


async def existing(db: Executor, refs: Sequence[str], *, scope: Scope) -> dict[str, dict[str, Any]]:
    """The owner's customers (live or not: a reference is never reused) with these external references."""
    if not refs:
        return {}
    stmt = select(c.c.id, c.c.external_ref, *(c.c[name] for name in COMPARED)).where(
        readable.owned(scope, c.c.partner_id), c.c.external_ref.in_(list(refs))
    )
    return {r.external_ref: dict(r._mapping) for r in (await db.execute(stmt)).all()}


def stored_form(values: dict[str, Any]) -> dict[str, Any]:
    """A row's values with their blind indexes and every column filled, as they are stored (unencrypted)."""
    full = {name: values.get(name) for name in _COLUMNS if name not in crypto.BLIND_INDEX_COLUMNS}
    full["lifecycle_stage"] = full["lifecycle_stage"] or "prospect"
    return {**full, **crypto.current().customer_indexes(full)}


# The session's staging tables of the write (temporary: dropped at commit, gone with a rollback).
STAGE = "tierwise_import_customers"
METRICS_STAGE = "tierwise_import_metrics"
STAGED = ("id", "partner_id", *_COLUMNS)  # what is copied into STAGE (and from it into customers)
_SEALED: dict[str, crypto.EncryptedText] = {
    name: kind for name in _COLUMNS if isinstance(kind := c.c[name].type, crypto.EncryptedText)
}


def _record(row: dict[str, Any], customer_id: UUID, partner_id: UUID | None) -> tuple[Any, ...]:
    """One row of STAGE: encrypted values bound to ``customer_id`` by their column types, as every write."""
    values = {**row, "id": customer_id, "partner_id": partner_id}
    for name, kind in _SEALED.items():
        if values[name] is not None:
            values[name] = kind.process_bind_param(crypto.ForRow(customer_id, values[name]), None)
    return tuple(values[name] for name in STAGED)


async def stage(conn: AsyncConnection, rows: Sequence[dict[str, Any]], *, scope: Scope) -> None:
    """Put ``rows`` (``stored_form``), each with a new id and its values encrypted, into the staging tables
    (emptied first), by one binary ``COPY``: no statement with thousands of parameters to build, send and
    plan. Each staged customer gets an empty metrics row in METRICS_STAGE (the column defaults, as
    ``customers.create`` inserts). ``tiering.insert_staged`` writes them into ``customers``."""
    await conn.execute(
        text(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE customers INCLUDING DEFAULTS) ON COMMIT DROP")
    )
    await conn.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {METRICS_STAGE} (LIKE customer_metrics INCLUDING DEFAULTS) ON COMMIT DROP"
        )
    )
    await conn.execute(text(f"TRUNCATE {STAGE}, {METRICS_STAGE}"))
    records = [_record(row, uuid.uuid4(), scope.partner_id) for row in rows]  # the caller's own
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    await raw.copy_records_to_table(STAGE, records=records, columns=list(STAGED))
    await conn.execute(text(f"INSERT INTO {METRICS_STAGE} (customer_id) SELECT id FROM {STAGE}"))


async def partner_named(db: Executor, name: str) -> UUID | None:
    """The partner of this name (an import for a partner never creates one: a typo would)."""
    row = (await db.execute(select(partners.c.id).where(partners.c.name == name))).first()
    return row.id if row else None
