"""Partner confinement, a rule of the principal rather than of each query.

A partner token reaches its own partner and nothing else, whatever roles it holds:

- every operation that reads or changes data applies the partner's row scope (``infra.repos.scope``):
  customers and what hangs off them, aggregates and reports, exports, the audit log (entries written by
  the partner's own tokens) and API tokens (the partner's own);
- the operations below have no partner scope — they act on the whole system (access administration,
  tier and SLA policies, reference data, survey definitions, re-tier runs, simulations over every
  customer) — and are refused to a partner principal (``FORBIDDEN``) even if a role it holds grants
  them: ``Decisions`` built for a confined principal deny them (defence in depth);
- webhook endpoints and their deliveries are scoped, not refused: a partner's endpoints are its own
  partner's and receive only its own customers' events (api/usecases/events.py);
- roles that administer the whole system (``SYSTEM_ADMINISTRATION``) cannot be given to a partner
  token at all: refused when the token is created, and a grant (or revoke of a deny, or any policy
  change) that would make a role held by a live partner token system-administering is refused
  (``authz.admin``).
"""

from __future__ import annotations

from typing import Protocol

# Administering access for everyone: roles, their grants and who holds them.
SYSTEM_ADMINISTRATION: frozenset[str] = frozenset(
    {
        "Mutation.createRole",
        "Mutation.deleteRole",
        "Mutation.grantAccess",
        "Mutation.revokeAccess",
        "Mutation.assignRole",
        "Mutation.unassignRole",
    }
)

# Operations with no partner scope: refused to a partner principal whatever its roles.
UNSCOPED_OPERATIONS: frozenset[str] = SYSTEM_ADMINISTRATION | frozenset(
    {
        # the whole policy, every subject's roles and decisions
        "Query.roles",
        "Query.policies",
        "Query.explainAccess",
        "Query.accessMatrix",
        # a partner's rate limit is the operator's control over the partner
        "Mutation.setPartnerTokenRateLimit",
        # so is whether a partner's token may leave trusted-documents mode
        "Mutation.setPartnerTokenArbitraryDocuments",
        # tier policies: one for every customer of every partner; runs and simulations count them all
        "Query.tierRuns",
        "Query.simulateTierPolicy",
        "Mutation.createTierPolicyDraft",
        "Mutation.updateTierPolicyDraft",
        "Mutation.discardTierPolicyDraft",
        "Mutation.activateTierPolicy",
        "Mutation.setTierPolicyBenefits",
        "Mutation.setTierPolicyHoldout",
        # SLA policies and the complaint taxonomy: shared reference data
        "Mutation.createSlaPolicy",
        "Mutation.activateSlaPolicy",
        "Mutation.addComplaintCategory",
        "Mutation.deactivateComplaintCategory",
        "Mutation.addRootCause",
        "Mutation.deactivateRootCause",
        # survey definitions are shared by every partner
        "Mutation.createSurvey",
        # teams are the staff's organisation, not a partner's
        "Query.teams",
        "Mutation.createTeam",
        "Mutation.renameTeam",
        "Mutation.archiveTeam",
        "Mutation.addTeamMember",
        "Mutation.removeTeamMember",
    }
)


class _Enforcer(Protocol):
    def enforce(self, subject: str, obj: str, action: str) -> bool: ...

    def role_set_subject(self, roles: tuple[str, ...]) -> str: ...


def system_operations(store: _Enforcer, roles: tuple[str, ...]) -> list[str]:
    """The system-administering operations these roles grant (empty: the roles may go to a partner token)."""
    subject = store.role_set_subject(tuple(sorted(roles)))
    return sorted(op for op in SYSTEM_ADMINISTRATION if store.enforce(subject, op, "write"))
