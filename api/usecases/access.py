"""Use-cases of access administration: roles, grants, role assignments, teams of staff, partner tokens
(``tw_pat_<id>_<secret>``, stored as a SHA-256 of the secret; api/edge/auth.py checks them), their rate
limit and arbitrary-documents switch, the audit log and ``explainAccess``.

Called alike by the GraphQL resolvers (api/graphql/access/resolvers.py) and the CLI (api/edge/cli.py).
A change takes a connection inside a transaction the caller commits; it is audited, and changes of the
policy bump its version and notify every instance (authz/admin.py). Errors are domain errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from api.usecases.caller import Caller
from authz import admin
from authz.catalogue import CATALOGUE
from authz.confinement import UNSCOPED_OPERATIONS
from authz.policy import READS, Level, PolicyStore, Rule
from domain import queues as queue_rules
from domain.errors import NotFound, ValidationFailed
from infra.repos import audit as audit_repo
from infra.repos import authz as authz_repo
from infra.repos import partners as partners_repo
from infra.repos import ratelimit as ratelimit_repo
from infra.repos import teams as teams_repo
from infra.repos.base import Executor, Page

TOKEN_PREFIX = "tw_pat_"
MAX_RATE_LIMIT = 10_000_000
DEFAULT_TOKEN_SCOPES = ("read:*", "write:*")
READ_ACTIONS = READS
EXPLAINED_ACTIONS = (*READ_ACTIONS, "write")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_partner_token() -> tuple[uuid.UUID, str, str]:
    """(token id, the full token shown once, the hash to store)."""
    token_id = uuid.uuid4()
    secret = secrets.token_urlsafe(32)
    return token_id, f"{TOKEN_PREFIX}{token_id.hex}_{secret}", hash_secret(secret)


def _token_id(value: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(message, field="id") from None


# --- reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRule:
    subject: str
    object: str
    action: str
    effect: str


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    inherits: list[str]
    grants: list[PolicyRule]


@dataclass(frozen=True)
class AccessExplanation:
    subject: str
    roles: list[str]
    field: str
    action: str
    allowed: bool
    decision: str | None  # FULL, MASKED or DENIED; None for a write
    rules: list[str]
    reason: str
    policy_version: int


@dataclass(frozen=True)
class AccessMatrixRow:
    field: str  # Type.field, a key of the catalogue
    type_name: str
    field_name: str
    sensitivity: str  # public, internal, sensitive
    decisions: list[str]  # FULL, CONSENTED, MASKED or DENIED, one for each role of AccessMatrix.roles
    consent_channel: str | None = None  # the channel read_if_consented asks consent on (None: not honoured)


@dataclass(frozen=True)
class AccessMatrix:
    roles: list[str]
    rows: list[AccessMatrixRow]
    policy_version: int


@dataclass(frozen=True)
class AuditQuery:
    first: int = 20
    after: str | None = None
    filter: audit_repo.AuditFilter = field(default_factory=audit_repo.AuditFilter)


@dataclass(frozen=True)
class AuditPage:
    page: Page
    count: Callable[[], Awaitable[int]]  # the total, counted only if asked for


async def load_policy(db: Executor) -> PolicyStore:
    """The policy as this connection sees it (for callers without the process's policy store: the CLI)."""
    version, rules = await authz_repo.load_rules(db)
    return PolicyStore(version, [Rule(p, v) for p, v in rules])


async def list_roles(db: Executor, policy: PolicyStore) -> list[Role]:
    """Every role, with the roles it inherits and its grants in ``policy``."""
    out = []
    for role in await admin.list_roles(db):
        sub = f"role:{role['name']}"
        grants = [
            PolicyRule(subject=r.values[0], object=r.values[1], action=r.values[2], effect=r.values[3])
            for r in policy.rules
            if r.ptype == "p" and r.values[0] == sub
        ]
        inherits = [r.values[1].removeprefix("role:") for r in policy.rules if r.ptype == "g" and r.values[0] == sub]
        out.append(Role(name=role["name"], description=role["description"], inherits=inherits, grants=grants))
    return out


def policy_rules(policy: PolicyStore) -> list[PolicyRule]:
    """Every rule of the policy: grants (p) and role assignments (g, action ``member``)."""
    return [
        PolicyRule(
            subject=r.values[0],
            object=r.values[1],
            action=r.values[2] if r.ptype == "p" else "member",
            effect=r.values[3] if r.ptype == "p" else "allow",
        )
        for r in policy.rules
    ]


async def list_partner_tokens(db: Executor, caller: Caller) -> list[dict[str, Any]]:
    """The partner tokens the caller's scope reaches (a partner principal: its own partner's)."""
    return await partners_repo.list_tokens(db, scope=caller.scope)


async def audit_page(db: Executor, caller: Caller, query: AuditQuery, *, max_page_size: int) -> AuditPage:
    """A page of the audit log, newest first, within the caller's scope."""
    if not 1 <= query.first <= max_page_size:
        raise ValidationFailed(f"first must be between 1 and {max_page_size}", field="first")
    f = query.filter
    page = await audit_repo.page(db, f=f, first=query.first, after=query.after, scope=caller.scope)
    return AuditPage(page=page, count=lambda: audit_repo.count(db, f=f, scope=caller.scope))


async def _roles_of_subject(
    db: Executor, policy: PolicyStore, subject: str
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    kind, _, ident = subject.partition(":")
    if kind == "role":
        return (ident,), None
    if kind == "user":
        return policy.roles_of(subject), None
    if kind == "token":
        try:
            row = await partners_repo.token(db, uuid.UUID(ident))
        except ValueError:
            row = None
        if row is None:
            raise NotFound("no such token", field="subject")
        return (row["role"],), tuple(row["scopes"])
    raise ValidationFailed("subject is user:<id>, role:<name> or token:<id>", field="subject")


async def access_matrix(db: Executor, policy: PolicyStore) -> AccessMatrix:
    """The read decision of every role on every field of the catalogue, as the guard takes it: after
    inheritance, deny-overrides and the field's classification (a role alone, as ``role:<name>`` in
    ``explain_access``). Rows by type, then sensitivity (most sensitive first), then field."""
    roles = [role["name"] for role in await admin.list_roles(db)]
    decisions = [policy.decisions_for((role,), None) for role in roles]
    order = {"sensitive": 0, "internal": 1, "public": 2}
    specs = sorted(CATALOGUE.values(), key=lambda s: (s.type_name, order[s.sensitivity.value], s.field_name))
    rows = [
        AccessMatrixRow(
            field=spec.key,
            type_name=spec.type_name,
            field_name=spec.field_name,
            sensitivity=spec.sensitivity.value,
            decisions=[d.read(spec.key).value for d in decisions],
            consent_channel=spec.consent,
        )
        for spec in specs
    ]
    return AccessMatrix(roles=roles, rows=rows, policy_version=policy.version)


async def explain_access(
    db: Executor, policy: PolicyStore, subject: str, field: str, action: str = "read"
) -> AccessExplanation:
    """Why ``subject`` (``user:<id>``, ``role:<name>`` or ``token:<id>``) may or may not do ``action``
    (read, read_masked, write) on ``field``: the decision and the rule(s) that decided it."""
    if field not in CATALOGUE:
        raise ValidationFailed(f"no field {field} in the catalogue", field="field")
    if action not in EXPLAINED_ACTIONS:
        raise ValidationFailed(f"action is one of {', '.join(EXPLAINED_ACTIONS)}", field="action")
    roles, scopes = await _roles_of_subject(db, policy, subject)
    allowed, rules, reason = policy.explain(roles, scopes, field, action)
    if subject.startswith("token:") and field in UNSCOPED_OPERATIONS:
        allowed, reason = False, f"{field} has no partner scope: refused to partner tokens whatever their roles"
    decision = None
    if action in READ_ACTIONS:
        # a token subject is a partner principal: its decisions are confined like its requests
        decision = policy.decisions_for(roles, scopes, confined=subject.startswith("token:")).read(field).value
        if decision != Level.DENIED.value and not allowed:
            reason += f"; the field is still {decision} through another action or a public classification"
    return AccessExplanation(
        subject=subject,
        roles=list(roles),
        field=field,
        action=action,
        allowed=allowed,
        decision=decision,
        rules=rules,
        reason=reason,
        policy_version=policy.version,
    )


# --- changes of the policy (each returns the new policy version) -----------------------------------


async def create_role(
    db: Executor, caller: Caller, name: str, description: str = "", inherits: str | None = None
) -> int:
    return await admin.create_role(db, name, description, actor=caller.actor, inherits=inherits)


async def delete_role(db: Executor, caller: Caller, name: str) -> int:
    return await admin.delete_role(db, name, actor=caller.actor)


async def grant(db: Executor, caller: Caller, role: str, obj: str, action: str, effect: str = "allow") -> int:
    """Grant (or, with effect ``deny``, explicitly deny) ``action`` on ``Type.field`` to ``role``."""
    return await admin.grant(db, role, obj, action, actor=caller.actor, effect=effect)


async def revoke(db: Executor, caller: Caller, role: str, obj: str, action: str, effect: str = "allow") -> int:
    return await admin.revoke(db, role, obj, action, actor=caller.actor, effect=effect)


async def assign_role(db: Executor, caller: Caller, user: str, role: str) -> int:
    return await admin.assign_role(db, user, role, actor=caller.actor)


async def unassign_role(db: Executor, caller: Caller, user: str, role: str) -> int:
    return await admin.unassign_role(db, user, role, actor=caller.actor)


# --- partner tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatePartnerToken:
    partner: str
    name: str
    scopes: list[str] | None = None  # None or empty: DEFAULT_TOKEN_SCOPES
    role: str = "partner"
    expires_at: dt.datetime | None = None
    allow_arbitrary_documents: bool = False


@dataclass(frozen=True)
class NewPartnerToken:
    token: str  # shown once; only its hash is stored
    row: dict[str, Any]


async def create_partner_token(db: Executor, caller: Caller, command: CreatePartnerToken) -> NewPartnerToken:
    """A partner token; a partner principal creates them only for its own partner, no wider than its own."""
    token_id, token, token_hash = new_partner_token()
    if not command.partner.strip() or not command.name.strip():
        raise ValidationFailed("partner and name are required", field="partner")
    row = await admin.create_partner_token(
        db,
        partner_name=command.partner.strip(),
        name=command.name.strip(),
        scopes=command.scopes or list(DEFAULT_TOKEN_SCOPES),
        role=command.role,
        actor=caller.actor,
        token_id=token_id,
        token_hash=token_hash,
        expires_at=command.expires_at,
        creator=caller.principal,
        allow_arbitrary_documents=command.allow_arbitrary_documents,
    )
    return NewPartnerToken(token=token, row=row)


async def revoke_partner_token(db: Executor, caller: Caller, token_id: str) -> None:
    """Revoke a token the caller's scope reaches."""
    await admin.revoke_partner_token(
        db, _token_id(token_id, "no such active token"), actor=caller.actor, scope=caller.scope
    )


async def set_partner_token_rate_limit(
    db: Executor, caller: Caller, token_id: str, per_minute: int | None
) -> dict[str, Any]:
    """A token's rate limit in cost points per minute (None: back to the default); audited. The caller
    forgets the token's bucket in its limiter once this commits."""
    tid = _token_id(token_id, "no such token")
    if per_minute is not None and not 1 <= per_minute <= MAX_RATE_LIMIT:
        raise ValidationFailed(f"perMinute is between 1 and {MAX_RATE_LIMIT}, or null", field="perMinute")
    before = await partners_repo.token(db, tid)
    row = await ratelimit_repo.set_token_limit(db, tid, per_minute)
    if before is None or row is None:
        raise NotFound("no such token", field="id")
    await authz_repo.write_audit(
        db,
        actor=caller.actor,
        action="token.rate_limit",
        request_id=caller.request_id,
        target_type="ApiToken",
        target_ids=[str(tid)],
        fields=["rateLimitPerMinute"],
        before={"rateLimitPerMinute": before["rate_limit_per_minute"]},
        after={"rateLimitPerMinute": per_minute},
    )
    return row


async def set_partner_token_arbitrary_documents(
    db: Executor, caller: Caller, token_id: str, allow: bool
) -> dict[str, Any]:
    """Whether the token may send documents that are not registered (trusted-documents mode)."""
    return await admin.set_partner_token_arbitrary_documents(
        db, _token_id(token_id, "no such token"), allow, actor=caller.actor, request_id=caller.request_id
    )


# --- teams (complaint queues "to a team", "my teams") ------------------------------------------------


@dataclass(frozen=True)
class Team:
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    members: list[str]
    archived_at: dt.datetime | None = None  # retired: takes no new complaints (domain/queues.py)

    @classmethod
    def of(cls, row: dict[str, Any], members: list[str]) -> Team:
        return cls(row["id"], row["name"], row["created_at"], members, row.get("archived_at"))


async def list_teams(db: Executor, *, include_archived: bool = False) -> list[Team]:
    """Every team that takes complaints (with ``include_archived``, the retired ones too) with its members
    (two statements, whatever the number of teams)."""
    rows = await teams_repo.all_teams(db, include_archived=include_archived)
    members = await teams_repo.members_of(db)
    return [Team.of(r, members.get(r["id"], [])) for r in rows]


async def team_named(db: Executor, ref: str) -> uuid.UUID:
    """The team a person names on the command line: by its exact name, or by its id (``teams list``);
    NOT_FOUND otherwise."""
    row = await teams_repo.by_name(db, ref.strip())
    if row is None:
        try:
            row = await teams_repo.by_id(db, uuid.UUID(ref.strip()))
        except ValueError:
            row = None
    if row is None:
        raise NotFound(f"no such team: {ref}", field="team")
    return uuid.UUID(str(row["id"]))


async def _team(db: Executor, team_id: uuid.UUID) -> dict[str, Any]:
    row = await teams_repo.locked(db, team_id)
    if row is None:
        raise NotFound("no such team", field="team")
    return row


async def _read_team(db: Executor, row: dict[str, Any]) -> Team:
    members = (await teams_repo.members_of(db, [row["id"]])).get(row["id"], [])
    return Team.of(row, members)


async def _audit_team(db: Executor, caller: Caller, action: str, team_id: uuid.UUID, **change: Any) -> None:
    await authz_repo.write_audit(
        db,
        actor=caller.actor,
        action=action,
        request_id=caller.request_id,
        target_type="Team",
        target_ids=[str(team_id)],
        **change,
    )


async def create_team(db: Executor, caller: Caller, name: str) -> Team:
    """A new, empty team; audited. A name in use (also by a team created meanwhile) is refused."""
    cleaned = queue_rules.team_name(name)
    row = await teams_repo.create(db, cleaned)
    if row is None:
        raise ValidationFailed(f"team {cleaned} exists already", field="name")
    await _audit_team(db, caller, "team.create", row["id"], after={"name": cleaned})
    return Team.of(row, [])


async def rename_team(db: Executor, caller: Caller, team_id: uuid.UUID, name: str) -> Team:
    """Give a team (archived or not) a new name, under createTeam's rule (``team_name``; unique over every
    team, archived ones included); audited with the name before and after. Its own name again changes
    nothing and is not audited; an unknown team is NOT_FOUND. The history of its complaints keeps the name
    they were handed over under (their events are what was said at the time)."""
    cleaned = queue_rules.team_name(name)
    row = await _team(db, team_id)
    if row["name"] == cleaned:
        return await _read_team(db, row)
    renamed = await teams_repo.rename(db, team_id, cleaned)
    if renamed is None:
        raise ValidationFailed(f"team {cleaned} exists already", field="name")
    await _audit_team(db, caller, "team.rename", team_id, before={"name": row["name"]}, after={"name": cleaned})
    return await _read_team(db, renamed)


@dataclass(frozen=True)
class ArchivedTeam:
    team: Team
    active_complaints: int  # still in its queue, to be handed over (they keep the team until then)


async def archive_team(db: Executor, caller: Caller, team_id: uuid.UUID) -> ArchivedTeam:
    """Retire a team: it takes no new complaints (domain/queues.py ``team_takes_complaints``) and leaves the
    list of teams, but nothing it holds moves. Its active complaints keep it, with their assignees and SLA
    clocks, until someone reassigns them; its queue and its members' "my teams" queues still list them, and
    the answer says how many there are. Refusing the archive until the queue is empty was the other way:
    it would leave the team offered for new work until the last complaint is handed over, and a reopened
    complaint comes back to its team either way. Audited with that count; archived already is refused."""
    row = await _team(db, team_id)
    if row["archived_at"] is not None:
        raise ValidationFailed(f"team {row['name']} is archived already", field="team")
    active = await teams_repo.active_complaints(db, team_id)
    archived = await teams_repo.archive(db, team_id)
    await _audit_team(
        db,
        caller,
        "team.archive",
        team_id,
        before={"name": row["name"], "archived_at": None},
        after={"name": row["name"], "archived_at": archived["archived_at"].isoformat(), "active_complaints": active},
    )
    return ArchivedTeam(await _read_team(db, archived), active)


async def add_team_member(db: Executor, caller: Caller, team_id: uuid.UUID, user: str) -> Team:
    """Put a staff user (its id, as its token's ``sub`` names it) in a team; audited like a role
    assignment. An unknown team is NOT_FOUND; a user in the team already is refused."""
    member = queue_rules.member_id(user)
    row = await _team(db, team_id)
    if not await teams_repo.add_member(db, team_id, member, added_by=caller.actor):
        raise ValidationFailed(f"{member} is in team {row['name']} already", field="user")
    await _audit_team(db, caller, "team.member.add", team_id, after={"team": row["name"], "user": member})
    return await _read_team(db, row)


async def remove_team_member(db: Executor, caller: Caller, team_id: uuid.UUID, user: str) -> Team:
    """Take a user out of a team; audited. The team's complaints stay the team's."""
    member = queue_rules.member_id(user)
    row = await _team(db, team_id)
    if not await teams_repo.remove_member(db, team_id, member):
        raise NotFound(f"{member} is not in team {row['name']}", field="user")
    await _audit_team(db, caller, "team.member.remove", team_id, before={"team": row["name"], "user": member})
    return await _read_team(db, row)
