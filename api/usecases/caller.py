"""Who calls a use-case: the one caller type every use-case takes (resolvers build it from the request
context with ``Context.caller``, the CLI uses ``CLI``, jobs and tests build their own)."""

from __future__ import annotations

from dataclasses import dataclass

from authz.policy import Decisions
from authz.principal import Principal
from infra.repos.base import ALL, Scope


@dataclass(frozen=True)
class Caller:
    """``actor`` names the caller in audit rows; ``principal`` is None for the CLI and jobs (unconfined
    by roles: the operator's own tools); ``scope`` the rows they reach (a partner's, or all);
    ``request_id`` ties audit rows to a request; ``decisions`` the field rights of the principal's role set
    (what it may write, whether it may read a field in full), None where roles do not confine (CLI, jobs)."""

    actor: str
    principal: Principal | None = None
    scope: Scope = ALL
    request_id: str | None = None
    decisions: Decisions | None = None

    def can_write(self, field: str) -> bool:
        """May the caller write this catalogue field (``Customer.email``)?"""
        return self.decisions is None or self.decisions.can_write(field)


CLI = Caller(actor="cli")
