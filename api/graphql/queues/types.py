"""GraphQL types of the work queues: an entry of the churn queue, a hit of the name search. The customer of
each is a ``Customer`` read with the caller's columns and met by the same field guards as everywhere."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry

from api.graphql.core.relay import ConnectionBase, Edge
from api.graphql.customers.types import ChurnRiskType, CustomerType
from authz.policy import Decisions


@strawberry.type(name="ChurnQueueEntry", description="A customer at churn risk, with the signals that fired")
class ChurnQueueEntryType:
    customer: CustomerType | None
    churn_risk: ChurnRiskType | None
    last_contact_at: dt.datetime | None = strawberry.field(
        description="The latest of the last purchase, the last change of a complaint and the last survey answer"
    )

    @classmethod
    def from_row(cls, row: dict[str, Any], decisions: Decisions) -> ChurnQueueEntryType:
        churn = {name: row[f"churn_{name}"] for name in ("level", "score", "signals", "model_version", "computed_at")}
        return cls(
            customer=CustomerType.from_row(row),
            churn_risk=ChurnRiskType.from_row(churn, decisions),
            last_contact_at=row["last_contact_at"],
        )


@strawberry.type(name="ChurnQueueEdge")  # not ChurnQueueEntryEdge, the name Edge[ChurnQueueEntryType] would get
class ChurnQueueEdge(Edge[ChurnQueueEntryType]):
    pass


@strawberry.type(name="ChurnQueueConnection")
class ChurnQueueConnection(ConnectionBase):
    edges: list[ChurnQueueEdge]
    edge_type = ChurnQueueEdge


@strawberry.type(name="CustomerSearchHit", description="A customer whose name is close to the search, and how close")
class CustomerSearchHitType:
    customer: CustomerType
    score: float = strawberry.field(description="pg_trgm word similarity of the search and the name, 0 to 1")
