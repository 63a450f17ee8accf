"""Who calls a use-case: the one caller type every use-case takes (resolvers build it from the request
context with ``Context.caller``, the CLI uses ``CLI``, jobs and tests build their own)."""

from __future__ import annotations

from dataclasses import dataclass

from authz.principal import Principal
from infra.repos.base import ALL, Scope


@dataclass(frozen=True)
class Caller:
    """``actor`` names the caller in audit rows; ``principal`` is None for the CLI and jobs (unconfined
    by roles: the operator's own tools); ``scope`` the rows they reach (a partner's, or all);
    ``request_id`` ties audit rows to a request."""

    actor: str
    principal: Principal | None = None
    scope: Scope = ALL
    request_id: str | None = None


CLI = Caller(actor="cli")
