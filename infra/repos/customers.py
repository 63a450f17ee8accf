"""Customers: reads with column lists chosen by the caller's grants, writes with optimistic locking."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn
from uuid import UUID

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from domain.errors import Conflict, DataIntegrity, NotFound
from infra import crypto
from infra.pagination import SortKey, apply_keyset
from infra.repos import scope as readable
from infra.repos.base import Executor, Page, Scope, escape_like, to_page
from infra.tables import customer_metrics, customers

c = customers
m = customer_metrics

# Columns every read carries (identity, scope, optimistic lock, timestamps).
BASE_COLUMNS = ("id", "partner_id", "version", "created_at", "updated_at")
# Columns the grant set decides on; the api layer passes the allowed subset.
DATA_COLUMNS = (
    "external_ref",
    "name",
    "email",
    "phone",
    "national_id",
    "birth_date",
    "address",
    "locale",
    "lifecycle_stage",
    "tier_code",
    "tier_since",
    "consent_email_at",
    "consent_sms_at",
    "consent_phone_at",
)

SORTS: dict[str, SortKey] = {
    "CREATED_AT": SortKey("CREATED_AT", c.c.created_at, c.c.id),
    "CREATED_AT_DESC": SortKey("CREATED_AT_DESC", c.c.created_at, c.c.id, descending=True),
    "UPDATED_AT_DESC": SortKey("UPDATED_AT_DESC", c.c.updated_at, c.c.id, descending=True),
    "NAME": SortKey("NAME", c.c.name, c.c.id),
    "SPEND_12M_DESC": SortKey("SPEND_12M_DESC", func.coalesce(m.c.spend_12m, 0), c.c.id, descending=True),
    "LIFETIME_SPEND_DESC": SortKey(
        "LIFETIME_SPEND_DESC", func.coalesce(m.c.lifetime_spend, 0), c.c.id, descending=True
    ),
}
SORTS_NEEDING_METRICS = {"SPEND_12M_DESC", "LIFETIME_SPEND_DESC"}


@dataclass(frozen=True)
class CustomerFilter:
    tiers: Sequence[str] | None = None
    lifecycle_stages: Sequence[str] | None = None
    name_contains: str | None = None
    email: str | None = None
    phone: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    min_spend_12m: Decimal | None = None
    partner_id: UUID | None = None

    @property
    def needs_metrics(self) -> bool:
        return self.min_spend_12m is not None


def _columns(columns: Sequence[str]) -> list[Any]:
    wanted = list(BASE_COLUMNS) + [name for name in DATA_COLUMNS if name in columns]
    return [c.c[name] for name in wanted]


def _live(stmt: Select[Any], scope: Scope) -> Select[Any]:
    return stmt.where(c.c.deleted_at.is_(None), c.c.merged_into_id.is_(None), readable.customers(scope))


def _filtered(stmt: Select[Any], f: CustomerFilter) -> Select[Any]:
    if f.tiers:
        stmt = stmt.where(c.c.tier_code.in_(list(f.tiers)))
    if f.lifecycle_stages:
        stmt = stmt.where(c.c.lifecycle_stage.in_(list(f.lifecycle_stages)))
    if f.name_contains:
        stmt = stmt.where(c.c.name.ilike(f"%{escape_like(f.name_contains)}%", escape="\\"))
    # Encrypted columns compare through their blind indexes (the values come normalised, like writes).
    if f.email is not None:
        stmt = stmt.where(c.c.email_bidx == crypto.current().blind_index("email", f.email))
    if f.phone is not None:
        stmt = stmt.where(c.c.phone_bidx == crypto.current().blind_index("phone", f.phone))
    if f.created_after is not None:
        stmt = stmt.where(c.c.created_at >= f.created_after)
    if f.created_before is not None:
        stmt = stmt.where(c.c.created_at < f.created_before)
    if f.min_spend_12m is not None:
        stmt = stmt.where(func.coalesce(m.c.spend_12m, 0) >= f.min_spend_12m)
    if f.partner_id is not None:
        stmt = stmt.where(c.c.partner_id == f.partner_id)
    return stmt


def _from(stmt: Select[Any], with_metrics: bool) -> Select[Any]:
    return stmt.select_from(c.outerjoin(m, m.c.customer_id == c.c.id) if with_metrics else c)


async def page(
    db: Executor,
    *,
    columns: Sequence[str],
    scope: Scope,
    f: CustomerFilter,
    sort: str,
    first: int,
    after: str | None,
) -> Page:
    key = SORTS[sort]
    stmt = _from(
        select(*_columns(columns), key.column.label("_sort")), sort in SORTS_NEEDING_METRICS or f.needs_metrics
    )
    stmt = apply_keyset(_filtered(_live(stmt, scope), f), key, first, after)
    return to_page((await db.execute(stmt)).all(), first)


async def count(db: Executor, *, scope: Scope, f: CustomerFilter) -> int:
    stmt = _from(select(func.count()), f.needs_metrics)
    return int((await db.execute(_filtered(_live(stmt, scope), f))).scalar_one())


async def by_ids(
    db: Executor, ids: Sequence[UUID], *, columns: Sequence[str], scope: Scope
) -> dict[UUID, dict[str, Any]]:
    stmt = _live(select(*_columns(columns)).where(c.c.id.in_(list(ids))), scope)
    return {r.id: dict(r._mapping) for r in (await db.execute(stmt)).all()}


async def metrics_by_ids(
    db: Executor, ids: Sequence[UUID], *, with_lifetime_spend: bool = True
) -> dict[UUID, dict[str, Any]]:
    """Metrics rows; ``lifetime_spend`` (sensitive) is selected only when the caller may see it."""
    cols = [col for col in m.c if with_lifetime_spend or col.key != "lifetime_spend"]
    stmt = (
        select(*cols, c.c.created_at.label("customer_created_at"))
        .join(c, c.c.id == m.c.customer_id)
        .where(m.c.customer_id.in_(list(ids)))
    )
    return {r.customer_id: dict(r._mapping) for r in (await db.execute(stmt)).all()}


async def create(db: Executor, values: dict[str, Any], *, scope: Scope) -> dict[str, Any]:
    """Insert a customer of the caller's own (its partner's, or none for staff) with an empty metrics row.
    Returns its id and version, or raises Conflict when
    the partner's external reference is taken (also by a customer another request created meanwhile:
    the insert waits for it, then does nothing)."""
    values = {**values, **crypto.current().customer_indexes({"name": None, "birth_date": None, **values})}
    customer_id = uuid.uuid4()  # made here: the encrypted values are bound to it (infra/crypto.py)
    values = crypto.bind_row(c, customer_id, values)
    row = (
        await db.execute(
            pg_insert(c)
            .values(**values, id=customer_id, partner_id=scope.partner_id)
            .on_conflict_do_nothing(
                index_elements=[c.c.partner_id, c.c.external_ref], index_where=c.c.external_ref.isnot(None)
            )
            .returning(c.c.id, c.c.version)
        )
    ).first()
    if row is None:
        raise Conflict("a customer with this external reference exists already", field="externalRef")
    await db.execute(pg_insert(m).values(customer_id=row.id).on_conflict_do_nothing())
    return {"id": row.id, "version": row.version}


async def update_fields(
    db: Executor, customer_id: UUID, expected_version: int, values: dict[str, Any], *, scope: Scope
) -> int:
    """Apply ``values`` if the row is still at ``expected_version``; returns the new version."""
    values = crypto.bind_row(c, customer_id, {**values, **await _indexes_for_update(db, customer_id, values)})
    stmt = (
        _live_update(customer_id, scope)
        .where(c.c.version == expected_version)
        .values(**values, version=c.c.version + 1, updated_at=func.now())
        .returning(c.c.version)
    )
    new_version = (await db.execute(stmt)).scalar_one_or_none()
    if new_version is None:
        await _raise_missing_or_stale(db, customer_id, scope)
    return int(new_version)


async def soft_delete(db: Executor, customer_id: UUID, expected_version: int, *, scope: Scope) -> None:
    stmt = (
        _live_update(customer_id, scope)
        .where(c.c.version == expected_version)
        .values(deleted_at=func.now(), version=c.c.version + 1, updated_at=func.now())
        .returning(c.c.id)
    )
    if (await db.execute(stmt)).first() is None:
        await _raise_missing_or_stale(db, customer_id, scope)


async def _indexes_for_update(db: Executor, customer_id: UUID, values: dict[str, Any]) -> dict[str, str | None]:
    """The blind indexes ``values`` change; name + birth date needs the other half from the row."""
    pair = {"name", "birth_date"}
    given = dict(values)
    if pair & set(values) and not pair <= set(values):
        missing = next(iter(pair - set(values)))
        row = (await db.execute(select(c.c[missing]).where(c.c.id == customer_id))).first()
        if row is not None:  # a missing row fails in the UPDATE itself
            if isinstance(row[0], DataIntegrity):  # its index cannot be recomputed from a value not served
                raise row[0]
            given[missing] = row[0]
    return crypto.current().customer_indexes(given)


def _live_update(customer_id: UUID, scope: Scope) -> Any:
    stmt = update(c).where(
        c.c.id == customer_id, c.c.deleted_at.is_(None), c.c.merged_into_id.is_(None), c.c.erased_at.is_(None)
    )  # erased customers take no new personal data
    return stmt.where(readable.customers(scope))


async def _raise_missing_or_stale(db: Executor, customer_id: UUID, scope: Scope) -> NoReturn:
    found = (await db.execute(_live(select(c.c.version).where(c.c.id == customer_id), scope))).first()
    if found is None:
        raise NotFound("no such customer", field="id")
    raise Conflict(f"the customer changed meanwhile (now at version {found.version})", field="expectedVersion")


async def exists(db: Executor, customer_id: UUID, scope: Scope) -> bool:
    return (await db.execute(_live(select(c.c.id).where(c.c.id == customer_id), scope))).first() is not None


# What an identity check compares, and the blind index it compares through (birth date: name + birth date).
IDENTITY_INDEXES = {
    "email": "email_bidx",
    "phone": "phone_bidx",
    "national_id": "national_id_bidx",
    "birth_date": "name_dob_bidx",
}


async def matches_on_file(db: Executor, customer_id: UUID, scope: Scope, kind: str, value: Any) -> bool | None:
    """Whether the live customer's ``kind`` equals ``value`` (already normalised like a write): its
    blind index is computed and compared with the stored one in SQL, so nothing is decrypted and the
    stored value never leaves the database. ``None``: no such live customer in ``scope``."""
    column = c.c[IDENTITY_INDEXES[kind]]
    found = (
        await db.execute(_live(select(c.c.name).where(c.c.id == customer_id, c.c.erased_at.is_(None)), scope))
    ).first()
    if found is None:
        return None
    keyring = crypto.current()
    if kind == "birth_date":
        digest = keyring.blind_index("name_dob", crypto.name_dob_index_value(found.name, value))
    else:
        digest = keyring.blind_index(kind, str(value))
    same = select(func.coalesce(column == digest, False)).where(c.c.id == customer_id)
    return bool((await db.execute(same)).scalar_one())
