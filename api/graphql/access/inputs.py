"""GraphQL inputs of access administration: the audit log filter."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.types import Info

from api.graphql.core.context import Context


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


@strawberry.input
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = strawberry.field(default=None, description="inclusive")
    until: dt.datetime | None = strawberry.field(default=None, description="exclusive")
