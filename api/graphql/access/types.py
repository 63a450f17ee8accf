"""GraphQL types of access administration: roles, grants, partner tokens, the audit log, explainAccess."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.graphql.core.relay import ConnectionBase, Edge, UserError


@strawberry.enum
class AccessAction(Enum):
    READ = "read"
    READ_MASKED = "read_masked"
    READ_IF_CONSENTED = strawberry.enum_value(
        "read_if_consented",
        description="in full where the customer consented to contact on the field's channel, denied elsewhere",
    )
    WRITE = "write"


@strawberry.enum
class Effect(Enum):
    ALLOW = "allow"
    DENY = "deny"


@strawberry.type(name="AuditEntry")
class AuditEntryType:
    id: strawberry.ID
    at: dt.datetime
    actor: str
    action: str
    request_id: str | None
    target_type: str | None
    target_ids: list[str]
    fields: list[str]
    before: JSON | None
    after: JSON | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> AuditEntryType:
        return cls(
            id=strawberry.ID(str(r["id"])),
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            request_id=r["request_id"],
            target_type=r["target_type"],
            target_ids=list(r["target_ids"]),
            fields=list(r["fields"]),
            before=r["before"],
            after=r["after"],
        )


@strawberry.type(name="AuditEntryConnection")
class AuditEntryConnection(ConnectionBase):
    edges: list[Edge[AuditEntryType]]


@strawberry.type(name="Role")
class RoleType:
    name: str
    description: str
    inherits: list[str]
    grants: list[PolicyRuleType]


@strawberry.type(name="PolicyRule")
class PolicyRuleType:
    subject: str
    object: str
    action: str
    effect: str


@strawberry.type(name="ApiToken")
class ApiTokenType:
    id: strawberry.ID
    name: str
    partner_id: strawberry.ID
    role: str
    scopes: list[str]
    created_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None = strawberry.field(
        description="When the token last authenticated a request (kept to the minute: written at most once a minute)"
    )
    rate_limit_per_minute: int | None = strawberry.field(
        description="Cost points per minute (an operation costs its estimated cost); null: the partner default"
    )
    allow_arbitrary_documents: bool = strawberry.field(
        default=False,
        description="In trusted-documents mode, whether this token may send documents that are not registered",
    )

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> ApiTokenType:
        return cls(
            id=strawberry.ID(str(r["id"])),
            name=r["name"],
            partner_id=strawberry.ID(str(r["partner_id"])),
            role=r["role"],
            scopes=list(r["scopes"]),
            created_by=r["created_by"],
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            revoked_at=r["revoked_at"],
            last_used_at=r.get("last_used_at"),
            rate_limit_per_minute=r.get("rate_limit_per_minute"),
            allow_arbitrary_documents=bool(r.get("allow_arbitrary_documents")),
        )


@strawberry.type(name="AccessExplanation")
class AccessExplanationType:
    subject: str
    roles: list[str]
    field: str
    action: str
    allowed: bool
    decision: str | None = strawberry.field(description="FULL, CONSENTED, MASKED or DENIED (for read actions)")
    rules: list[str]
    reason: str
    policy_version: int


@strawberry.type(name="AccessMatrixRow")
class AccessMatrixRowType:
    field: str = strawberry.field(description="Type.field, as in grants and explainAccess")
    type_name: str
    field_name: str
    sensitivity: str = strawberry.field(description="public, internal or sensitive (the field catalogue)")
    decisions: list[str] = strawberry.field(
        description="FULL, CONSENTED, MASKED or DENIED for each role of AccessMatrix.roles, in that order"
    )
    consent_channel: str | None = strawberry.field(
        default=None,
        description="The channel (email, sms, phone) whose consent READ_IF_CONSENTED asks for; null: the field "
        "has none, and READ_IF_CONSENTED changes nothing on it",
    )


@strawberry.type(name="AccessMatrix")
class AccessMatrixType:
    roles: list[str]
    rows: list[AccessMatrixRowType]
    policy_version: int


@strawberry.type
class AdminPayload:
    ok: bool = False
    policy_version: int | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class CreatePartnerTokenPayload:
    token: str | None = strawberry.field(default=None, description="Shown once; only its hash is stored")
    api_token: ApiTokenType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class PartnerTokenPayload:
    api_token: ApiTokenType | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)
