"""Key rotation: re-encrypt every value not under the current key, online, in batches, resumably; and
the upgrade of version 1 tokens (bound to their column only) to version 2 (bound to their row as well).

A value is rewritten when it is under another key than the current one *or* a ``tw1`` token: it becomes a
``tw2`` token under the current key, bound to the row it is in (infra/crypto.py). A ``tw2`` token that
fails authentication for its row (tampered, or moved from another row) is not rewritten — that would make
a moved value valid where it lies — but left as it is, logged and counted (``unreadable``); a value under
a key no longer configured stops the run (add the old key back). A ``tw1`` token moved to another row
*before* the upgrade cannot be told apart (version 1 never bound the row): it is bound where it lies.

Each batch is one short transaction over at most ``batch_size`` rows of one table, walked in id order
(keyset). A value is replaced only if it is still the token that was read
(``UPDATE … FROM unnest(ids, old, new) WHERE t.col = old``): a concurrent write wins, and its value is
already under the current key of the instance that wrote it. Rows only take row locks, never a table
lock. Rotation is resumable and idempotent: a re-run selects only the values still under another key,
so nothing is done twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from infra import crypto

NOT_ENCRYPTED = "(not encrypted)"


def _columns_by_table() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in crypto.ENCRYPTED_COLUMNS:
        out.setdefault(table, []).append(column)
    return out


# Every encrypted table's id type (keyset by id).
_ID_TYPES = {
    "customers": "uuid",
    "complaints": "uuid",
    "complaint_events": "bigint",
    "survey_answers": "bigint",
    "webhook_endpoints": "uuid",
}
# Below every id of its type: where the keyset walk starts (``:after IS NULL OR id > :after`` became a
# filter in asyncpg's generic prepared plan after five batches, and every batch re-read the table from its
# start: ~1 s a batch at a million customers).
_FIRST: dict[str, Any] = {"uuid": uuid.UUID(int=0), "bigint": -(2**63)}


def _stale(column: str) -> str:
    """SQL: ``column`` holds a version 1 token, or a token under another key than :current."""
    return f"(left({column}, 4) = 'tw1:' OR (left({column}, 4) = 'tw2:' AND split_part({column}, ':', 2) <> :current))"


async def key_status(conn: AsyncConnection) -> dict[str, dict[str, int]]:
    """How many values of each encrypted column are under each key id (``(not encrypted)`` for others)."""
    out: dict[str, dict[str, int]] = {}
    for table, column in crypto.ENCRYPTED_COLUMNS:
        rows = await conn.execute(
            text(
                f"SELECT CASE WHEN left({column}, 4) IN ('tw1:', 'tw2:') THEN split_part({column}, ':', 2)"
                f" ELSE '{NOT_ENCRYPTED}' END AS key_id, count(*) AS n"
                f" FROM {table} WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 1"
            )
        )
        out[f"{table}.{column}"] = {r.key_id: int(r.n) for r in rows}
    return out


async def v1_status(conn: AsyncConnection) -> dict[str, int]:
    """How many version 1 tokens (bound to the column only) each encrypted column still holds."""
    out: dict[str, int] = {}
    for table, column in crypto.ENCRYPTED_COLUMNS:
        n = (await conn.execute(text(f"SELECT count(*) FROM {table} WHERE left({column}, 4) = 'tw1:'"))).scalar_one()
        out[f"{table}.{column}"] = int(n)
    return out


@dataclass
class RotationProgress:
    table: str
    rows_done: int  # rows of this table examined so far in this run
    rows_total: int  # rows of this table that needed rotation when the run started
    values_rotated: int  # across all tables, this run


@dataclass
class RotationReport:
    current_key_id: str
    values_rotated: dict[str, int] = field(default_factory=dict)  # "table.column" → values re-encrypted
    upgraded_v1: int = 0  # of the values rewritten, version 1 tokens now version 2
    skipped_concurrent: int = 0  # values changed by a concurrent write meanwhile (left as written)
    unreadable: int = 0  # tw2 values failing authentication for their row (left as they are, logged)
    batches: int = 0
    seconds: float = 0.0
    finished: bool = False  # every table walked to its end (stopped early by max_batches: False)

    @property
    def total(self) -> int:
        return sum(self.values_rotated.values())


async def _count_stale(engine: AsyncEngine, table: str, columns: list[str], current: str) -> int:
    async with engine.connect() as conn:
        where = " OR ".join(_stale(c) for c in columns)
        return int(
            (await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}"), {"current": current})).scalar_one()
        )


async def rotate(
    engine: AsyncEngine,
    *,
    keyring: crypto.Keyring | None = None,
    batch_size: int = 1000,
    max_batches: int | None = None,
    on_progress: Callable[[RotationProgress], None] | None = None,
) -> RotationReport:
    """Rewrite as ``tw2`` under the current key every value still under another key or of version 1 (see
    the module docstring)."""
    if batch_size < 1:
        raise ValueError("batch size must be positive")
    ring = keyring or crypto.current()
    current = ring.current_id
    report = RotationReport(current_key_id=current)
    started = time.perf_counter()
    for table, columns in _columns_by_table().items():
        id_type = _ID_TYPES[table]
        for column in columns:
            report.values_rotated.setdefault(f"{table}.{column}", 0)
        total = await _count_stale(engine, table, columns, current)
        done = 0
        if on_progress:
            on_progress(RotationProgress(table, done, total, report.total))
        select = text(
            f"SELECT id, {', '.join(columns)} FROM {table}"
            f" WHERE id > CAST(:after AS {id_type})"  # a plain keyset bound: an index condition in a generic plan
            f" AND ({' OR '.join(_stale(c) for c in columns)})"
            f" ORDER BY id LIMIT :n"
        )
        updates = {
            c: text(
                f"UPDATE {table} t SET {c} = v.new"
                f" FROM unnest(CAST(:ids AS {id_type}[]), CAST(:olds AS text[]), CAST(:news AS text[]))"
                f" AS v(id, old, new)"
                f" WHERE t.id = v.id AND t.{c} = v.old RETURNING t.id"
            )
            for c in columns
        }
        after: Any = _FIRST[id_type]
        while True:
            if max_batches is not None and report.batches >= max_batches:
                report.seconds = round(time.perf_counter() - started, 3)
                return report
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                rows = (await conn.execute(select, {"after": after, "n": batch_size, "current": current})).all()
                if not rows:
                    break
                for c in columns:
                    ids, olds, news = [], [], []
                    v1: set[Any] = set()
                    for r in rows:
                        token = getattr(r, c)
                        if token is None or not token.startswith(("tw1:", "tw2:")) or not ring.needs_rotation(token):
                            continue
                        try:
                            news.append(ring.reencrypt(token, f"{table}.{c}", r.id))
                        except crypto.TokenMismatch as error:
                            crypto.unreadable(f"{table}.{c}", str(r.id), error)  # logged; left as it is
                            report.unreadable += 1
                            continue
                        ids.append(r.id)
                        olds.append(token)
                        if token.startswith("tw1:"):
                            v1.add(r.id)
                    if ids:
                        result = await conn.execute(updates[c], {"ids": ids, "olds": olds, "news": news})
                        done_ids = {row[0] for row in result.all()}
                        report.values_rotated[f"{table}.{c}"] += len(done_ids)
                        report.skipped_concurrent += len(ids) - len(done_ids)
                        report.upgraded_v1 += len(done_ids & v1)
            after = rows[-1].id
            report.batches += 1
            done += len(rows)
            if on_progress:
                on_progress(RotationProgress(table, done, max(total, done), report.total))
    report.finished = True
    report.seconds = round(time.perf_counter() - started, 3)
    return report
