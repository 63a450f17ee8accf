"""GraphQL inputs of access administration: the audit log filter."""

from __future__ import annotations

import datetime as dt

import strawberry


@strawberry.input
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = strawberry.field(default=None, description="inclusive")
    until: dt.datetime | None = strawberry.field(default=None, description="exclusive")
