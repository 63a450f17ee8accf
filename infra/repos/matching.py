"""Likely duplicates of customers about to be written (issue 16): the duplicate warning of createCustomer and
of the import. Matches are live customers of the same owner (the same partner, or none for staff data:
the rule of the duplicate pairs, infra/repos/quality.py), found through the blind indexes (equality of the
normalised e-mail, phone, national id, or name + birth date) in one statement for any number of rows, and,
for one customer, a very similar name (pg_trgm similarity, the GIN trigram index) with the same birth date
(the few candidates' birth dates decrypted and compared here). Only the criteria the caller may use are
asked (``criteria``): nothing else is looked at.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Float, bindparam, cast, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import Integer, Text

from infra.repos import scope as readable
from infra.repos.base import Executor, Scope
from infra.tables import customers

c = customers
# criterion -> blind-index column (the criteria of customerDuplicates, domain/quality.py)
INDEXED = {"EMAIL": "email_bidx", "PHONE": "phone_bidx", "NATIONAL_ID": "national_id_bidx", "NAME_DOB": "name_dob_bidx"}
SIMILAR_NAME_DOB = "SIMILAR_NAME_DOB"
SIMILAR_NAME = 0.6  # pg_trgm similarity of two whole names, 0-1
MAX_CANDIDATES = 10  # per row


def _live() -> Any:
    return (c.c.deleted_at.is_(None), c.c.merged_into_id.is_(None), c.c.erased_at.is_(None))


async def by_blind_index(
    db: Executor, rows: Sequence[dict[str, Any]], *, scope: Scope, criteria: Collection[str]
) -> dict[int, dict[UUID, list[str]]]:
    """For each row (``n`` and its blind-index columns), the live customers of the owner matching it on the
    ``criteria``, each with the criteria it matches on."""
    used = [crit for crit in INDEXED if crit in criteria]
    if not rows or not used:
        return {}
    arrays = {"n": [int(r["n"]) for r in rows]} | {INDEXED[crit]: [r.get(INDEXED[crit]) for r in rows] for crit in used}
    columns = ", ".join(["n", *(INDEXED[crit] for crit in used)])
    unnest = ", ".join(
        f"CAST(:{name} AS {'integer' if name == 'n' else 'text'}[])"
        for name in ["n", *(INDEXED[crit] for crit in used)]
    )
    reasons = ", ".join(f"CASE WHEN c.{INDEXED[crit]} = v.{INDEXED[crit]} THEN '{crit}' END" for crit in used)
    matches = " OR ".join(f"c.{INDEXED[crit]} = v.{INDEXED[crit]}" for crit in used)
    owner = readable.owned_sql(scope, "c.partner_id")
    sql = (
        f"SELECT v.n, c.id, array_remove(ARRAY[{reasons}], NULL) AS reasons"
        f" FROM unnest({unnest}) AS v({columns})"
        f" JOIN customers c ON ({matches}) AND {owner}"
        " AND c.deleted_at IS NULL AND c.merged_into_id IS NULL AND c.erased_at IS NULL"
        " ORDER BY v.n, c.created_at, c.id"
    )
    stmt = text(sql).bindparams(
        bindparam("n", type_=ARRAY(Integer)),
        *(bindparam(INDEXED[crit], type_=ARRAY(Text)) for crit in used),
    )
    params: dict[str, Any] = {**arrays, **readable.params(scope)}
    out: dict[int, dict[UUID, list[str]]] = {}
    for row in (await db.execute(stmt, params)).all():
        per_row = out.setdefault(int(row.n), {})
        if len(per_row) < MAX_CANDIDATES:
            per_row[row.id] = list(row.reasons)
    return out


async def by_similar_name(db: Executor, name: str, birth_date: dt.date, *, scope: Scope) -> list[UUID]:
    """Live customers of the owner with a very similar name (pg_trgm similarity at least ``SIMILAR_NAME``)
    and the same birth date (decrypted here: a handful of candidates, never a scan)."""
    score = cast(func.tw_name_similarity(c.c.name, name), Float)
    stmt = (
        select(c.c.id, c.c.birth_date)
        .where(
            func.tw_names_close(c.c.name, name),  # pg_trgm's %, inlined: the trigram index; its 0.3 is below ours
            score >= SIMILAR_NAME,
            c.c.birth_date.isnot(None),
            readable.owned(scope, c.c.partner_id),
            *_live(),
        )
        .order_by(score.desc(), c.c.id)
        .limit(MAX_CANDIDATES * 5)
    )
    return [r.id for r in (await db.execute(stmt)).all() if r.birth_date == birth_date][:MAX_CANDIDATES]
