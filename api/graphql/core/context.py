"""The typed request context: one database connection, the caller, its decisions and loaders."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from api.graphql.core.loaders import Loaders
from authz.policy import Decisions
from authz.principal import Principal
from infra.db import RequestDb
from infra.repos.base import Scope
from infra.settings import Settings

if TYPE_CHECKING:
    from api.edge.app import Services


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
    loaders: Loaders
    request_id: str
    # customer id -> guarded fields seen unmasked in this response (audited before it is sent)
    sensitive_reads: defaultdict[UUID, set[str]] = field(default_factory=lambda: defaultdict(set))
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        return self.principal.subject
