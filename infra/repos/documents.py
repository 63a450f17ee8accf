"""Trusted documents: registered GraphQL documents by the SHA-256 (hex) of their text. Every change
bumps ``trusted_document_state.version`` and notifies ``tierwise_documents`` when it commits, so
each instance reloads its in-memory copy (api/edge/documents.py) instead of asking per request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from infra.repos.base import Executor, dict_rows
from infra.tables import trusted_document_state, trusted_documents

DOCUMENTS_CHANNEL = "tierwise_documents"


async def version(db: Executor) -> int:
    stmt = select(trusted_document_state.c.version).where(trusted_document_state.c.id == 1)
    return int((await db.execute(stmt)).scalar_one())


async def load(db: Executor) -> tuple[int, dict[str, str]]:
    """(version, {hash: document}) of every registered document."""
    current = await version(db)
    rows = (await db.execute(select(trusted_documents.c.hash, trusted_documents.c.document))).all()
    return current, {r.hash: r.document for r in rows}


async def _bump(db: Executor) -> int:
    new = (
        await db.execute(
            update(trusted_document_state)
            .where(trusted_document_state.c.id == 1)
            .values(version=trusted_document_state.c.version + 1)
            .returning(trusted_document_state.c.version)
        )
    ).scalar_one()
    await db.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": DOCUMENTS_CHANNEL, "payload": str(new)})
    return int(new)


async def register(db: Executor, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Store documents (``hash``, ``document``, ``operation_names``, ``source``, ``registered_by``);
    those registered already are left as they are. Returns the hashes that are new."""
    if not rows:
        return []
    stmt = (
        pg_insert(trusted_documents)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["hash"])
        .returning(trusted_documents.c.hash)
    )
    added = list((await db.execute(stmt)).scalars())
    if added:
        await _bump(db)
    return added


async def remove(db: Executor, hashes: Sequence[str]) -> list[str]:
    """Remove documents by hash; returns the hashes that were registered."""
    t = trusted_documents
    stmt = delete(t).where(t.c.hash.in_(list(hashes))).returning(t.c.hash)
    removed = list((await db.execute(stmt)).scalars())
    if removed:
        await _bump(db)
    return removed


async def list_all(db: Executor) -> list[dict[str, Any]]:
    t = trusted_documents
    stmt = select(
        t.c.hash,
        t.c.operation_names,
        t.c.source,
        t.c.registered_by,
        t.c.registered_at,
        func.length(t.c.document).label("length"),
    ).order_by(t.c.registered_at, t.c.hash)
    return dict_rows(await db.execute(stmt))
