"""The after-change step: what follows any change to a customer's facts, in the caller's transaction.

A purchase, a refund, a complaint opened or moved on, a survey answer, a merge or an erasure changes the facts a
customer's metrics are computed from. Use-cases then call ``after_change`` once, with every customer
the change touched, before they commit:

1. metrics: recomputed from the source tables (``infra.metrics.recompute_for``, one statement);
2. tier: re-evaluated under the active policy (``infra.tiering.retier``, one statement), with a
   history row for every move or grace period;
3. churn: re-scored now (``infra.churn.refresh``, two statements), or, for bulk paths such as purchase
   ingest, queued as one job in the same transaction (``churn="defer"``, one statement).

Each step is set-based: the cost is the same for one customer or five hundred. Repositories never call
this (an import-linter contract forbids ``infra.repos`` to import it): they write facts; the use-case
that wrote them decides that the customer changed, and everything after it rolls back with the rest
when the unit of work is not committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from infra import churn, metrics, tiering
from infra.repos import imports

ChurnMode = Literal["now", "defer"]


@dataclass(frozen=True)
class AfterChange:
    customers: int  # distinct customers the step ran for
    tier_changes: int  # customers whose tier changed


async def after_change(
    conn: AsyncConnection,
    customer_ids: Sequence[UUID],
    *,
    actor: str,
    churn_mode: ChurnMode = "now",
    cause: str | None = None,
) -> AfterChange:
    """Metrics, then tier, then churn of ``customer_ids``, in the caller's transaction (see module doc).
    ``cause`` (``"refund"``) is said in the tier history and applies its hysteresis (``infra.tiering.CAUSES``)."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return AfterChange(0, 0)
    await metrics.recompute_for(conn, ids)
    moved = await tiering.retier(conn, ids, actor=actor, cause=cause)
    if churn_mode == "defer":
        await churn.defer_refresh(conn, ids)
    else:
        await churn.refresh(conn, ids)
    return AfterChange(len(ids), moved)


async def insert_staged(conn: AsyncConnection, *, actor: str) -> dict[str, UUID]:
    """The new customers staged by ``infra.repos.imports.stage``, inserted with this step folded into the
    insert: a new customer has no facts yet, so its metrics are the empty row and its tier the one
    ``retier`` places it in (``tiering.insert_staged``: each row written once, history and event as
    ``retier`` writes them); churn scoring is queued (one job). Returns external reference -> new id."""
    created = await tiering.insert_staged(
        conn, stage=imports.STAGE, metrics_stage=imports.METRICS_STAGE, columns=imports.STAGED, actor=actor
    )
    await churn.defer_refresh(conn, list(created.values()))
    return created
