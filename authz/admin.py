"""Runtime administration of access: roles, grants, assignments, partner tokens. Every change is
audited (who, what, before/after), bumps the policy version and notifies every instance."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from typing import Any
from uuid import UUID

from authz.catalogue import CATALOGUE
from authz.confinement import system_operations
from authz.policy import PolicyStore, Rule
from authz.principal import Principal
from domain.errors import Forbidden, NotFound, ValidationFailed
from infra.repos import authz as repo
from infra.repos import partners as partners_repo
from infra.repos.base import Executor, Scope

ACTIONS = ("read", "read_masked", "read_if_consented", "write")
EFFECTS = ("allow", "deny")
_ROLE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_OBJECT = re.compile(r"^(\*|[A-Z][A-Za-z0-9]*\.(\*|[a-z][A-Za-z0-9]*))$")


def _check_role_name(name: str) -> None:
    if not _ROLE.match(name):
        raise ValidationFailed("a role name is 2-40 lower-case letters, digits or _", field="role")


def _check_object(obj: str) -> None:
    if not _OBJECT.match(obj):
        raise ValidationFailed("an object is Type.field, Type.* or *", field="object")
    if "*" not in obj and obj not in CATALOGUE:
        raise ValidationFailed(f"no field {obj} in the catalogue", field="object")


async def _require_role(db: Executor, role: str) -> None:
    _check_role_name(role)
    if not await repo.role_exists(db, role):
        raise NotFound(f"no role {role}", field="role")


async def _policy_in_transaction(db: Executor) -> PolicyStore:
    """The policy as this transaction sees it (changes made in it included)."""
    version, rules = await repo.load_rules(db)
    return PolicyStore(version, [Rule(p, v) for p, v in rules])


def _no_system_administration(store: PolicyStore, role: str, *, field: str, why: str) -> None:
    operations = system_operations(store, (role,))
    if operations:
        raise ValidationFailed(
            f"{why}: role {role} administers the whole system ({', '.join(operations)}), which a partner token"
            " may not (partner tokens are confined to their partner)",
            field=field,
        )


async def _held_administration(db: Executor) -> dict[str, set[str]]:
    """Per role held by a live partner token: the system-administering operations it grants now."""
    held = await partners_repo.roles_of_live_tokens(db)
    if not held:
        return {}
    store = await _policy_in_transaction(db)
    return {role: set(system_operations(store, (role,))) for role in held}


async def _partner_tokens_stay_confined(db: Executor, before: dict[str, set[str]]) -> None:
    """After a change of the policy (in the same transaction, before it commits): no role held by a live
    partner token may have gained a system-administering operation; otherwise the change is refused and
    rolled back. (A token that holds such a role already, written before this rule or by hand, blocks
    nothing: it is confined by its decisions whatever it holds; revoke it.)"""
    for role, operations in sorted((await _held_administration(db)).items()):
        gained = sorted(operations - before.get(role, set()))
        if gained:
            raise ValidationFailed(
                f"refused: role {role} is held by a partner token and would administer the whole system"
                f" ({', '.join(gained)}), which a partner token may not (partner tokens are confined to their"
                " partner)",
                field="role",
            )


async def _audit(db: Executor, actor: str, action: str, *, before: Any = None, after: Any = None) -> int:
    version = await repo.bump_version(db)
    await repo.write_audit(
        db,
        actor=actor,
        action=action,
        target_type="policy",
        before=before,
        after={**(after or {}), "policyVersion": version},
    )
    return version


async def list_roles(db: Executor) -> list[dict[str, Any]]:
    return await repo.list_roles(db)


async def create_role(db: Executor, name: str, description: str, *, actor: str, inherits: str | None = None) -> int:
    _check_role_name(name)
    if not await repo.create_role(db, name, description):  # taken, also by a request meanwhile
        raise ValidationFailed(f"role {name} exists already", field="role")
    if inherits:
        await _require_role(db, inherits)
        await repo.add_rule(db, "g", (f"role:{name}", f"role:{inherits}"))
    return await _audit(
        db, actor, "role.create", after={"role": name, "description": description, "inherits": inherits}
    )


async def delete_role(db: Executor, name: str, *, actor: str) -> int:
    await _require_role(db, name)
    before = await _held_administration(db)
    removed = await repo.remove_rules(db, "p", v0=f"role:{name}")
    removed += await repo.remove_rules(db, "g", v1=f"role:{name}")
    removed += await repo.remove_rules(db, "g", v0=f"role:{name}")
    await repo.delete_role(db, name)
    await _partner_tokens_stay_confined(db, before)
    return await _audit(db, actor, "role.delete", before={"role": name, "rulesRemoved": removed})


async def grant(db: Executor, role: str, obj: str, action: str, *, actor: str, effect: str = "allow") -> int:
    await _require_role(db, role)
    _check_object(obj)
    if action not in ACTIONS:
        raise ValidationFailed(f"action is one of {', '.join(ACTIONS)}", field="action")
    if effect not in EFFECTS:
        raise ValidationFailed("effect is allow or deny", field="effect")
    rule = (f"role:{role}", obj, action, effect)
    before = await _held_administration(db)
    if not await repo.add_rule(db, "p", rule):
        raise ValidationFailed("that grant exists already", field="object")
    await _partner_tokens_stay_confined(db, before)
    return await _audit(db, actor, "grant", after={"rule": list(rule)})


async def revoke(db: Executor, role: str, obj: str, action: str, *, actor: str, effect: str = "allow") -> int:
    await _require_role(db, role)
    rule = (f"role:{role}", obj, action, effect)
    before = await _held_administration(db)
    if not await repo.remove_rules(db, "p", v0=rule[0], v1=obj, v2=action, v3=effect):
        raise NotFound("no such grant", field="object")
    await _partner_tokens_stay_confined(db, before)  # revoking a deny can widen a role
    return await _audit(db, actor, "revoke", before={"rule": list(rule)})


def _user_subject(user: str) -> str:
    if not user or len(user) > 200 or ":" in user:
        raise ValidationFailed("a user id is 1-200 characters without ':'", field="user")
    return f"user:{user}"


async def assign_role(db: Executor, user: str, role: str, *, actor: str) -> int:
    await _require_role(db, role)
    subject = _user_subject(user)
    if not await repo.add_rule(db, "g", (subject, f"role:{role}")):
        raise ValidationFailed(f"{user} has role {role} already", field="role")
    return await _audit(db, actor, "role.assign", after={"subject": subject, "role": role})


async def unassign_role(db: Executor, user: str, role: str, *, actor: str) -> int:
    subject = _user_subject(user)
    if not await repo.remove_rules(db, "g", v0=subject, v1=f"role:{role}"):
        raise NotFound(f"{user} does not have role {role}", field="role")
    return await _audit(db, actor, "role.unassign", before={"subject": subject, "role": role})


async def create_partner_token(
    db: Executor,
    *,
    partner_name: str,
    name: str,
    scopes: list[str],
    role: str,
    actor: str,
    token_id: UUID,
    token_hash: str,
    expires_at: dt.datetime | None,
    creator: Principal | None = None,
    allow_arbitrary_documents: bool = False,
) -> dict[str, Any]:
    """A partner token. ``creator``: the principal asking (None: the CLI). No token may hold a role that
    administers the whole system; a partner principal creates tokens only for its own partner, with one of
    its own roles and scopes its own cover (no token wider than the one that made it)."""
    await _require_role(db, role)
    for scope in scopes:
        verb, _, pattern = scope.partition(":")
        if verb not in ("read", "write", "*") or not pattern:
            raise ValidationFailed("a scope is read:<pattern> or write:<pattern>", field="scopes")
    _no_system_administration(await _policy_in_transaction(db), role, field="role", why="not for a partner token")
    if creator is not None and creator.partner_id is not None:
        own = (await partners_repo.by_ids(db, [creator.partner_id])).get(creator.partner_id)
        if own is None or own["name"] != partner_name:
            raise Forbidden("a partner token creates tokens for its own partner only", field="partner")
        if role not in creator.roles:
            raise Forbidden("a partner token creates tokens with one of its own roles only", field="role")
        wider = [s for s in scopes if not _covered(s, creator.scopes or ())]
        if wider:
            raise Forbidden(f"scopes wider than this token's own: {', '.join(wider)}", field="scopes")
        if allow_arbitrary_documents and not creator.arbitrary_documents:
            raise Forbidden(
                "a partner token allows arbitrary documents only if it is allowed them itself",
                field="allowArbitraryDocuments",
            )
        partner_id = creator.partner_id
    else:
        partner_id = await partners_repo.ensure(db, partner_name)
    row = await partners_repo.create_token(
        db,
        {
            "id": token_id,
            "partner_id": partner_id,
            "name": name,
            "secret_hash": token_hash,
            "role": role,
            "scopes": scopes,
            "created_by": actor,
            "expires_at": expires_at,
            "allow_arbitrary_documents": allow_arbitrary_documents,
        },
    )
    await repo.write_audit(
        db,
        actor=actor,
        action="token.create",
        target_type="api_token",
        target_ids=[str(token_id)],
        after={
            "partner": partner_name,
            "name": name,
            "role": role,
            "scopes": scopes,
            "allowArbitraryDocuments": allow_arbitrary_documents,
        },
    )
    return row


def _covered(scope: str, own: tuple[str, ...]) -> bool:
    """Whether one of ``own`` scopes covers ``scope`` (``read:Customer.*`` covers ``read:Customer.name``)."""
    verb, _, pattern = scope.partition(":")
    for mine in own:
        my_verb, _, my_pattern = mine.partition(":")
        if my_verb in (verb, "*") and fnmatch.fnmatchcase(pattern, my_pattern or "*"):
            return True
    return False


async def revoke_partner_token(db: Executor, token_id: UUID, *, actor: str, scope: Scope) -> None:
    """Revoke a token the scope reaches (a partner principal: its own partner's tokens only)."""
    if not await partners_repo.revoke_token(db, token_id, scope=scope):
        raise NotFound("no such active token", field="id")
    await repo.write_audit(db, actor=actor, action="token.revoke", target_type="api_token", target_ids=[str(token_id)])


async def set_partner_token_arbitrary_documents(
    db: Executor, token_id: UUID, allow: bool, *, actor: str, request_id: str | None = None
) -> dict[str, Any]:
    """Whether the token may send documents that are not registered (trusted-documents mode);
    in force from the token's next request."""
    before = await partners_repo.token(db, token_id)
    row = await partners_repo.set_arbitrary_documents(db, token_id, allow)
    if before is None or row is None:
        raise NotFound("no such token", field="id")
    await repo.write_audit(
        db,
        actor=actor,
        action="token.arbitrary_documents",
        request_id=request_id,
        target_type="api_token",
        target_ids=[str(token_id)],
        fields=["allowArbitraryDocuments"],
        before={"allowArbitraryDocuments": before["allow_arbitrary_documents"]},
        after={"allowArbitraryDocuments": allow},
    )
    return row
