"""The typed request context: one database connection, the caller, its decisions and loaders."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from api.graphql.core.loaders import Loaders
from api.usecases.caller import Caller
from authz.policy import Decisions, PolicyStore
from authz.principal import Principal
from domain.tiers import PolicySpec
from infra.db import RequestDb
from infra.repos.base import Scope
from infra.settings import Settings


class Authz(Protocol):
    @property
    def store(self) -> PolicyStore: ...

    async def reload(self, *, if_newer_than: int | None = None) -> PolicyStore: ...


class Services(Protocol):
    """What resolvers use of the process-wide services (built by the edge: api/edge/app.py ``Services``),
    so GraphQL names no edge module. Read-only members: the edge's own types satisfy them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def authz(self) -> Authz: ...

    @property
    def jobs(self) -> Any:  # procrastinate.App: its task configuration (tiers' deferred re-tier)
        ...

    @property
    def limiter(self) -> Any:  # api.edge.ratelimit.RateLimiter | None: forgets a changed token's bucket
        ...

    @property
    def events(self) -> Any:  # infra.event_feed.EventFeed: the committed events, for subscriptions
        ...


@dataclass
class Operation:
    """The operation a request runs, as the edge logs and counts it (api/edge/app.py): set by the limits
    extension once the document is parsed (``type``: query, mutation or subscription; None for a document
    that does not parse) and priced (``cost``)."""

    name: str | None = None
    type: str | None = None
    cost: int | None = None


@dataclass
class ActivePolicy:
    """The active tier policy, read once per request: the explanations of a page of customers share it.
    ``forget`` after an activation in the same request."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: bool = False
    spec: PolicySpec | None = None

    def forget(self) -> None:
        self.loaded, self.spec = False, None


# A per-request loader of rows by customer id (None: the customer has none)
RowLoader = DataLoader[UUID, dict[str, Any] | None]


@dataclass
class Context:
    request: Request
    response: Response
    settings: Settings
    services: Services
    db: RequestDb
    principal: Principal
    decisions: Decisions
    scope: Scope
    request_id: str
    # customer id -> guarded fields seen unmasked in this response (audited before it is sent)
    sensitive_reads: defaultdict[UUID, set[str]] = field(default_factory=lambda: defaultdict(set))
    operation: Operation = field(default_factory=Operation)
    websocket: bool = False  # a subscription's connection (api/edge/app.py): only subscriptions run over it
    # per-request loaders and caches of the slices, made on first use
    churn_loader: RowLoader | None = None  # churn scores (api/graphql/customers)
    explanation_loader: RowLoader | None = None  # tier explanation inputs (api/graphql/tiers)
    active_policy: ActivePolicy = field(default_factory=ActivePolicy)
    # a WebSocket's connection_init payload (strawberry sets it): the bearer token of a subscription
    connection_params: dict[str, Any] | None = None
    _loaders: Loaders | None = field(default=None, init=False, repr=False)

    @property
    def loaders(self) -> Loaders:
        """The request's data loaders, made on first use (a compiled read uses none: sixteen loaders
        made for nothing were a measurable part of its cost), over the caller's current decisions."""
        if self._loaders is None:
            self._loaders = Loaders(self.db, self.decisions, self.scope)
        return self._loaders

    @loaders.setter
    def loaders(self, value: Loaders) -> None:
        self._loaders = value

    @property
    def actor(self) -> str:
        return self.principal.subject

    @property
    def caller(self) -> Caller:
        """The caller of the use-cases this request runs."""
        return Caller(
            actor=self.actor,
            principal=self.principal,
            scope=self.scope,
            request_id=self.request_id,
            decisions=self.decisions,
        )


def context_of(info: Info[Context, None]) -> Context:
    """The request context of a resolver's ``info``, typed (strawberry's ``Info.context`` is ``Any`` where
    the ``Info`` is not parameterised)."""
    return info.context
