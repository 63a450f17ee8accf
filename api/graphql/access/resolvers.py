"""Runtime administration over GraphQL (admin only, by grants like every operation): roles, grants,
assignments, partner tokens, the audit log and ``explainAccess``. Every change goes through
authz/admin.py, which audits it and notifies every instance."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import strawberry
from strawberry.types import Info

from api.graphql.access.inputs import AuditFilter
from api.graphql.access.types import (
    AccessAction,
    AccessExplanationType,
    AdminPayload,
    ApiTokenType,
    AuditEntryConnection,
    AuditEntryType,
    CreatePartnerTokenPayload,
    Effect,
    PartnerTokenPayload,
    PolicyRuleType,
    RoleType,
)
from api.graphql.core.context import Context
from api.graphql.core.errors import coded, user_errors
from api.graphql.core.relay import ConnectionBase
from api.usecases.access import new_partner_token
from authz import admin
from authz.catalogue import CATALOGUE
from authz.confinement import UNSCOPED_OPERATIONS
from authz.policy import Level
from domain.errors import DomainError, NotFound, ValidationFailed
from infra.repos import audit as audit_repo
from infra.repos import authz as authz_repo
from infra.repos import partners as partners_repo
from infra.repos import ratelimit as ratelimit_repo

P = TypeVar("P")


def _ctx(info: Info[Context, None]) -> Context:
    return info.context


MAX_RATE_LIMIT = 10_000_000


async def _admin_change(info: Info[Context, None], payload: type[P], fn: Callable[[Any], Awaitable[Any]]) -> P:
    ctx = _ctx(info)
    try:
        async with ctx.db.unit_of_work() as uow:
            result = await fn(uow.conn)
            uow.commit()
    except DomainError as exc:
        return payload(user_errors=user_errors(exc))  # type: ignore[call-arg]
    # This instance applies the change at once; the others follow the NOTIFY.
    await ctx.services.authz.reload()
    if isinstance(result, int):
        return payload(ok=True, policy_version=result)  # type: ignore[call-arg]
    return result  # type: ignore[no-any-return]


async def _roles_of_subject(info: Info[Context, None], subject: str) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    store = _ctx(info).services.authz.store
    kind, _, ident = subject.partition(":")
    if kind == "role":
        return (ident,), None
    if kind == "user":
        return store.roles_of(subject), None
    if kind == "token":
        try:
            row = await partners_repo.token(_ctx(info).db, UUID(ident))
        except ValueError:
            row = None
        if row is None:
            raise NotFound("no such token", field="subject")
        return (row["role"],), tuple(row["scopes"])
    raise ValidationFailed("subject is user:<id>, role:<name> or token:<id>", field="subject")


@strawberry.type
class AdminQuery:
    @strawberry.field(description="Why a subject may or may not do an action on a field: the decision and its rule")
    async def explain_access(
        self, info: Info[Context, None], subject: str, field: str, action: AccessAction = AccessAction.READ
    ) -> AccessExplanationType | None:
        if field not in CATALOGUE:
            raise coded(f"no field {field} in the catalogue", "BAD_USER_INPUT")
        try:
            roles, scopes = await _roles_of_subject(info, subject)
        except DomainError as exc:
            raise coded(exc.message, "NOT_FOUND" if exc.code == "NOT_FOUND" else "BAD_USER_INPUT") from None
        store = _ctx(info).services.authz.store
        allowed, rules, reason = store.explain(roles, scopes, field, action.value)
        if subject.startswith("token:") and field in UNSCOPED_OPERATIONS:
            allowed, reason = False, f"{field} has no partner scope: refused to partner tokens whatever their roles"
        decision = None
        if action is not AccessAction.WRITE:
            # a token subject is a partner principal: its decisions are confined like its requests
            decision = store.decisions_for(roles, scopes, confined=subject.startswith("token:")).read(field).value
            if decision != Level.DENIED.value and not allowed:
                reason += f"; the field is still {decision} through another action or a public classification"
        return AccessExplanationType(
            subject=subject,
            roles=list(roles),
            field=field,
            action=action.value,
            allowed=allowed,
            decision=decision,
            rules=rules,
            reason=reason,
            policy_version=store.version,
        )

    @strawberry.field
    async def audit_log(
        self, info: Info[Context, None], first: int = 20, after: str | None = None, filter: AuditFilter | None = None
    ) -> AuditEntryConnection | None:  # type: ignore[valid-type]
        ctx = _ctx(info)
        if not 1 <= first <= ctx.settings.max_page_size:
            raise coded(f"first must be between 1 and {ctx.settings.max_page_size}", "BAD_USER_INPUT")
        f = filter or AuditFilter()
        af = audit_repo.AuditFilter(actor=f.actor, action=f.action, target_id=f.target_id, since=f.since)
        try:
            page = await audit_repo.page(ctx.db, f=af, first=first, after=after, scope=ctx.scope)
        except DomainError as exc:
            raise coded(exc.message, "BAD_USER_INPUT") from None
        conn: ConnectionBase = AuditEntryConnection.from_page(
            page, "AT_DESC", "at", AuditEntryType.from_row, lambda: audit_repo.count(ctx.db, f=af, scope=ctx.scope)
        )
        return conn

    @strawberry.field
    async def roles(self, info: Info[Context, None]) -> list[RoleType] | None:
        store = _ctx(info).services.authz.store
        out = []
        for role in await admin.list_roles(_ctx(info).db):
            sub = f"role:{role['name']}"
            grants = [
                PolicyRuleType(subject=r.values[0], object=r.values[1], action=r.values[2], effect=r.values[3])
                for r in store.rules
                if r.ptype == "p" and r.values[0] == sub
            ]
            inherits = [r.values[1].removeprefix("role:") for r in store.rules if r.ptype == "g" and r.values[0] == sub]
            out.append(RoleType(name=role["name"], description=role["description"], inherits=inherits, grants=grants))
        return out

    @strawberry.field(description="Every rule of the current policy: grants (p) and role assignments (g)")
    def policies(self, info: Info[Context, None]) -> list[PolicyRuleType] | None:
        store = _ctx(info).services.authz.store
        return [
            PolicyRuleType(
                subject=r.values[0],
                object=r.values[1],
                action=r.values[2] if r.ptype == "p" else "member",
                effect=r.values[3] if r.ptype == "p" else "allow",
            )
            for r in store.rules
        ]

    @strawberry.field
    async def api_tokens(self, info: Info[Context, None]) -> list[ApiTokenType] | None:
        ctx = _ctx(info)
        return [ApiTokenType.from_row(r) for r in await partners_repo.list_tokens(ctx.db, scope=ctx.scope)]


@strawberry.type
class AdminMutation:
    @strawberry.mutation
    async def create_role(
        self, info: Info[Context, None], name: str, description: str = "", inherits: str | None = None
    ) -> AdminPayload | None:
        actor = _ctx(info).actor
        return await _admin_change(
            info, AdminPayload, lambda db: admin.create_role(db, name, description, actor=actor, inherits=inherits)
        )

    @strawberry.mutation
    async def delete_role(self, info: Info[Context, None], name: str) -> AdminPayload | None:
        actor = _ctx(info).actor
        return await _admin_change(info, AdminPayload, lambda db: admin.delete_role(db, name, actor=actor))

    @strawberry.mutation(description="Grant (or, with effect DENY, explicitly deny) an action on Type.field to a role")
    async def grant_access(
        self, info: Info[Context, None], role: str, object: str, action: AccessAction, effect: Effect = Effect.ALLOW
    ) -> AdminPayload | None:
        actor = _ctx(info).actor
        return await _admin_change(
            info, AdminPayload, lambda db: admin.grant(db, role, object, action.value, actor=actor, effect=effect.value)
        )

    @strawberry.mutation
    async def revoke_access(
        self, info: Info[Context, None], role: str, object: str, action: AccessAction, effect: Effect = Effect.ALLOW
    ) -> AdminPayload | None:
        actor = _ctx(info).actor
        return await _admin_change(
            info,
            AdminPayload,
            lambda db: admin.revoke(db, role, object, action.value, actor=actor, effect=effect.value),
        )

    @strawberry.mutation
    async def assign_role(self, info: Info[Context, None], user: str, role: str) -> AdminPayload | None:
        actor = _ctx(info).actor
        return await _admin_change(info, AdminPayload, lambda db: admin.assign_role(db, user, role, actor=actor))

    @strawberry.mutation
    async def unassign_role(self, info: Info[Context, None], user: str, role: str) -> AdminPayload | None:
        actor = _ctx(info).actor
        return await _admin_change(info, AdminPayload, lambda db: admin.unassign_role(db, user, role, actor=actor))

    @strawberry.mutation(description="A partner API token; the token is in the payload once and never again")
    async def create_partner_token(
        self,
        info: Info[Context, None],
        partner: str,
        name: str,
        scopes: list[str] | None = None,
        role: str = "partner",
        expires_at: dt.datetime | None = None,
        allow_arbitrary_documents: Annotated[
            bool,
            strawberry.argument(description="In trusted-documents mode, let this token send unregistered documents"),
        ] = False,
    ) -> CreatePartnerTokenPayload | None:
        actor = _ctx(info).actor
        token_id, token, token_hash = new_partner_token()

        async def run(db: Any) -> CreatePartnerTokenPayload:
            if not partner.strip() or not name.strip():
                raise ValidationFailed("partner and name are required", field="partner")
            row = await admin.create_partner_token(
                db,
                partner_name=partner.strip(),
                name=name.strip(),
                scopes=scopes or ["read:*", "write:*"],
                role=role,
                actor=actor,
                token_id=token_id,
                token_hash=token_hash,
                expires_at=expires_at,
                creator=_ctx(info).principal,
                allow_arbitrary_documents=allow_arbitrary_documents,
            )
            return CreatePartnerTokenPayload(token=token, api_token=ApiTokenType.from_row(row))

        return await _admin_change(info, CreatePartnerTokenPayload, run)

    @strawberry.mutation
    async def revoke_partner_token(self, info: Info[Context, None], id: strawberry.ID) -> AdminPayload | None:
        actor = _ctx(info).actor

        async def run(db: Any) -> AdminPayload:
            try:
                token_id = UUID(str(id))
            except ValueError:
                raise NotFound("no such active token", field="id") from None
            await admin.revoke_partner_token(db, token_id, actor=actor, scope=_ctx(info).scope)
            return AdminPayload(ok=True)

        return await _admin_change(info, AdminPayload, run)

    @strawberry.mutation(
        description="Set a partner token's rate limit in cost points per minute (null: back to the default); "
        "every instance applies it to the token's next operation"
    )
    async def set_partner_token_rate_limit(
        self, info: Info[Context, None], id: strawberry.ID, per_minute: int | None = None
    ) -> PartnerTokenPayload | None:
        ctx = _ctx(info)

        async def run(db: Any) -> PartnerTokenPayload:
            try:
                token_id = UUID(str(id))
            except ValueError:
                raise NotFound("no such token", field="id") from None
            if per_minute is not None and not 1 <= per_minute <= MAX_RATE_LIMIT:
                raise ValidationFailed(f"perMinute is between 1 and {MAX_RATE_LIMIT}, or null", field="perMinute")
            before = await partners_repo.token(db, token_id)
            row = await ratelimit_repo.set_token_limit(db, token_id, per_minute)
            if before is None or row is None:
                raise NotFound("no such token", field="id")
            await authz_repo.write_audit(
                db,
                actor=ctx.actor,
                action="token.rate_limit",
                request_id=ctx.request_id,
                target_type="ApiToken",
                target_ids=[str(token_id)],
                fields=["rateLimitPerMinute"],
                before={"rateLimitPerMinute": before["rate_limit_per_minute"]},
                after={"rateLimitPerMinute": per_minute},
            )
            return PartnerTokenPayload(api_token=ApiTokenType.from_row(row))

        try:
            async with ctx.db.unit_of_work() as uow:
                payload = await run(uow.conn)
                uow.commit()
        except DomainError as exc:
            return PartnerTokenPayload(user_errors=user_errors(exc))
        limiter = ctx.services.limiter
        if limiter is not None and payload.api_token is not None:
            limiter.forget(f"token:{payload.api_token.id}")
        return payload

    @strawberry.mutation(
        description="Whether a partner token may send documents that are not registered (trusted-documents "
        "mode); in force from the token's next request"
    )
    async def set_partner_token_arbitrary_documents(
        self, info: Info[Context, None], id: strawberry.ID, allow: bool
    ) -> PartnerTokenPayload | None:
        ctx = _ctx(info)

        async def run(db: Any) -> PartnerTokenPayload:
            try:
                token_id = UUID(str(id))
            except ValueError:
                raise NotFound("no such token", field="id") from None
            row = await admin.set_partner_token_arbitrary_documents(
                db, token_id, allow, actor=ctx.actor, request_id=ctx.request_id
            )
            return PartnerTokenPayload(api_token=ApiTokenType.from_row(row))

        return await _admin_change(info, PartnerTokenPayload, run)
