"""Runtime administration over GraphQL (admin only, by grants like every operation): roles, grants,
assignments, partner tokens, the audit log and ``explainAccess``. The resolvers map arguments to the
use-cases of api/usecases/access.py and their results to GraphQL types; every change runs in one unit of
work, then this instance reloads the policy (the others follow the NOTIFY)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import strawberry
from strawberry.types import Info

from api.graphql.access.inputs import AuditFilter
from api.graphql.access.types import (
    AccessAction,
    AccessExplanationType,
    AccessMatrixRowType,
    AccessMatrixType,
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
from api.graphql.core.context import Context, context_of
from api.graphql.core.errors import coded, user_errors
from api.usecases import access
from api.usecases.caller import Caller
from domain.errors import DomainError
from infra.repos import audit as audit_repo
from infra.repos.base import Executor

P = TypeVar("P")


def _caller(info: Info[Context, None]) -> Caller:
    ctx = context_of(info)
    return ctx.caller


def _rule(r: access.PolicyRule) -> PolicyRuleType:
    return PolicyRuleType(subject=r.subject, object=r.object, action=r.action, effect=r.effect)


async def _admin_change(
    info: Info[Context, None], payload: Callable[..., P], fn: Callable[[Executor], Awaitable[int | P]]
) -> P:
    """Run one change in a unit of work; a domain error becomes the payload's userErrors. ``fn`` returns
    the policy version (an ``ok`` payload) or the payload itself."""
    ctx = context_of(info)
    try:
        async with ctx.db.unit_of_work() as uow:
            result = await fn(uow.conn)
            uow.commit()
    except DomainError as exc:
        return payload(user_errors=user_errors(exc))
    # This instance applies the change at once; the others follow the NOTIFY.
    await ctx.services.authz.reload()
    if isinstance(result, int):
        return payload(ok=True, policy_version=result)
    return result


@strawberry.type
class AdminQuery:
    @strawberry.field(description="Why a subject may or may not do an action on a field: the decision and its rule")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def explain_access(
        self, info: Info[Context, None], subject: str, field: str, action: AccessAction = AccessAction.READ
    ) -> AccessExplanationType | None:
        ctx = context_of(info)
        try:
            e = await access.explain_access(ctx.db, ctx.services.authz.store, subject, field, action.value)
        except DomainError as exc:
            raise coded(exc.message, "NOT_FOUND" if exc.code == "NOT_FOUND" else "BAD_USER_INPUT") from None
        return AccessExplanationType(
            subject=e.subject,
            roles=e.roles,
            field=e.field,
            action=e.action,
            allowed=e.allowed,
            decision=e.decision,
            rules=e.rules,
            reason=e.reason,
            policy_version=e.policy_version,
        )

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="The read decision of every role on every field of the catalogue, after inheritance and "
        "deny-overrides (the role x field matrix of the console)"
    )
    async def access_matrix(self, info: Info[Context, None]) -> AccessMatrixType | None:
        ctx = context_of(info)
        m = await access.access_matrix(ctx.db, ctx.services.authz.store)
        return AccessMatrixType(
            roles=m.roles,
            rows=[
                AccessMatrixRowType(
                    field=r.field,
                    type_name=r.type_name,
                    field_name=r.field_name,
                    sensitivity=r.sensitivity,
                    decisions=r.decisions,
                    consent_channel=r.consent_channel,
                )
                for r in m.rows
            ],
            policy_version=m.policy_version,
        )

    @strawberry.field
    async def audit_log(
        self, info: Info[Context, None], first: int = 20, after: str | None = None, filter: AuditFilter | None = None
    ) -> AuditEntryConnection | None:
        ctx = context_of(info)
        f = filter or AuditFilter()
        query = access.AuditQuery(
            first=first,
            after=after,
            filter=audit_repo.AuditFilter(
                actor=f.actor, action=f.action, target_id=f.target_id, since=f.since, until=f.until
            ),
        )
        try:
            result = await access.audit_page(ctx.db, _caller(info), query, max_page_size=ctx.settings.max_page_size)
        except DomainError as exc:
            raise coded(exc.message, "BAD_USER_INPUT") from None
        return AuditEntryConnection.from_page(result.page, "AT_DESC", "at", AuditEntryType.from_row, result.count)

    @strawberry.field
    async def roles(self, info: Info[Context, None]) -> list[RoleType] | None:
        ctx = context_of(info)
        return [
            RoleType(
                name=role.name,
                description=role.description,
                inherits=role.inherits,
                grants=[_rule(r) for r in role.grants],
            )
            for role in await access.list_roles(ctx.db, ctx.services.authz.store)
        ]

    @strawberry.field(description="Every rule of the current policy: grants (p) and role assignments (g)")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    def policies(self, info: Info[Context, None]) -> list[PolicyRuleType] | None:
        return [_rule(r) for r in access.policy_rules(context_of(info).services.authz.store)]

    @strawberry.field
    async def api_tokens(self, info: Info[Context, None]) -> list[ApiTokenType] | None:
        return [ApiTokenType.from_row(r) for r in await access.list_partner_tokens(context_of(info).db, _caller(info))]


@strawberry.type
class AdminMutation:
    @strawberry.mutation
    async def create_role(
        self, info: Info[Context, None], name: str, description: str = "", inherits: str | None = None
    ) -> AdminPayload | None:
        caller = _caller(info)
        return await _admin_change(
            info, AdminPayload, lambda db: access.create_role(db, caller, name, description, inherits)
        )

    @strawberry.mutation
    async def delete_role(self, info: Info[Context, None], name: str) -> AdminPayload | None:
        caller = _caller(info)
        return await _admin_change(info, AdminPayload, lambda db: access.delete_role(db, caller, name))

    @strawberry.mutation(description="Grant (or, with effect DENY, explicitly deny) an action on Type.field to a role")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
    async def grant_access(
        self, info: Info[Context, None], role: str, object: str, action: AccessAction, effect: Effect = Effect.ALLOW
    ) -> AdminPayload | None:
        caller = _caller(info)
        return await _admin_change(
            info, AdminPayload, lambda db: access.grant(db, caller, role, object, action.value, effect.value)
        )

    @strawberry.mutation
    async def revoke_access(
        self, info: Info[Context, None], role: str, object: str, action: AccessAction, effect: Effect = Effect.ALLOW
    ) -> AdminPayload | None:
        caller = _caller(info)
        return await _admin_change(
            info, AdminPayload, lambda db: access.revoke(db, caller, role, object, action.value, effect.value)
        )

    @strawberry.mutation
    async def assign_role(self, info: Info[Context, None], user: str, role: str) -> AdminPayload | None:
        caller = _caller(info)
        return await _admin_change(info, AdminPayload, lambda db: access.assign_role(db, caller, user, role))

    @strawberry.mutation
    async def unassign_role(self, info: Info[Context, None], user: str, role: str) -> AdminPayload | None:
        caller = _caller(info)
        return await _admin_change(info, AdminPayload, lambda db: access.unassign_role(db, caller, user, role))

    @strawberry.mutation(description="A partner API token; the token is in the payload once and never again")  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
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
        caller = _caller(info)
        command = access.CreatePartnerToken(
            partner=partner,
            name=name,
            scopes=scopes,
            role=role,
            expires_at=expires_at,
            allow_arbitrary_documents=allow_arbitrary_documents,
        )

        async def run(db: Executor) -> CreatePartnerTokenPayload:
            created = await access.create_partner_token(db, caller, command)
            return CreatePartnerTokenPayload(token=created.token, api_token=ApiTokenType.from_row(created.row))

        return await _admin_change(info, CreatePartnerTokenPayload, run)

    @strawberry.mutation
    async def revoke_partner_token(self, info: Info[Context, None], id: strawberry.ID) -> AdminPayload | None:
        caller = _caller(info)

        async def run(db: Executor) -> AdminPayload:
            await access.revoke_partner_token(db, caller, str(id))
            return AdminPayload(ok=True)

        return await _admin_change(info, AdminPayload, run)

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Set a partner token's rate limit in cost points per minute (null: back to the default); "
        "every instance applies it to the token's next operation"
    )
    async def set_partner_token_rate_limit(
        self, info: Info[Context, None], id: strawberry.ID, per_minute: int | None = None
    ) -> PartnerTokenPayload | None:
        ctx = context_of(info)
        try:
            async with ctx.db.unit_of_work() as uow:
                row = await access.set_partner_token_rate_limit(uow.conn, _caller(info), str(id), per_minute)
                uow.commit()
        except DomainError as exc:
            return PartnerTokenPayload(user_errors=user_errors(exc))
        payload = PartnerTokenPayload(api_token=ApiTokenType.from_row(row))
        limiter = ctx.services.limiter
        if limiter is not None and payload.api_token is not None:
            limiter.forget(f"token:{payload.api_token.id}")
        return payload

    @strawberry.mutation(  # type: ignore[untyped-decorator]  # strawberry types field(...) as Any
        description="Whether a partner token may send documents that are not registered (trusted-documents "
        "mode); in force from the token's next request"
    )
    async def set_partner_token_arbitrary_documents(
        self, info: Info[Context, None], id: strawberry.ID, allow: bool
    ) -> PartnerTokenPayload | None:
        caller = _caller(info)

        async def run(db: Executor) -> PartnerTokenPayload:
            row = await access.set_partner_token_arbitrary_documents(db, caller, str(id), allow)
            return PartnerTokenPayload(api_token=ApiTokenType.from_row(row))

        return await _admin_change(info, PartnerTokenPayload, run)
