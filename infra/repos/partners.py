"""Partners and their API tokens (stored only as a hash)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from infra.repos import scope as readable
from infra.repos.base import Executor, Scope
from infra.tables import api_tokens, partners


async def by_ids(db: Executor, ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    rows = (await db.execute(select(partners).where(partners.c.id.in_(list(ids))))).all()
    return {r.id: dict(r._mapping) for r in rows}


async def ensure(db: Executor, name: str) -> UUID:
    """The partner's id, created if new; safe when two requests create the same partner at once."""
    created: UUID | None = (
        await db.execute(
            pg_insert(partners)
            .values(name=name)
            .on_conflict_do_nothing(index_elements=["name"])
            .returning(partners.c.id)
        )
    ).scalar_one_or_none()
    if created is not None:
        return created
    found: UUID = (await db.execute(select(partners.c.id).where(partners.c.name == name))).scalar_one()
    return found


async def token(db: Executor, token_id: UUID) -> dict[str, Any] | None:
    row = (await db.execute(select(api_tokens).where(api_tokens.c.id == token_id))).first()
    return dict(row._mapping) if row else None


LAST_USE_RESOLUTION = dt.timedelta(minutes=1)


async def token_for_use(db: Executor, token_id: UUID, secret_hash: str) -> dict[str, Any] | None:
    """The token, as ``token`` reads it, in the one statement an authentication costs; the same statement
    notes the use (``last_used_at``) when the secret matches and the token is live, at most once a minute
    (an update per request would make every partner request a write). The row returned is as it was
    before that note."""
    t = api_tokens.c
    used = (
        update(api_tokens)
        .where(
            t.id == token_id,
            t.secret_hash == secret_hash,
            t.revoked_at.is_(None),
            or_(t.expires_at.is_(None), t.expires_at > func.now()),
            or_(t.last_used_at.is_(None), t.last_used_at < func.now() - LAST_USE_RESOLUTION),
        )
        .values(last_used_at=func.now())
        .returning(t.id)
        .cte("used")
    )
    stmt = select(api_tokens).where(t.id == token_id).add_cte(used)
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def create_token(db: Executor, values: dict[str, Any]) -> dict[str, Any]:
    row = (await db.execute(insert(api_tokens).values(**values).returning(api_tokens))).one()
    return dict(row._mapping)


async def revoke_token(db: Executor, token_id: UUID, *, scope: Scope) -> bool:
    stmt = (
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None), readable.api_tokens(scope))
        .values(revoked_at=func.now())
        .returning(api_tokens.c.id)
    )
    return (await db.execute(stmt)).first() is not None


async def list_tokens(db: Executor, *, scope: Scope) -> list[dict[str, Any]]:
    stmt = select(api_tokens).where(readable.api_tokens(scope)).order_by(api_tokens.c.created_at.desc())
    return [dict(r._mapping) for r in (await db.execute(stmt)).all()]


async def scoped_token(db: Executor, token_id: UUID, *, scope: Scope) -> dict[str, Any] | None:
    """A token the scope reaches (a partner's own), or None."""
    row = (await db.execute(select(api_tokens).where(api_tokens.c.id == token_id, readable.api_tokens(scope)))).first()
    return dict(row._mapping) if row else None


async def roles_of_live_tokens(db: Executor) -> set[str]:
    """The roles held by partner tokens that are not revoked."""
    stmt = select(api_tokens.c.role).where(api_tokens.c.revoked_at.is_(None)).distinct()
    return set((await db.execute(stmt)).scalars().all())


async def set_arbitrary_documents(db: Executor, token_id: UUID, allow: bool) -> dict[str, Any] | None:
    stmt = (
        update(api_tokens)
        .where(api_tokens.c.id == token_id)
        .values(allow_arbitrary_documents=allow)
        .returning(api_tokens)
    )
    row = (await db.execute(stmt)).first()
    return dict(row._mapping) if row else None
