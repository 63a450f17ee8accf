"""row-bound tokens: encrypted values become ``tw2:`` tokens, bound to their row as well as their column.

- No schema change, and no data step on the way up: the application reads ``tw1`` and ``tw2`` tokens
  and writes only ``tw2``; the existing ``tw1`` tokens are upgraded online by ``tierwise keys rotate``
  (infra/keyrotation.py: batched, resumable; ``tierwise keys status`` shows how many are left).
- The downgrade rewrites every ``tw2`` token as a ``tw1`` token of the same plaintext under the current
  key (batches, keyset by id): the code before this revision, and migration 0007's downgrade, read only
  ``tw1``. A ``tw2`` token that fails authentication for its row (moved or altered) stops the downgrade.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from infra import crypto

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
COLUMNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "customers": ("uuid", ("email", "phone", "national_id", "birth_date", "address")),
    "complaints": ("uuid", ("description",)),
    "complaint_events": ("bigint", ("note",)),
    "survey_answers": ("bigint", ("text",)),
}
_FIRST: dict[str, Any] = {"uuid": uuid.UUID(int=0), "bigint": -(2**63)}


def upgrade() -> None:
    pass  # tw1 tokens are upgraded online: `tierwise keys rotate`


def downgrade() -> None:
    keyring = crypto.current()
    conn = op.get_bind()
    for table, (id_type, columns) in COLUMNS.items():
        any_v2 = " OR ".join(f"left({c}, 4) = 'tw2:'" for c in columns)
        select = sa.text(
            f"SELECT id, {', '.join(columns)} FROM {table}"
            f" WHERE id > CAST(:after AS {id_type}) AND ({any_v2}) ORDER BY id LIMIT :n"
        )
        update = sa.text(f"UPDATE {table} SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id")

        def unbound(token: str | None, column: str, row_id: Any, table: str = table) -> str | None:
            if token is None or not token.startswith("tw2:"):
                return token
            return keyring.encrypt(keyring.decrypt(token, f"{table}.{column}", row_id), f"{table}.{column}")

        after: Any = _FIRST[id_type]
        while rows := conn.execute(select, {"after": after, "n": BATCH}).all():
            conn.execute(update, [{"id": r.id, **{c: unbound(getattr(r, c), c, r.id) for c in columns}} for r in rows])
            after = rows[-1].id
